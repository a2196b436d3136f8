"""Heatmap regions as objects a viewer opens: QuPath GeoJSON and ASAP XML.

:func:`regions` thresholds a heatmap (``>= threshold``) and traces each 8-connected region of heatmap pixels with
OpenCV ``findContours`` on the mask upsampled 2x (nearest): the vertices lie a quarter of a pixel inside the region's
pixel-edge outline, so sampling the polygons at the heatmap's pixel centres
(:meth:`~wsolkit.wsi.Annotations.rasterize`) gives back exactly the thresholded pixels. Coordinates are level-0 pixels
(heatmap pixel ``(r, c)`` covers ``[c·f, (c+1)·f) x [r·f, (r+1)·f)``, ``f`` = :attr:`~wsolkit.wsi.Heatmap.factor`).

- :func:`write_geojson`: a QuPath ``FeatureCollection``; one ``Polygon`` feature per region (holes as interior
  rings), ``objectType`` ``"annotation"`` or ``"detection"``, a ``classification`` name and colour, and the region's
  mean and max score and pixel count as ``measurements``.
- :func:`write_asap_xml`: ASAP / CAMELYON16 XML; ASAP has no holes, so a hole is written as a polygon of the
  exclusion group ``"_2"`` (what :data:`~wsolkit.wsi.annotations.EXCLUDE_GROUPS` subtracts, as in CAMELYON16's
  own files); the scores go in the annotation's name. A region lying inside another region's hole is lost by that
  subtraction (rare in heatmaps; the GeoJSON keeps it).
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from wsolkit._checks import WSOLValueError, check_choice, check_int, check_number
from wsolkit.wsi.detections import heatmap_array

__all__ = ["Region", "regions", "write_geojson", "write_asap_xml"]


@dataclass(frozen=True)
class Region:
    """One thresholded heatmap region: ``exterior (N, 2)`` and ``holes`` in level-0 pixels, its scores."""

    exterior: np.ndarray
    holes: tuple[np.ndarray, ...]
    mean: float
    max: float
    pixels: int


def regions(heatmap: Any, threshold: float = 0.5, *, min_pixels: int = 1, factor: float | None = None) -> list[Region]:
    """The 8-connected regions of ``heatmap >= threshold`` as polygons (see the module docstring).

    Example:
        >>> h = np.zeros((6, 6)); h[1:5, 1:5] = 0.8; h[2:4, 2:4] = 0.1
        >>> rs = regions(h, 0.5, factor=1.0)
        >>> len(rs), len(rs[0].holes), rs[0].pixels, round(rs[0].mean, 2)
        (1, 1, 12, 0.8)
    """
    a, f = heatmap_array(heatmap, factor)
    check_number(threshold, "threshold")
    check_int(min_pixels, "min_pixels", 1)
    above = a >= threshold
    n, lab, stats, _ = cv2.connectedComponentsWithStats(above.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    out = []
    for k in range(1, n):
        x0, y0, w, h, area = (int(v) for v in stats[k])
        if area < min_pixels:
            continue
        crop = lab[y0 : y0 + h, x0 : x0 + w] == k
        up = np.repeat(np.repeat(crop.astype(np.uint8), 2, axis=0), 2, axis=1)
        up = np.pad(up, 1)  # contours of a region touching the crop border
        cnts, hier = cv2.findContours(up, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)

        def ring(c: np.ndarray, x0: int = x0, y0: int = y0) -> np.ndarray:
            p = c.reshape(-1, 2).astype(np.float64) - 1.0  # undo the padding
            return np.stack([(p[:, 0] + 0.5) / 2 + x0, (p[:, 1] + 0.5) / 2 + y0], 1) * f

        outer = [i for i in range(len(cnts)) if hier[0][i][3] < 0]
        if len(outer) != 1:  # pragma: no cover - one 8-connected component has one outer border
            raise WSOLValueError(f"region {k}: {len(outer)} outer contours")
        holes = tuple(ring(cnts[i]) for i in range(len(cnts)) if hier[0][i][3] == outer[0] and len(cnts[i]) >= 3)
        ext = ring(cnts[outer[0]])
        vals = a[y0 : y0 + h, x0 : x0 + w][crop]
        out.append(Region(ext, holes, float(vals.mean()), float(vals.max()), int(area)))
    return out


def _closed(ring: np.ndarray, ndigits: int) -> list[list[float]]:
    pts = [[round(float(x), ndigits), round(float(y), ndigits)] for x, y in ring]
    return pts + [pts[0]]


def write_geojson(path: str | os.PathLike, regions: Sequence[Region], *, name: str = "Tumor",
                  object_type: str = "annotation", color: tuple[int, int, int] = (200, 0, 0),
                  ndigits: int = 3) -> Path:
    """Write regions as a QuPath-importable GeoJSON ``FeatureCollection`` (File > Import objects, or drag and drop).

    Args:
        path: the ``.geojson`` file.
        regions: from :func:`regions`.
        name: the classification name of every feature.
        object_type: ``"annotation"`` (editable) or ``"detection"`` (many, light).
        color: the classification colour (RGB).
        ndigits: decimals of the coordinates.
    """
    check_choice(object_type, "object_type", ("annotation", "detection"))
    feats = []
    for i, r in enumerate(regions):
        feats.append({
            "type": "Feature",
            "id": f"wsolkit-region-{i}",
            "geometry": {"type": "Polygon",
                         "coordinates": [_closed(r.exterior, ndigits), *(_closed(h, ndigits) for h in r.holes)]},
            "properties": {
                "objectType": object_type,
                "classification": {"name": name, "color": [int(c) for c in color]},
                "isLocked": False,
                "measurements": {"Mean score": r.mean, "Max score": r.max, "Heatmap pixels": r.pixels},
            },
        })
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return path


def write_asap_xml(path: str | os.PathLike, regions: Sequence[Region], *, group: str = "Tumor",
                   color: str = "#F4FA58", hole_group: str = "_2", ndigits: int = 3) -> Path:
    """Write regions as ASAP XML (``<ASAP_Annotations>``), holes as polygons of ``hole_group`` (an exclusion)."""
    root = ET.Element("ASAP_Annotations")
    anns = ET.SubElement(root, "Annotations")

    def add(ring: np.ndarray, label: str, grp: str, col: str) -> None:
        a = ET.SubElement(anns, "Annotation", Name=label, Type="Polygon", PartOfGroup=grp, Color=col)
        cs = ET.SubElement(a, "Coordinates")
        for j, (x, y) in enumerate(ring):
            ET.SubElement(cs, "Coordinate", Order=str(j), X=repr(round(float(x), ndigits)),
                          Y=repr(round(float(y), ndigits)))

    for i, r in enumerate(regions):
        add(r.exterior, f"Region {i} (max {r.max:.4f}, mean {r.mean:.4f})", group, color)
        for j, h in enumerate(r.holes):
            add(h, f"Region {i} hole {j}", hole_group, "#64FE2E")
    groups = ET.SubElement(root, "AnnotationGroups")
    for g, c in ((group, color), (hole_group, "#64FE2E")):
        ET.SubElement(ET.SubElement(groups, "Group", Name=g, PartOfGroup="None", Color=c), "Attributes")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path
