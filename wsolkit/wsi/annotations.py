"""Slide annotations: CAMELYON16 / ASAP XML and QuPath GeoJSON polygons, rasterised by pixel centres.

Polygons are held in level-0 pixel coordinates. A polygon may have holes (GeoJSON interior rings) and belongs to
a group; polygons of an *exclusion* group are subtracted after every other polygon is drawn. CAMELYON16's XML
files put tumour regions in groups ``_0`` and ``_1`` and non-tumour regions inside them in group ``_2``, which is
an exclusion group by default (as in the challenge's own mask conversion); QuPath classes named ``Exclusion`` /
``Ignore`` are exclusions too.

Rasterisation (:meth:`Annotations.rasterize`) maps a level-0 vertex ``p`` to ``p / downsample - origin`` in the
pixels of a level region (pixel ``(r, c)`` covers ``[c, c + 1) x [r, r + 1)``) and keeps the pixels whose centre lies
inside (half-open on the right / bottom edges, as shapely / rasterio sample), at every downsample: a 64-px square at
downsample 32 is 2 x 2 pixels. A region's mask is exactly the crop of the whole level's mask.
"""

from __future__ import annotations

import json
import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wsolkit._checks import WSOLTypeError, check_int, check_number
from wsolkit.wsi.errors import AnnotationError, AnnotationOutsideSlideError

__all__ = ["Polygon", "Annotations", "read_asap_xml", "read_geojson", "read_annotations", "AnnotationMask",
           "EXCLUDE_GROUPS"]

#: group / class names subtracted from the mask by default (case-insensitive)
EXCLUDE_GROUPS = ("_2", "exclusion", "exclude", "ignore", "ignore*")

def _ring(points: Any, where: str) -> np.ndarray:
    try:
        a = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise AnnotationError(f"{where}: coordinates are not numbers ({e})") from None
    if a.ndim != 2 or a.shape[1] < 2 or a.shape[0] < 3:
        raise AnnotationError(f"{where}: a polygon ring needs >= 3 (x, y) points, got shape {a.shape}")
    a = a[:, :2]
    if not np.isfinite(a).all():
        raise AnnotationError(f"{where}: coordinates must be finite")
    return a


@dataclass(frozen=True)
class Polygon:
    """A polygon in level-0 pixel coordinates: ``exterior (N, 2)`` xy, ``holes`` rings, its ``group`` name."""

    exterior: np.ndarray
    holes: tuple[np.ndarray, ...] = ()
    group: str = ""

    def bounds(self) -> tuple[float, float, float, float]:
        """``(x_min, y_min, x_max, y_max)`` of the exterior."""
        return (*self.exterior.min(0).tolist(), *self.exterior.max(0).tolist())


def _edges(rings: Sequence[np.ndarray], downsample: float, origin: tuple[int, int]) -> np.ndarray:
    """``(E, 4)`` non-horizontal edges ``x1, y1, x2, y2`` of closed rings, in the pixel-edge coordinates of a region
    (pixel ``(r, c)`` covers ``[c, c + 1) x [r, r + 1)``, its centre is ``(c + 0.5, r + 0.5)``)."""
    out = []
    for ring in rings:
        p = np.asarray(ring, np.float64) / downsample - np.asarray(origin, np.float64)
        q = np.roll(p, -1, axis=0)
        e = np.concatenate([p, q], axis=1)
        out.append(e[e[:, 1] != e[:, 3]])
    return np.concatenate(out) if out else np.zeros((0, 4))


def _draw(mask: np.ndarray, poly: Polygon, downsample: float, origin: tuple[int, int], value: int) -> None:
    """Set the pixels whose **centre** lies in the polygon minus its holes to ``value`` (even-odd rule).

    A centre exactly on an edge is inside on the left / top edges and outside on the right / bottom ones (half-open,
    as GDAL / rasterio), so abutting polygons share no pixel and a polygon's area in pixels is its area divided by
    ``downsample ** 2`` up to the boundary. Scanline over the pixel centres: every edge crosses the rows whose centre
    ``y + 0.5`` lies in ``[y_min, y_max)``; between consecutive crossings of a row (even-odd), pixels ``c`` with
    ``x_a <= c + 0.5 < x_b`` are inside. The rule does not depend on the region: a region's mask is exactly the crop
    of the whole level's mask.
    """
    h, w = mask.shape
    e = _edges((poly.exterior, *poly.holes), downsample, origin)
    if len(e) == 0 or h == 0 or w == 0:
        return
    x1, y1, x2, y2 = e.T
    lo, hi = np.minimum(y1, y2), np.maximum(y1, y2)
    r0 = np.clip(np.ceil(lo - 0.5), 0, h).astype(np.int64)  # first row with centre >= lo
    r1 = np.clip(np.ceil(hi - 0.5), 0, h).astype(np.int64)  # first row with centre >= hi (excluded)
    n = np.maximum(r1 - r0, 0)
    if n.sum() == 0:
        return
    idx = np.repeat(np.arange(len(e)), n)
    start = np.repeat(np.cumsum(n) - n, n)
    rows = r0[idx] + (np.arange(len(idx)) - start)
    yc = rows + 0.5
    xs = x1[idx] + (yc - y1[idx]) * (x2[idx] - x1[idx]) / (y2[idx] - y1[idx])
    order = np.lexsort((xs, rows))
    rows, xs = rows[order], xs[order]
    # crossings pair up within a row (each closed ring crosses a row an even number of times)
    a_rows, xa, xb = rows[0::2], xs[0::2], xs[1::2]
    ca = np.clip(np.ceil(xa - 0.5), 0, w).astype(np.int64)  # first column with centre >= xa
    cb = np.clip(np.ceil(xb - 0.5), 0, w).astype(np.int64)  # first column with centre >= xb (excluded)
    keep = cb > ca
    if not keep.any():
        return
    cover = np.zeros((h, w + 1), np.int32)
    np.add.at(cover, (a_rows[keep], ca[keep]), 1)
    np.add.at(cover, (a_rows[keep], cb[keep]), -1)
    inside = np.cumsum(cover, axis=1)[:, :w] > 0
    mask[inside] = value


def _match(group: str, patterns: Iterable[str]) -> bool:
    import fnmatch

    return any(fnmatch.fnmatch(group.lower(), p.lower()) for p in patterns)


@dataclass(frozen=True)
class Annotations:
    """The polygons of one slide.

    Args:
        polygons: the polygons (level-0 pixels).
        exclude: group names (fnmatch patterns, case-insensitive) whose polygons are subtracted.
        source: where they were read from (for messages).

    Example:
        >>> sq = Polygon(np.array([[0, 0], [8, 0], [8, 8], [0, 8]], float), (), "Tumor")
        >>> hole = Polygon(np.array([[2, 2], [6, 2], [6, 6], [2, 6]], float), (), "_2")
        >>> int(Annotations([sq, hole]).rasterize((0, 0, 10, 10)).sum())  # 8 x 8 minus 4 x 4
        48
    """

    polygons: Sequence[Polygon]
    exclude: Sequence[str] = EXCLUDE_GROUPS
    source: str = ""
    groups: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        for p in self.polygons:
            if not isinstance(p, Polygon):
                raise WSOLTypeError(f"`polygons` must hold Polygon objects, got {type(p).__name__}")
        object.__setattr__(self, "groups", tuple(sorted({p.group for p in self.polygons})))

    def bounds(self) -> tuple[float, float, float, float] | None:
        """Level-0 box of every polygon, ``None`` when there is none."""
        if not self.polygons:
            return None
        b = np.array([p.bounds() for p in self.polygons])
        return float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())

    def check_within(self, dimensions: tuple[int, int], tolerance: float = 1.0) -> Annotations:
        """Raise :class:`AnnotationOutsideSlideError` unless every vertex lies in the level-0 ``(width, height)``."""
        w, h = dimensions
        for i, p in enumerate(self.polygons):
            x0, y0, x1, y1 = p.bounds()
            if x0 < -tolerance or y0 < -tolerance or x1 > w + tolerance or y1 > h + tolerance:
                raise AnnotationOutsideSlideError(
                    f"polygon {i} (group {p.group!r}) of {self.source or 'the annotations'} spans x {x0:.1f}..{x1:.1f}"
                    f", y {y0:.1f}..{y1:.1f}, outside the slide of level-0 size (width, height)=({w}, {h}); is it "
                    f"the annotation of another slide?"
                )
        return self

    def rasterize(self, region: tuple[int, int, int, int], downsample: float = 1.0) -> np.ndarray:
        """uint8 mask (1 = annotated) of ``region = (x, y, width, height)`` in the pixels of a level.

        Args:
            region: box in the pixels of the level of ``downsample`` (``x, y`` = its top-left corner).
            downsample: level-0 pixels per pixel of that level.

        Shape:
            ``(height, width)`` uint8 in {0, 1}.
        """
        x, y, w, h = (int(v) for v in region)
        check_int(w, "region width", 0)
        check_int(h, "region height", 0)
        check_number(downsample, "downsample", 0.0, low_inclusive=False)
        mask = np.zeros((h, w), np.uint8)
        excluded = [p for p in self.polygons if _match(p.group, self.exclude)]
        for p in self.polygons:
            if not _match(p.group, self.exclude):
                _draw(mask, p, downsample, (x, y), 1)
        for p in excluded:
            _draw(mask, p, downsample, (x, y), 0)
        return mask


def read_asap_xml(path: str | os.PathLike, exclude: Sequence[str] = EXCLUDE_GROUPS) -> Annotations:
    """CAMELYON16 / ASAP XML (``<Annotation PartOfGroup=...><Coordinates><Coordinate X= Y= Order=>``).

    Example:
        >>> import tempfile
        >>> xml = ('<ASAP_Annotations><Annotations><Annotation Name="a" Type="Polygon" PartOfGroup="_0">'
        ...        '<Coordinates><Coordinate Order="0" X="1" Y="1"/><Coordinate Order="1" X="5" Y="1"/>'
        ...        '<Coordinate Order="2" X="5" Y="4"/></Coordinates></Annotation></Annotations></ASAP_Annotations>')
        >>> with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
        ...     _ = f.write(xml)
        >>> read_asap_xml(f.name).polygons[0].exterior.shape
        (3, 2)
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise AnnotationError(f"{str(path)!r} is not valid XML: {e}") from None
    polys = []
    for i, ann in enumerate(root.iter("Annotation")):
        kind = (ann.get("Type") or "Polygon").lower()
        if kind not in ("polygon", "spline", "rectangle"):
            continue  # dots / measurement lines carry no area
        coords = sorted(ann.iter("Coordinate"), key=lambda c: float(c.get("Order", 0)))
        try:
            pts = [(float(c.get("X").replace(",", ".")), float(c.get("Y").replace(",", "."))) for c in coords]
        except (AttributeError, ValueError) as e:
            raise AnnotationError(f"{str(path)!r} annotation {i}: bad coordinate ({e})") from None
        polys.append(Polygon(_ring(pts, f"{path.name} annotation {i}"), (), ann.get("PartOfGroup") or ""))
    return Annotations(polys, tuple(exclude), str(path))


def _qupath_group(props: dict[str, Any]) -> str:
    c = props.get("classification")
    if isinstance(c, dict):
        return str(c.get("name", ""))
    if isinstance(c, str):
        return c
    return str(props.get("name", "") or "")


_NO_AREA = ("point", "multipoint", "linestring", "multilinestring")


def _circle(center: Any, radius: Any, where: str) -> np.ndarray:
    try:
        cx, cy = (float(v) for v in list(center)[:2])
        r = float(radius)
    except (TypeError, ValueError):
        raise AnnotationError(f"{where}: a circle needs a centre [x, y] and a numeric radius, got {center!r}, "
                              f"{radius!r}") from None
    if not (math.isfinite(r) and r > 0):
        raise AnnotationError(f"{where}: a circle's radius must be positive, got {radius!r}")
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1)


def _geometry_polygons(geom: Any, props: dict[str, Any], where: str, skipped: list[str]) -> list[list[np.ndarray]]:
    """Rings ``[exterior, *holes]`` of every areal part of a GeoJSON geometry (types case-insensitive)."""
    if geom is None:
        skipped.append("null geometry")
        return []
    if not isinstance(geom, dict):
        raise AnnotationError(f"{where}: a geometry must be an object, got {type(geom).__name__}")
    kind = str(geom.get("type", "")).lower()
    coords = geom.get("coordinates")
    if kind == "polygon":
        parts = [coords]
    elif kind == "multipolygon":
        parts = coords or []
    elif kind == "geometrycollection":
        out = []
        for j, g in enumerate(geom.get("geometries") or []):
            out += _geometry_polygons(g, props, f"{where} geometry {j}", skipped)
        return out
    elif kind == "circle" or (kind == "point" and str(props.get("subType", "")).lower() == "circle"):
        radius = geom.get("radius", props.get("radius"))
        return [[_circle(coords, radius, where)]]
    elif kind in _NO_AREA:
        skipped.append(kind)
        return []
    else:
        raise AnnotationError(f"{where}: unknown geometry type {geom.get('type')!r} (expected Polygon, MultiPolygon, "
                              f"GeometryCollection, Circle, or a point / line, which have no area)")
    out = []
    for j, rings in enumerate(parts or []):
        w = f"{where} polygon {j}"
        if not rings:
            raise AnnotationError(f"{w}: no ring")
        out.append([_ring(rings[0], w), *(_ring(r, w) for r in rings[1:])])
    return out


def read_geojson(path: str | os.PathLike, exclude: Sequence[str] = EXCLUDE_GROUPS) -> Annotations:
    """QuPath GeoJSON (a ``FeatureCollection``, a list of features, one feature or a bare geometry).

    Areal geometries are read: ``Polygon``, ``MultiPolygon``, the areal members of a ``GeometryCollection``, and
    circles (a ``Circle`` geometry, or a ``Point`` with ``properties.subType == "Circle"``, with a ``radius``; drawn
    as 64-gons); type names are case-insensitive. Points, lines and null geometries have no area and are skipped;
    a file with features of which none has an area raises :class:`AnnotationError` (it would otherwise score the
    slide as tumour-free), as does an unknown geometry type. The group of a feature is its
    ``properties.classification.name`` (QuPath), else ``properties.name``. Interior rings are holes.

    Example:
        >>> import tempfile
        >>> f = {"type": "Feature", "properties": {"classification": {"name": "Tumor"}}, "geometry": {
        ...     "type": "Polygon", "coordinates": [[[0, 0], [9, 0], [9, 9], [0, 9], [0, 0]],
        ...                                        [[3, 3], [6, 3], [6, 6], [3, 6], [3, 3]]]}}
        >>> with tempfile.NamedTemporaryFile("w", suffix=".geojson", delete=False) as fh:
        ...     _ = fh.write(json.dumps(f))
        >>> a = read_geojson(fh.name)
        >>> a.groups, len(a.polygons[0].holes)
        (('Tumor',), 1)
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AnnotationError(f"{str(path)!r} is not valid JSON: {e}") from None
    kind = str(data.get("type", "")).lower() if isinstance(data, dict) else ""
    if kind == "featurecollection":
        feats = data.get("features") or []
    elif isinstance(data, list):
        feats = data
    elif kind == "feature":
        feats = [data]
    elif kind:  # a bare geometry
        feats = [{"type": "Feature", "geometry": data, "properties": {}}]
    else:
        raise AnnotationError(f"{str(path)!r} must hold a GeoJSON FeatureCollection, Feature, geometry or list of "
                              f"features")
    polys: list[Polygon] = []
    skipped: list[str] = []
    for i, f in enumerate(feats):
        if not isinstance(f, dict):
            raise AnnotationError(f"{path.name} feature {i}: must be an object, got {type(f).__name__}")
        props = f.get("properties") or {}
        group = _qupath_group(props)
        for rings in _geometry_polygons(f.get("geometry"), props, f"{path.name} feature {i}", skipped):
            polys.append(Polygon(rings[0], tuple(rings[1:]), group))
    if feats and not polys:
        counts = {k: skipped.count(k) for k in sorted(set(skipped))}
        raise AnnotationError(f"{str(path)!r}: {len(feats)} feature(s) and none with an area ({counts}); a tumour-free "
                              f"slide needs no annotation file (or an empty FeatureCollection)")
    return Annotations(polys, tuple(exclude), str(path))


def read_annotations(path: str | os.PathLike, exclude: Sequence[str] = EXCLUDE_GROUPS) -> Annotations:
    """Read an ``.xml`` (ASAP / CAMELYON16) or ``.geojson`` / ``.json`` (QuPath) annotation file."""
    suffix = Path(path).suffix.lower()
    if suffix == ".xml":
        return read_asap_xml(path, exclude)
    if suffix in (".geojson", ".json"):
        return read_geojson(path, exclude)
    raise AnnotationError(f"unknown annotation format {suffix!r} of {str(path)!r}: expected .xml, .geojson or .json")


class AnnotationMask:
    """Annotations seen through the :class:`~wsolkit.wsi.SlideReader` interface of the slide they belong to.

    ``read_region`` returns the rasterised ``(h, w)`` uint8 mask (1 = annotated) of a region, so code written for
    mask pyramids (e.g. the CAMELYON16 patch protocol) reads annotation files unchanged.

    Args:
        annotations: the slide's :class:`Annotations` (checked to lie within the slide).
        slide: the slide reader (its level dimensions and downsamples are used).

    Example:
        >>> from wsolkit.wsi.readers import InMemorySlide
        >>> sq = Polygon(np.array([[0, 0], [8, 0], [8, 8], [0, 8]], float))
        >>> m = AnnotationMask(Annotations([sq]), InMemorySlide.from_array(np.zeros((16, 16), np.uint8), 2))
        >>> int(m.read_region((0, 0), 1, (8, 8)).sum())
        16
    """

    def __init__(self, annotations: Annotations, slide: Any) -> None:
        if not isinstance(annotations, Annotations):
            raise WSOLTypeError(f"`annotations` must be Annotations, got {type(annotations).__name__}")
        self.annotations = annotations.check_within(tuple(slide.level_dimensions[0]))
        self.level_dimensions = [tuple(int(v) for v in d) for d in slide.level_dimensions]
        self.level_downsamples = [float(d) for d in slide.level_downsamples]

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        d = self.level_downsamples[int(level)]
        x, y = int(math.floor(location[0] / d)), int(math.floor(location[1] / d))
        return self.annotations.rasterize((x, y, int(size[0]), int(size[1])), d)

    def close(self) -> None:
        """Nothing to release."""
