"""Exports of a heatmap: in memory for small maps, in row bands (bounded memory) for large ones — same files."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tifffile

from wsolkit.wsi import InMemorySlide, TiffSlideReader, save_heatmap_tiff, save_npy, save_overlay_png
from wsolkit.wsi import export as ex
from wsolkit.wsi.export import colorize


class Recording:
    """A zarr-like (H, W) array that records the largest row slice read."""

    def __init__(self, a):
        self.a, self.shape, self.max_rows = a, a.shape, 0

    def __getitem__(self, key):
        rows_key = key[0] if isinstance(key, tuple) else key
        if not isinstance(rows_key, slice):
            raise AssertionError("the export read the whole map at once")
        rows = len(range(*rows_key.indices(self.shape[0])))
        cols = len(range(*key[1].indices(self.shape[1]))) if isinstance(key, tuple) else self.shape[1]
        self.max_rows = max(self.max_rows, rows)
        self.max_pixels = max(getattr(self, "max_pixels", 0), rows * cols)
        return self.a[key]


def _map(h, w, seed=0):
    rng = np.random.default_rng(seed)
    v = rng.random((h, w), dtype=np.float32)
    v[:3, :5] = np.nan  # raw maps: NaN where no tile was read
    return v


def _ref_levels(img, n):
    """Float64 reference: level i + 1 = 2 x 2 block means of level i (odd row / column dropped), rounded half up."""
    out = [img]
    for _ in range(1, n):
        a = out[-1].astype(np.float64)
        h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
        a = a[:h, :w]
        m = (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]) / 4
        out.append(np.floor(m + 0.5).astype(np.uint8))
    return out


@pytest.mark.parametrize("cmap", [None, "jet"])
def test_streamed_tiff_levels_equal_the_reference(tmp_path, monkeypatch, cmap):
    monkeypatch.setattr(ex, "_IN_MEMORY_PIXELS", 4096)  # force the banded path
    v = _map(301, 263)
    src = Recording(v)
    p = save_heatmap_tiff(tmp_path / "h.tif", src, cmap=cmap, tile=32, mpp=2.0)
    assert src.max_rows <= 32 and src.max_pixels <= 32 * 32  # one tile at a time
    assert not any(tmp_path.glob(".*levels*"))  # the temporary levels are removed
    clean = np.clip(np.nan_to_num(v.astype(np.float64)), 0, 1)
    level0 = colorize(clean, cmap) if cmap else np.rint(clean * 255).astype(np.uint8)
    n = int(np.log2(263 // 64)) + 1
    ref = _ref_levels(level0, n)
    with tifffile.TiffFile(p) as tf:
        assert len(tf.pages) == n
        for i, page in enumerate(tf.pages):
            np.testing.assert_array_equal(page.asarray(), ref[i])
    r = TiffSlideReader(p)
    assert r.level_dimensions[0] == (263, 301) and r.mpp == pytest.approx(2.0)


def test_small_heatmap_tiff_is_unchanged_by_the_banded_path(tmp_path):
    v = _map(70, 90)
    p = save_heatmap_tiff(tmp_path / "s.tif", v)
    np.testing.assert_array_equal(tifffile.imread(p), np.rint(np.clip(np.nan_to_num(v), 0, 1) * 255).astype(np.uint8))


def test_streamed_npy_is_exact_and_banded(tmp_path, monkeypatch):
    monkeypatch.setattr(ex, "_IN_MEMORY_PIXELS", 400)
    v = _map(123, 50)
    src = Recording(v)
    p = save_npy(tmp_path / "h.npy", src)
    assert src.max_rows <= ex._band_rows(50) == 2
    np.testing.assert_array_equal(np.load(p), v)


def test_binned_mean_equals_a_float64_box_filter():
    v = _map(97, 61, seed=1)
    out = ex._binned_mean(Recording(v), 10, 7)
    clean = np.nan_to_num(v.astype(np.float64))
    ref = np.zeros((10, 7))
    for i in range(10):
        for j in range(7):
            rows = [y for y in range(97) if y * 10 // 97 == i]
            cols = [x for x in range(61) if x * 7 // 61 == j]
            ref[i, j] = clean[np.ix_(rows, cols)].mean()
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-7)


def test_streamed_overlay_has_the_thumbnail_size(tmp_path, monkeypatch):
    monkeypatch.setattr(ex, "_IN_MEMORY_PIXELS", 1000)
    slide = InMemorySlide.from_array(np.full((256, 320, 3), 200, np.uint8), num_levels=3)
    v = np.zeros((128, 160), np.float32)
    v[:, 80:] = 1.0  # right half hot
    src = Recording(v)
    p = save_overlay_png(tmp_path / "o.png", src, slide, max_size=100)
    assert src.max_rows < 128
    img = cv2.imread(str(p))
    thumb, _ = ex.thumbnail(slide, 100)
    assert img.shape[:2] == thumb.shape[:2]
    assert (img[:, : img.shape[1] // 2 - 1] == 200).all()  # cold half: the thumbnail itself
    assert (img[:, img.shape[1] // 2 + 1 :] != 200).any()
