"""Annotation files (ASAP / CAMELYON16 XML, QuPath GeoJSON with holes and exclusions) rasterised at any level and
region equal a direct ``cv2.fillPoly`` of the whole level, cropped."""

from __future__ import annotations

import json

import cv2
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


def direct_fillpoly(shape, downsample, include, holes, exclude):
    """Reference: every polygon drawn on the whole level with fillPoly (8 fractional bits), holes and exclusions
    cleared, written independently of the library."""
    def pts(ring):
        return np.rint(np.asarray(ring, np.float64) / downsample * 256).astype(np.int32).reshape(-1, 1, 2)

    out = np.zeros(shape, np.uint8)
    for poly, hs in zip(include, holes):
        m = np.zeros(shape, np.uint8)
        cv2.fillPoly(m, [pts(poly)], 1, cv2.LINE_8, 8)
        if hs:
            cv2.fillPoly(m, [pts(h) for h in hs], 0, cv2.LINE_8, 8)
        out |= m
    for poly in exclude:
        m = np.zeros(shape, np.uint8)
        cv2.fillPoly(m, [pts(poly)], 1, cv2.LINE_8, 8)
        out[m > 0] = 0
    return out


@pytest.mark.parametrize("fmt", ["xml", "geojson"])
@pytest.mark.parametrize("downsample", [1.0, 2.0, 4.0])
def test_rasterize_equals_direct_fillpoly(tmp_path, fmt, downsample):
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
