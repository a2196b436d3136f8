"""Stitched heatmaps: a pointwise model's heatmap equals the model on the whole level image (blending and offsets
exact), with overlap, at a downsample, through DataLoader workers, streamed to zarr; slide-level normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wsolkit._checks import WSOLValueError
from wsolkit.data import Preprocessing
from wsolkit.wsi import InMemorySlide, TiffSlideReader, UnknownMPPError, heatmap
from wsolkit.wsi.heatmap import blend_window, resolve_preprocess
from wsolkit.wsi.readers import read_rgb


def reference(reader, level, model, pool=1, target=1):
    """The model applied once to the whole level image (padded with white to a multiple of ``pool``)."""
    w, h = reader.level_dimensions[level]
    pw, ph = -(-w // pool) * pool, -(-h // pool) * pool
    rgb = read_rgb(reader, (0, 0), level, (pw, ph))
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        return model(x).cams[0, target].double().numpy()


@pytest.mark.parametrize("level,tile,overlap", [(0, 64, 16), (1, 48, 24), (0, 96, 0)])
def test_pointwise_heatmap_equals_whole_image(tiff_slide, level, tile, overlap, Pointwise):
    reader = TiffSlideReader(tiff_slide[0])
    model = Pointwise()
    ref = reference(reader, level, model)
    hm = heatmap(reader, model, level=level, tile=tile, overlap=overlap, tissue=False, normalize=None,
                 num_workers=0, batch_size=5)
    np.testing.assert_allclose(np.asarray(hm), ref, rtol=1e-6, atol=1e-6)
    norm = heatmap(reader, model, level=level, tile=tile, overlap=overlap, tissue=False, num_workers=0)
    np.testing.assert_allclose(np.asarray(norm), (ref - ref.min()) / (ref.max() - ref.min()), atol=1e-6)
    assert norm.value_range == pytest.approx((ref.min(), ref.max()), rel=1e-6)
    assert len(hm.logits) == hm.grid.rows * hm.grid.cols and hm.target == 1


def test_downsampled_stitching_equals_pooled_model(tiff_slide, Pointwise):
    reader = TiffSlideReader(tiff_slide[0])
    model = Pointwise(pool=4)
    ref = reference(reader, 0, model, pool=4)
    hm = heatmap(reader, model, tile=64, overlap=32, downsample=4, tissue=False, normalize=None, num_workers=0)
    assert hm.shape == (56, 80) and hm.factor == 4.0
    np.testing.assert_allclose(np.asarray(hm), ref, rtol=1e-6, atol=1e-6)


def test_low_resolution_cams_are_upsampled_per_tile(Pointwise):
    # maps at 1/4 of the tile, no overlap: each tile's map is resized to the tile (bilinear, align_corners=False)
    img = np.random.default_rng(0).integers(0, 256, (64, 96, 3), np.uint8)
    model = Pointwise(pool=4)
    hm = heatmap(InMemorySlide.from_array(img, 1), model, tile=32, overlap=0, tissue=False, normalize=None,
                 num_workers=0)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    want = np.zeros((64, 96))
    for y0 in (0, 32):
        for x0 in (0, 32, 64):
            m = model(x[:, :, y0 : y0 + 32, x0 : x0 + 32]).cams[:, 1:2]
            want[y0 : y0 + 32, x0 : x0 + 32] = F.interpolate(m, size=(32, 32), mode="bilinear",
                                                             align_corners=False)[0, 0].detach().double().numpy()
    np.testing.assert_allclose(np.asarray(hm), want, rtol=1e-6, atol=1e-6)


def test_workers_and_zarr_give_the_same_heatmap(tiff_slide, tmp_path, Pointwise):
    zarr = pytest.importorskip("zarr")
    reader = TiffSlideReader(tiff_slide[0])
    kw = dict(tile=64, overlap=16, tissue=True, min_tissue=0.05)
    a = heatmap(reader, Pointwise(), num_workers=0, **kw)
    b = heatmap(tiff_slide[0], Pointwise(), num_workers=1, out=str(tmp_path / "h.zarr"), **kw)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(zarr.open_array(str(tmp_path / "h.zarr"), mode="r")), np.asarray(a))
    torch.testing.assert_close(a.logits, b.logits)
    # tissue filter: fewer tiles than the grid, and uncovered pixels are 0
    assert len(a.tiles) < a.grid.rows * a.grid.cols and np.asarray(a)[:8, :8].max() == 0.0


def test_calibration_and_mpp(tiff_slide, Pointwise):
    reader = TiffSlideReader(tiff_slide[0])
    model = Pointwise()
    ref = reference(reader, 1, model)
    hm = heatmap(reader, model, mpp=0.5, tile=64, overlap=16, tissue=False, normalize=(0.0, 0.5), num_workers=0)
    assert hm.meta["level"] == 1 and hm.mpp == pytest.approx(0.5)
    np.testing.assert_allclose(np.asarray(hm), np.clip(ref / 0.5, 0, 1), atol=1e-6)
    with pytest.raises(UnknownMPPError):
        heatmap(InMemorySlide.from_array(np.zeros((32, 32, 3), np.uint8), 1), model, mpp=0.5, num_workers=0)


def test_explainer_target_and_preprocessing(Pointwise):
    seen = {}

    class Spy(Pointwise):
        def forward(self, x, labels=None):
            seen["labels"], seen["x"] = labels, x
            return super().forward(x, labels)

    img = np.full((32, 32, 3), 255, np.uint8)
    m = Spy()
    m.preprocessing = Preprocessing(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))  # what the model declares
    heatmap(InMemorySlide.from_array(img, 1), m, tile=32, overlap=0, tissue=False, target=0, num_workers=0)
    assert seen["labels"].tolist() == [0] and torch.allclose(seen["x"], torch.full_like(seen["x"], 2.0))
    f = resolve_preprocess(m, preprocess=lambda x: x * 10)
    assert float(f(torch.full((1, 3, 1, 1), 255, dtype=torch.uint8)).max()) == 10.0
    assert m.training  # mode restored


def test_blend_window_and_bad_arguments(Pointwise):
    np.testing.assert_allclose(blend_window(8, 4), [0.125, 0.375, 0.625, 0.875, 0.875, 0.625, 0.375, 0.125])
    s = InMemorySlide.from_array(np.zeros((32, 32, 3), np.uint8), 1)
    with pytest.raises(WSOLValueError, match="overlap"):
        heatmap(s, Pointwise(), tile=16, overlap=16, num_workers=0)
    with pytest.raises(WSOLValueError, match="downsample"):
        heatmap(s, Pointwise(), tile=16, overlap=4, downsample=8, num_workers=0, tissue=False)
    with pytest.raises(WSOLValueError, match="target"):
        heatmap(s, Pointwise(), tile=16, overlap=0, target=5, num_workers=0, tissue=False)
