"""Whole-slide images: readers, annotations, tiling, stitched CAM heatmaps, slide-level scores, scale-out.

One reader protocol (:class:`SlideReader`) with tiffslide as the default backend (:class:`TiffSlideReader`),
OpenSlide as an alternative and an in-memory pyramid for tests; :func:`resolve_level` turns ``mpp=`` into a level
and a resize. Annotations come from CAMELYON16 / ASAP XML or QuPath GeoJSON files and are rasterised at any level
or region. :func:`heatmap` runs ANY method returning :class:`~wsolkit.WSOLOutput` over a slide's tiles and
stitches the raw maps, normalised once per slide; :func:`slide_metrics` scores it against the annotation with the
streaming meters; :func:`detections` gives CAMELYON16's ``prob,x,y`` lesion detections (scored by
:func:`wsolkit.metrics.froc`) and :func:`regions` the contours written for QuPath (:func:`write_geojson`) and ASAP
(:func:`write_asap_xml`); :func:`run_slides` does many slides, sharded over ``torch.distributed`` ranks
(``wsolkit slide`` on the command line).

``wsolkit.data.camelyon`` (the patch protocol) reads slides through this package: it is the one place slide
readers live.
"""

import importlib
from typing import Any

from wsolkit._deprecation import deprecated_names, lazy
from wsolkit.wsi.annotations import AnnotationMask, Annotations, Polygon, read_annotations
from wsolkit.wsi.contours import regions, write_asap_xml, write_geojson
from wsolkit.wsi.detections import Detections, detections, read_detections_csv, write_detections_csv
from wsolkit.wsi.errors import (
    AnnotationError,
    AnnotationOutsideSlideError,
    CorruptTileError,
    MissingLevelError,
    SlideError,
    UnknownMPPError,
    UnsupportedSlideError,
)
from wsolkit.wsi.export import save_heatmap_tiff, save_npy, save_overlay_png, write_pyramidal_tiff
from wsolkit.wsi.heatmap import Heatmap, heatmap
from wsolkit.wsi.readers import (
    InMemorySlide,
    OpenSlideReader,
    Resolution,
    SlideReader,
    TiffSlideReader,
    open_slide,
    resolve_level,
)
from wsolkit.wsi.run import SlideJob, run_slides
from wsolkit.wsi.scoring import slide_metrics
from wsolkit.wsi.tissue import slide_tissue

__all__ = [
    "open_slide", "SlideReader", "TiffSlideReader", "OpenSlideReader", "InMemorySlide", "resolve_level", "Resolution",
    "read_annotations", "Annotations", "Polygon", "AnnotationMask",
    "SlideError", "MissingLevelError", "UnknownMPPError", "CorruptTileError", "UnsupportedSlideError",
    "AnnotationError", "AnnotationOutsideSlideError",
    "slide_tissue", "heatmap", "Heatmap", "slide_metrics",
    "detections", "Detections", "write_detections_csv", "read_detections_csv",
    "regions", "write_geojson", "write_asap_xml",
    "write_pyramidal_tiff", "save_heatmap_tiff", "save_overlay_png", "save_npy",
    "SlideJob", "run_slides",
]

# names exported here before 0.3, now only in their module (internals and helpers users rarely call)
_MOVED = {
    "read_rgb": "readers", "to_rgb": "readers", "slide_mpp": "readers",
    "read_asap_xml": "annotations", "read_geojson": "annotations", "EXCLUDE_GROUPS": "annotations",
    "SlideTissue": "tissue", "otsu_threshold": "tissue", "tissue_channel": "tissue", "tissue_mask": "tissue",
    "TileGrid": "tiling", "TileDataset": "tiling", "grid_starts": "tiling",
    "blend_window": "heatmap", "resolve_preprocess": "heatmap",
    "slide_meter": "scoring", "write_metrics_csv": "scoring", "plot_slide_metrics": "scoring",
    "colorize": "export", "thumbnail": "export"
}


def _moved(name: str, module: str) -> Any:
    return lazy(lambda: getattr(importlib.import_module(f"wsolkit.wsi.{module}"), name))


# names moved out of ``wsolkit.wsi``: still resolved, with the DeprecationWarning naming their module
__getattr__ = deprecated_names("wsolkit.wsi", {n: (_moved(n, m), f"wsolkit.wsi.{m}.{n}") for n, m in _MOVED.items()})
