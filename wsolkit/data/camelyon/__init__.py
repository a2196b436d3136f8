"""The CAMELYON16 patch-sampling protocol of the survey (Rony et al., Appendix B) as a library.

The survey builds a WSOL benchmark from whole-slide images (WSIs): patches of ``512 x 512`` pixels at level 0,
each with an image-level label (normal / metastatic) and a pixel mask of the metastatic pixels. The steps are:

1. **WSI-level split** (:func:`split_slides`): no two patches of one slide end up in different sets.
2. **Tissue** (:func:`otsu_threshold`, :func:`tissue_mask`): Otsu binarisation at a low pyramid level (level 6
   in the paper, "where it is easy for the OTSU binarization method to split the tissue from the background"),
   double-checked at level 0. A patch is kept only if its tissue percentage is ``>= p_t`` at both levels.
3. **Metastatic patches** (tumour slides only): every patch of the non-overlapping level-0 grid with a tumour
   percentage ``p_m >= p_0``. *Category 1*: ``p_0 <= p_m <= p_1`` (all kept). *Category 2*: ``p_m > p_1``
   (abundant, masks full of ones), calibrated by :func:`calibrate_category2`: with ``n`` Category 1 patches,
   ``round(n * p_n)`` Category 2 patches are drawn by picking a histogram bin (width 0.05) uniformly among
   the bins above ``p_1``, then a patch uniformly within the bin.
4. **Normal patches** (normal slides only): with ``n_m`` metastatic patches in the set and ``h`` normal slides,
   ``n_m / h`` patches per normal slide, drawn uniformly without repetition from the non-overlapping grid and
   accepted when they hold enough tissue.

Defaults follow the paper: ``p_t = 10%``, ``p_0 = 20%``, ``p_1 = 50%``, ``p_n = 1%``, bins of 0.05, patch 512.

Slides are read through :mod:`wsolkit.wsi`, the one package of slide readers (``level_dimensions``,
``level_downsamples``, ``read_region``): paths open with tiffslide (optional extra ``wsi``), ``openslide.OpenSlide``
objects work as they are, :class:`wsolkit.wsi.InMemorySlide` is a numpy pyramid for tests and examples. Tumour
annotations are the CAMELYON16 XML (or QuPath GeoJSON) files themselves, rasterised on demand, a level-0 mask reader
/ path, or a 2-D array.

The package: :mod:`~wsolkit.data.camelyon.readers` (the :class:`Slide` record), ``protocol`` (hyper-parameters,
WSI-level split), ``tissue``, ``sampling``, ``io`` (patches, masks, ``index.csv``, ``dataset.json``) and
``dataset`` (:class:`CamelyonPatches`, :func:`synthetic_slide`).

Interpretations where the appendix is silent (all documented in ``docs/guides/camelyon16_protocol.md``):
the Otsu threshold is computed once per slide at the low level (saturation channel by default) and the same
threshold is applied at level 0; patches lie on the non-overlapping level-0 grid anchored at ``(0, 0)``;
calibration runs over all the metastatic patches of a set; ``n * p_n`` and ``n_m / h`` are rounded half up,
and the remainder of ``n_m / h`` goes to the first slides in the given order.
"""

import importlib
from typing import Any

from wsolkit._deprecation import deprecated_names, lazy
from wsolkit.data.camelyon.dataset import CamelyonPatches, synthetic_slide
from wsolkit.data.camelyon.io import INDEX_COLUMNS, extract_patches, read_index, write_patches
from wsolkit.data.camelyon.protocol import PatchProtocol, PatchRecord, split_slides
from wsolkit.data.camelyon.readers import Slide
from wsolkit.data.camelyon.sampling import (
    calibrate_category2,
    sample_metastatic_patches,
    sample_normal_patches,
    sample_split,
)
from wsolkit.data.camelyon.tissue import otsu_threshold, tissue_channel, tissue_mask

__all__ = [
    "Slide",
    "PatchProtocol",
    "PatchRecord",
    "split_slides",
    "otsu_threshold",
    "tissue_channel",
    "tissue_mask",
    "calibrate_category2",
    "sample_metastatic_patches",
    "sample_normal_patches",
    "sample_split",
    "write_patches",
    "extract_patches",
    "read_index",
    "CamelyonPatches",
    "synthetic_slide",
    "INDEX_COLUMNS",
]

# the slide readers live in wsolkit.wsi only; before 0.3 this package re-exported them
_READERS = ("SlideReader", "InMemorySlide", "TiffSlideReader", "OpenSlideReader")


def _reader(name: str) -> Any:
    return lazy(lambda: getattr(importlib.import_module("wsolkit.wsi.readers"), name))


__getattr__ = deprecated_names("wsolkit.data.camelyon", {n: (_reader(n), f"wsolkit.wsi.{n}") for n in _READERS})
