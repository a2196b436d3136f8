"""Annotation files (ASAP / CAMELYON16 XML, QuPath GeoJSON with holes and exclusions) rasterised at any level and
region equal an independent pixel-centre test (crossing number at every pixel centre) of the whole level, cropped."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wsolkit.wsi import (
    AnnotationError,
    AnnotationOutsideSlideError,
    read_annotations,
)

TUMOUR = [[(20.5, 30.25), (180.0, 22.0), (210.75, 150.5), (60.0, 190.0)], [(230, 40), (300, 40), (300, 100)]]
EXCLUDED = [[(80, 80), (120, 80), (120, 120), (80, 120)]]
HOLE = [(40.0, 60.0), (70.0, 60.0), (70.0, 90.0), (40.0, 90.0)]


def write_xml(path, groups):
    parts = ["<?xml version='1.0'?><ASAP_Annotations><Annotations>"]
    for group, polys in groups.items():
        for k, poly in enumerate(polys):
            c = "".join(f'<Coordinate Order="{i}" X="{x}" Y="{y}"/>' for i, (x, y) in enumerate(poly))
            parts.append(f'<Annotation Name="{group}{k}" Type="Polygon" PartOfGroup="{group}" Color="#F4FA58">'
                         f"<Coordinates>{c}</Coordinates></Annotation>")
    parts.append('</Annotations><AnnotationGroups><Group Name="_0" PartOfGroup="None"/></AnnotationGroups>'
                 "</ASAP_Annotations>")
    path.write_text("".join(parts))
    return path


def write_geojson(path):
    def feat(rings, name):
        closed = [[list(p) for p in r] + [list(r[0])] for r in rings]
        return {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": closed},
                "properties": {"objectType": "annotation", "classification": {"name": name, "color": [1, 2, 3]}}}

    feats = [feat([TUMOUR[0], HOLE], "Tumor"), feat([TUMOUR[1]], "Tumor"), feat(EXCLUDED, "Exclusion"),
             {"type": "Feature", "geometry": {"type": "Point", "coordinates": [5, 5]}, "properties": {}}]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return path


def _centres_inside(shape, downsample, rings):
    """Crossing number at every pixel centre ``(c + 0.5, r + 0.5)``: edges crossing the centre's row (half-open in y)
    at ``x <= centre``; odd = inside (written independently of the library, per pixel)."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    xc, yc = xx + 0.5, yy + 0.5
    count = np.zeros(shape, np.int64)
    for ring in rings:
        p = np.asarray(ring, np.float64) / downsample
        for (x1, y1), (x2, y2) in zip(p, np.roll(p, -1, axis=0)):
            if y1 == y2:
                continue
            crosses = (yc >= min(y1, y2)) & (yc < max(y1, y2))
            count += crosses & (x1 + (yc - y1) * (x2 - x1) / (y2 - y1) <= xc)
    return count % 2 == 1


def direct_fillpoly(shape, downsample, include, holes, exclude):
    """Reference: every polygon sampled at the pixel centres of the whole level, holes and exclusions cleared."""
    out = np.zeros(shape, np.uint8)
    for poly, hs in zip(include, holes):
        out[_centres_inside(shape, downsample, [poly, *hs])] = 1
    for poly in exclude:
        out[_centres_inside(shape, downsample, [poly])] = 0
    return out


def test_pixel_centre_rule_at_every_downsample():
    from wsolkit.wsi import Annotations, Polygon

    sq = Annotations([Polygon(np.array([[0, 0], [64, 0], [64, 64], [0, 64]], float))])
    assert sq.rasterize((0, 0, 4, 4), 32).sum() == 4  # 2 x 2, not 3 x 3
    assert sq.rasterize((0, 0, 4, 4), 64).sum() == 1
    rng = np.random.default_rng(0)
    ang = np.sort(rng.uniform(0, 2 * np.pi, 40))
    ring = np.stack([2048 + 1500 * np.cos(ang), 2048 + 1100 * np.sin(ang)], 1)
    area = 0.5 * abs(np.dot(ring[:, 0], np.roll(ring[:, 1], -1)) - np.dot(ring[:, 1], np.roll(ring[:, 0], -1)))
    ann = Annotations([Polygon(ring)])
    for d in (1, 4, 32, 64):
        n = int(4096 / d)
        # no outward growth: the pixel area matches the polygon's within the boundary's discretisation
        got = ann.rasterize((0, 0, n, n), d).sum() * d * d
        assert abs(got / area - 1) < (0.002 if d == 1 else 0.03), d


@pytest.mark.parametrize("fmt", ["xml", "geojson"])
@pytest.mark.parametrize("downsample", [1.0, 2.0, 4.0])
def test_rasterize_equals_pixel_centre_reference(tmp_path, fmt, downsample):
    if fmt == "xml":
        path = write_xml(tmp_path / "a.xml", {"_0": TUMOUR, "_2": EXCLUDED})
        holes = [[], []]
    else:
        path = write_geojson(tmp_path / "a.geojson")
        holes = [[HOLE], []]
    ann = read_annotations(path)
    w, h = int(320 / downsample), int(224 / downsample)
    full = direct_fillpoly((h, w), downsample, TUMOUR, holes, EXCLUDED)
    assert full.sum() > 100
    np.testing.assert_array_equal(ann.rasterize((0, 0, w, h), downsample), full)
    for x, y, rw, rh in [(5, 7, 30, 20), (w // 2, h // 3, w - w // 2, 10), (w - 3, h - 3, 9, 9)]:
        want = np.zeros((rh, rw), np.uint8)
        crop = full[y : y + rh, x : x + rw]
        want[: crop.shape[0], : crop.shape[1]] = crop
        np.testing.assert_array_equal(ann.rasterize((x, y, rw, rh), downsample), want)


def test_hole_and_exclusion_are_cleared(tmp_path):
    ann = read_annotations(write_geojson(tmp_path / "a.geojson"))
    m = ann.rasterize((0, 0, 320, 224))
    assert m[75, 55] == 0 and m[100, 100] == 0 and m[140, 150] == 1  # hole, exclusion, tumour
    assert ann.groups == ("Exclusion", "Tumor")


def test_outside_and_malformed_are_named_errors(tmp_path):
    ann = read_annotations(write_xml(tmp_path / "a.xml", {"_0": TUMOUR}))
    ann.check_within((320, 224))
    with pytest.raises(AnnotationOutsideSlideError, match=r"outside the slide.*\(200, 150\)"):
        ann.check_within((200, 150))
    (tmp_path / "bad.xml").write_text("<ASAP_Annotations><Annotations>")
    with pytest.raises(AnnotationError, match="not valid XML"):
        read_annotations(tmp_path / "bad.xml")
    geom = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}
    (tmp_path / "two.geojson").write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": geom}))
    with pytest.raises(AnnotationError, match=">= 3"):
        read_annotations(tmp_path / "two.geojson")
    with pytest.raises(AnnotationError, match="unknown annotation format"):
        read_annotations(tmp_path / "a.txt")


def _write(tmp_path, obj, name="a.geojson"):
    p = tmp_path / name
    p.write_text(json.dumps(obj))
    return p


SQUARE = [[[10, 10], [50, 10], [50, 50], [10, 50], [10, 10]]]


def test_geojson_variants_with_an_area_are_read(tmp_path):
    feat = lambda geom, **props: {"type": "Feature", "geometry": geom, "properties": props}  # noqa: E731
    coll = {"type": "FeatureCollection", "features": [
        feat({"type": "GeometryCollection", "geometries": [{"type": "Point", "coordinates": [1, 1]},
                                                            {"type": "Polygon", "coordinates": SQUARE}]}),
        feat({"type": "polygon", "coordinates": [[[60, 60], [70, 60], [70, 70], [60, 70], [60, 60]]]}),  # lower case
        feat({"type": "Circle", "coordinates": [100, 100], "radius": 10}),
        feat({"type": "Point", "coordinates": [150, 40]}, subType="Circle", radius=5),
        feat(None),  # null geometry: no area, skipped
    ]}
    ann = read_annotations(_write(tmp_path, coll))
    assert len(ann.polygons) == 4
    m = ann.rasterize((0, 0, 200, 200))
    assert m[30, 30] and m[65, 65] and m[100, 100] and m[40, 150] and not m[5, 5]
    assert abs(int(m[80:121, 80:121].sum()) - np.pi * 100) < 0.05 * np.pi * 100  # the circle's area
    # a bare geometry and a lower-case FeatureCollection
    assert len(read_annotations(_write(tmp_path, {"type": "Polygon", "coordinates": SQUARE}, "b.json")).polygons) == 1
    lower = {"type": "featurecollection", "features": [feat({"type": "MultiPolygon", "coordinates": [SQUARE]})]}
    assert len(read_annotations(_write(tmp_path, lower, "c.geojson")).polygons) == 1


def test_geojson_without_any_area_or_with_unknown_types_is_an_error(tmp_path):
    only_points = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 1]}, "properties": {}},
        {"type": "Feature", "geometry": None, "properties": {}}]}
    with pytest.raises(AnnotationError, match="none with an area"):
        read_annotations(_write(tmp_path, only_points))
    unknown = {"type": "Feature", "geometry": {"type": "Ellipse", "coordinates": [1, 1]}, "properties": {}}
    with pytest.raises(AnnotationError, match="unknown geometry type 'Ellipse'"):
        read_annotations(_write(tmp_path, unknown, "d.geojson"))
    with pytest.raises(AnnotationError, match="radius"):
        read_annotations(_write(tmp_path, {"type": "Circle", "coordinates": [1, 1]}, "e.geojson"))
    assert read_annotations(_write(tmp_path, {"type": "FeatureCollection", "features": []}, "f.geojson")).polygons == []
