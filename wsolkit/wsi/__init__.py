"""Whole-slide images: readers, annotations, tiling, stitched CAM heatmaps, slide-level scores, scale-out.

One reader protocol (:class:`SlideReader`) with tiffslide as the default backend (:class:`TiffSlideReader`),
OpenSlide as an alternative and an in-memory pyramid for tests; :func:`resolve_level` turns ``mpp=`` into a level
and a resize. Annotations come from CAMELYON16 / ASAP XML or QuPath GeoJSON files and are rasterised at any level
or region. :func:`heatmap` runs ANY method returning :class:`~wsolkit.WSOLOutput` over a slide's tiles and
stitches the raw maps, normalised once per slide; :func:`slide_metrics` scores it against the annotation with the
streaming meters; :func:`run_slides` does many slides, sharded over ``torch.distributed`` ranks
(``wsolkit slide`` on the command line).
"""

from wsolkit.wsi.annotations import (
    EXCLUDE_GROUPS,
    AnnotationMask,
    Annotations,
    Polygon,
    read_annotations,
    read_asap_xml,
    read_geojson,
)
from wsolkit.wsi.contours import Region, regions, write_asap_xml, write_geojson
from wsolkit.wsi.detections import Detections, detections, read_detections_csv, write_detections_csv
from wsolkit.wsi.errors import (
    AnnotationError,
    AnnotationOutsideSlideError,
    CorruptTileError,
    MissingLevelError,
    SlideError,
    UnknownMPPError,
)
from wsolkit.wsi.export import colorize, save_heatmap_tiff, save_npy, save_overlay_png, thumbnail, write_pyramidal_tiff
from wsolkit.wsi.heatmap import Heatmap, blend_window, heatmap, resolve_preprocess
from wsolkit.wsi.readers import (
    InMemorySlide,
    OpenSlideReader,
    Resolution,
    SlideReader,
    TiffSlideReader,
    open_slide,
    read_rgb,
    resolve_level,
    slide_mpp,
    to_rgb,
)
from wsolkit.wsi.run import SlideJob, run_slides
from wsolkit.wsi.scoring import plot_slide_metrics, slide_meter, slide_metrics, write_metrics_csv
from wsolkit.wsi.tiling import TileDataset, TileGrid, grid_starts
from wsolkit.wsi.tissue import SlideTissue, otsu_threshold, slide_tissue, tissue_channel, tissue_mask

__all__ = [
    "SlideReader", "InMemorySlide", "TiffSlideReader", "OpenSlideReader", "open_slide", "read_rgb", "to_rgb",
    "slide_mpp", "Resolution", "resolve_level",
    "Polygon", "Annotations", "AnnotationMask", "read_asap_xml", "read_geojson", "read_annotations", "EXCLUDE_GROUPS",
    "SlideError", "MissingLevelError", "UnknownMPPError", "CorruptTileError", "AnnotationError",
    "AnnotationOutsideSlideError",
    "SlideTissue", "slide_tissue", "otsu_threshold", "tissue_channel", "tissue_mask",
    "TileGrid", "TileDataset", "grid_starts",
    "heatmap", "Heatmap", "blend_window", "resolve_preprocess",
    "slide_meter", "slide_metrics", "write_metrics_csv", "plot_slide_metrics",
    "write_pyramidal_tiff", "save_heatmap_tiff", "save_overlay_png", "save_npy", "colorize", "thumbnail",
    "SlideJob", "run_slides",
    "detections", "Detections", "write_detections_csv", "read_detections_csv",
    "regions", "Region", "write_geojson", "write_asap_xml",
]
