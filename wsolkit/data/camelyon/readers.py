"""Slides of the CAMELYON16 protocol: the :class:`Slide` record and how its image / annotation are opened.

The readers themselves are :mod:`wsolkit.wsi`'s (one protocol): a path opens with
:class:`~wsolkit.wsi.TiffSlideReader` (tiffslide, the default; OpenSlide with :class:`~wsolkit.wsi.OpenSlideReader`),
an annotation file (``.xml`` ASAP / CAMELYON16, ``.geojson`` / ``.json`` QuPath) is rasterised on demand through
:class:`~wsolkit.wsi.AnnotationMask`, a 2-D array is a level-0 mask.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wsolkit._checks import ShapeError, WSOLTypeError
from wsolkit.wsi.annotations import AnnotationMask, read_annotations
from wsolkit.wsi.readers import InMemorySlide, SlideReader, TiffSlideReader

__all__ = ["Slide", "ANNOTATION_SUFFIXES"]

#: file suffixes read as annotation polygons rather than mask images
ANNOTATION_SUFFIXES = (".xml", ".geojson", ".json")


@dataclass(frozen=True, eq=False)
class Slide:
    """A whole-slide image of the dataset.

    Args:
        name: unique slide name (used in patch file names), e.g. ``"tumor_001"``.
        image: a :class:`~wsolkit.wsi.SlideReader` or a path (opened with tiffslide when needed).
        annotation: tumour annotation at level-0 size — a :class:`~wsolkit.wsi.SlideReader` (e.g. a pyramidal
            mask TIFF, any non-zero value is tumour), a path (mask TIFF, or ``.xml`` / ``.geojson`` polygons), an
            :class:`~wsolkit.wsi.Annotations`, or a 2-D array; ``None`` for a normal slide.

    Example:
        >>> Slide("normal_001", InMemorySlide.from_array(np.zeros((8, 8), np.uint8), 1)).metastatic
        False
    """

    name: str
    image: Any
    annotation: Any = None

    @property
    def metastatic(self) -> bool:
        """True when the slide has a tumour annotation."""
        return self.annotation is not None


@contextlib.contextmanager
def _open(obj: Any, name: str, mask: bool = False, slide: Any = None) -> Iterator[SlideReader]:
    """Yield a reader for ``obj`` (reader, path or, for masks, a 2-D array or polygons); close it if opened here.

    For masks, ``slide`` (the slide's reader) gives the geometry annotation polygons are rasterised on.
    """
    from wsolkit.wsi.annotations import Annotations

    if mask and isinstance(obj, (str, os.PathLike)) and Path(obj).suffix.lower() in ANNOTATION_SUFFIXES:
        obj = read_annotations(obj)
    if mask and isinstance(obj, Annotations):
        if slide is None:
            raise WSOLTypeError(f"`{name}` given as polygons needs the slide to rasterise on")
        yield AnnotationMask(obj, slide)
        return
    if isinstance(obj, (str, os.PathLike)):
        reader = TiffSlideReader(obj)
        try:
            yield reader
        finally:
            reader.close()
        return
    if mask and isinstance(obj, np.ndarray):
        if obj.ndim != 2:
            raise ShapeError(f"`{name}` as an array must have shape (H, W) at level 0, got {obj.shape}")
        yield InMemorySlide([(obj != 0).astype(np.uint8)])
        return
    if not isinstance(obj, SlideReader):
        raise WSOLTypeError(
            f"`{name}` must be a SlideReader (level_dimensions, level_downsamples, read_region) or a path"
            + (" or a 2-D array or Annotations" if mask else "")
            + f", got {type(obj).__name__}"
        )
    yield obj
