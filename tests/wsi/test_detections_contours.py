"""Heatmap detections (CAMELYON16 ``prob,x,y``) and contours (QuPath GeoJSON, ASAP XML) read back as annotations."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from wsolkit._checks import WSOLValueError
from wsolkit.wsi import InMemorySlide, heatmap, read_annotations
from wsolkit.wsi.contours import regions, write_asap_xml, write_geojson
from wsolkit.wsi.detections import detections, read_detections_csv, write_detections_csv

nd = pytest.importorskip("scipy.ndimage")


def smooth_map(seed, shape=(90, 130), sigma=3):
    h = cv2.GaussianBlur(np.random.default_rng(seed).uniform(size=shape), (0, 0), sigma)
    return (h - h.min()) / (h.max() - h.min())


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("factor", [1.0, 32.0, 12.5])
def test_component_detections_match_scipy(seed, factor):
    h = smooth_map(seed)
    h[5, 5] = np.nan  # NaN is 0
    d = detections(h, 0.55, factor=factor)
    lab, n = nd.label(np.nan_to_num(h) >= 0.55, structure=np.ones((3, 3)))
    want = []
    for k in range(1, n + 1):
        vals = np.where(lab == k, np.nan_to_num(h), -1)
        r, c = divmod(int(np.argmax(vals)), h.shape[1])  # argmax: first maximum in raster order
        want.append((float(vals[r, c]), int((c + 0.5) * factor // 1), int((r + 0.5) * factor // 1), (lab == k).sum()))
    want.sort(key=lambda t: (-t[0], t[2], t[1]))
    assert d.rows() == [w[:3] for w in want]
    assert d.pixels.tolist() == [w[3] for w in want]
    assert d.slide_score == max(w[0] for w in want)


def test_maxima_detections_match_scipy():
    h = smooth_map(7, sigma=2)
    h[10:12, 20:22] = 2.0  # a plateau: one detection at its first pixel
    d = detections(h, 0.3, rule="maxima", radius=2, factor=2.0)
    is_max = (h == nd.maximum_filter(h, size=5, mode="constant", cval=-np.inf)) & (h >= 0.3)
    lab, n = nd.label(is_max, structure=np.ones((3, 3)))
    firsts = [divmod(int(np.flatnonzero(lab == k)[0]), h.shape[1]) for k in range(1, n + 1)]
    want = sorted(((float(h[r, c]), int(2 * c + 1), int(2 * r + 1)) for r, c in firsts),
                  key=lambda t: (-t[0], t[2], t[1]))
    assert d.rows() == want
    assert d.rows()[0] == (2.0, 41, 21) and sum(p == 2.0 for p in d.probs) == 1


def test_detections_of_a_heatmap_use_its_factor_and_csv_round_trips(tmp_path, Pointwise):
    img = np.full((128, 192, 3), 240, np.uint8)
    img[40:90, 60:120] = (120, 40, 160)
    hm = heatmap(InMemorySlide.from_array(img, 2), Pointwise(), level=1, tile=32, overlap=0, tissue=False,
                 num_workers=0)
    d = detections(hm, 0.5)
    assert len(d) >= 1 and hm.factor == 2.0
    assert all(0 <= x < 192 and 0 <= y < 128 for _, x, y in d.rows())
    p = write_detections_csv(tmp_path / "tumor_001.csv", d)
    lines = p.read_text().splitlines()
    assert all(len(line.split(",")) == 3 for line in lines) and not lines[0].startswith("prob")
    # the official reader: float(prob), int(x), int(y) per line
    official = [(float(a), int(b), int(c)) for a, b, c in (line.split(",") for line in lines)]
    assert official == d.rows() == read_detections_csv(p).rows()
    with pytest.raises(WSOLValueError, match="factor"):
        detections(np.zeros((4, 4)))


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


@pytest.mark.parametrize("factor", [1.0, 4.0, 32.0, 7.5])
def test_contours_read_back_as_the_thresholded_heatmap(tmp_path, factor):
    h = smooth_map(3)
    h[40:70, 50:90] = 0.9
    h[50:60, 60:80] = 0.0  # a hole
    h[54:56, 69:71] = 0.95  # an island inside the hole
    want = h >= 0.5
    rs = regions(h, 0.5, factor=factor)
    assert any(len(r.holes) for r in rs)
    g = write_geojson(tmp_path / "r.geojson", rs, name="Metastasis")
    x = write_asap_xml(tmp_path / "r.xml", rs)
    back_g = read_annotations(g).rasterize((0, 0, h.shape[1], h.shape[0]), factor).astype(bool)
    back_x = read_annotations(x).rasterize((0, 0, h.shape[1], h.shape[0]), factor).astype(bool)
    assert np.array_equal(back_g, want)  # exact: the vertices sit a quarter pixel inside the pixel outline
    assert _iou(back_x, want) >= 0.99  # ASAP has no holes: the island inside a hole is subtracted with it
    assert not back_x[54, 69] and back_g[54, 69]


def test_geojson_is_a_qupath_feature_collection(tmp_path):
    h = np.zeros((20, 20))
    h[2:8, 2:9] = 0.7
    h[4, 4] = 0.9
    p = write_geojson(tmp_path / "r.geojson", regions(h, 0.5, factor=16.0), name="Tumor", object_type="detection")
    data = json.loads(p.read_text())
    assert data["type"] == "FeatureCollection" and len(data["features"]) == 1
    f = data["features"][0]
    ring = f["geometry"]["coordinates"][0]
    assert f["geometry"]["type"] == "Polygon" and ring[0] == ring[-1]
    props = f["properties"]
    assert props["objectType"] == "detection" and props["classification"]["name"] == "Tumor"
    m = props["measurements"]
    assert m["Max score"] == 0.9 and m["Heatmap pixels"] == 42
    assert m["Mean score"] == pytest.approx((41 * 0.7 + 0.9) / 42)
    assert min(x for x, _ in ring) == 2.25 * 16 and max(x for x, _ in ring) == 8.75 * 16
