"""Box metrics against a literal per-threshold cv2 loop of the protocol."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from wsolkit._checks import ShapeError, WSOLValueError
from wsolkit.metrics.boxes import box_accuracy, box_iou_inclusive, scoremap_best_ious


def loop_reference(maps: np.ndarray, gts: list, t: int, correct=None):
    """Protocol written as a plain loop over every threshold (one cv2.threshold/findContours per threshold)."""
    thresholds = list(np.arange(0, 1, 1.0 / t))
    n = maps.shape[0]
    c1 = np.zeros(len(thresholds))
    c2 = {d: np.zeros(len(thresholds)) for d in (30, 50, 70)}
    top1 = np.zeros(len(thresholds))
    for i in range(n):
        img = np.expand_dims((maps[i] * 255).astype(np.uint8), 2)
        h, w = maps[i].shape
        for ti, thr in enumerate(thresholds):
            _, binary = cv2.threshold(img, int(thr * np.max(img)), 255, cv2.THRESH_BINARY)
            contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
            if len(contours) == 0:
                est_all = [[0, 0, 0, 0]]
                est_big = [[0, 0, 0, 0]]
            else:
                est_all = []
                for c in contours:
                    x, y, bw, bh = cv2.boundingRect(c)
                    est_all.append([x, y, min(x + bw, w - 1), min(y + bh, h - 1)])
                big = max(contours, key=cv2.contourArea)
                x, y, bw, bh = cv2.boundingRect(big)
                est_big = [[x, y, min(x + bw, w - 1), min(y + bh, h - 1)]]

            def best(est, gt=gts[i]):
                out = 0.0
                for e in est:
                    for g in gt:
                        ix = max(0, min(e[2], g[2]) - max(e[0], g[0]) + 1)
                        iy = max(0, min(e[3], g[3]) - max(e[1], g[1]) + 1)
                        inter = ix * iy
                        ua = (e[2] - e[0] + 1) * (e[3] - e[1] + 1) + (g[2] - g[0] + 1) * (g[3] - g[1] + 1) - inter
                        out = max(out, inter / ua)
                return out

            b1, b2 = best(est_big), best(est_all)
            c1[ti] += b1 >= 50 / 100
            if correct is not None and correct[i]:
                top1[ti] += b1 >= 50 / 100
            for d in c2:
                c2[d][ti] += b2 >= d / 100
    acc1 = c1 * 100 / n
    return {
        "maxboxacc": acc1.max(),
        "maxboxacc_v2": np.mean([(c2[d] * 100 / n).max() for d in c2]),
        "top1_loc": top1[int(np.argmax(acc1))] * 100 / n,
        "curve": acc1,
    }


def _blobs(n=6, size=40, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    maps, gts = [], []
    for _ in range(n):
        m = np.zeros((size, size))
        boxes = []
        for _ in range(rng.integers(1, 3)):
            cy, cx = rng.integers(5, size - 5, 2)
            sy, sx = rng.uniform(2, 8, 2)
            m += rng.uniform(0.3, 1) * np.exp(-((yy - cy) ** 2 / (2 * sy**2) + (xx - cx) ** 2 / (2 * sx**2)))
            x0, y0 = max(0, cx - 2 * sx), max(0, cy - 2 * sy)
            boxes.append([x0, y0, min(size - 1, cx + 2 * sx), min(size - 1, cy + 2 * sy)])
        m += rng.uniform(0, 0.15, m.shape)
        m = (m - m.min()) / (m.max() - m.min())
        maps.append(m.astype(np.float32))
        gts.append(np.floor(np.array(boxes)))
    return np.stack(maps), gts


@pytest.mark.parametrize("t", [7, 100])
def test_box_metrics_equal_per_threshold_loop(t):
    maps, gts = _blobs()
    correct = torch.tensor([True, False, True, True, False, True])
    got = box_accuracy(torch.from_numpy(maps), [torch.from_numpy(g) for g in gts], t, correct=correct)
    want = loop_reference(maps, gts, t, correct.numpy())
    assert got["maxboxacc"] == pytest.approx(want["maxboxacc"], abs=1e-12)
    assert got["maxboxacc_v2"] == pytest.approx(want["maxboxacc_v2"], abs=1e-12)
    assert got["top1_loc"] == pytest.approx(want["top1_loc"], abs=1e-12)
    np.testing.assert_allclose(got["curves"]["boxacc"].numpy(), want["curve"], atol=1e-12)


def test_box_metrics_fused_normalise_and_streaming():
    from wsolkit.metrics.boxes import IOU_LEVELS_V2, _box_compute, _box_update

    maps, gts = _blobs(n=4, seed=3)
    raw = torch.from_numpy(maps) * 5 - 2  # affine: min-max gives back the maps (up to float rounding)
    ref = box_accuracy(torch.from_numpy(maps), gts, 50)
    got = box_accuracy(raw, gts, 50, normalize=True)
    assert abs(got["maxboxacc"] - ref["maxboxacc"]) <= 25.0  # rounding may flip a uint8 level; same protocol
    s1 = _box_update(raw[:1], gts[:1], 50, normalize=True)
    s2 = _box_update(raw[1:], gts[1:], 50, normalize=True)
    summed = {k: s1[k] + s2[k] for k in s1}
    assert _box_compute(summed, IOU_LEVELS_V2)["maxboxacc_v2"] == got["maxboxacc_v2"]


def test_empty_and_full_maps():
    # an all-zero map: no contour at any threshold above 0 -> box (0, 0, 0, 0); IoU with a box at the origin is 1
    zero = np.zeros((10, 10), np.float32)
    v1, v2 = scoremap_best_ious(zero, np.array([[0, 0, 0, 0]]), np.arange(0, 1, 0.25))
    assert v1.tolist() == [1.0] * 4 and v2.tolist() == [1.0] * 4
    r = box_accuracy(torch.zeros(0, 8, 8), [], 10)
    assert math.isnan(r["maxboxacc"]) and r["n_images"] == 0


def test_iou_inclusive_hand_values():
    iou = box_iou_inclusive(np.array([[0, 0, 3, 3]]), np.array([[2, 2, 5, 5], [10, 10, 12, 12]]))
    assert iou[0, 0] == pytest.approx(4 / (16 + 16 - 4)) and iou[0, 1] == 0.0


def test_bad_boxes():
    cams = torch.rand(2, 8, 8)
    with pytest.raises(WSOLValueError, match="x1 >= x0"):
        box_accuracy(cams, [torch.tensor([[5, 0, 2, 3]]), torch.tensor([[0, 0, 1, 1]])], 10)
    with pytest.raises(ShapeError, match="one entry per image"):
        box_accuracy(cams, [torch.tensor([[0, 0, 1, 1]])], 10)
    with pytest.raises(WSOLValueError, match="normalised"):  # normalize=False: maps must lie in [0, 1]
        box_accuracy(cams * 2, [torch.tensor([[0, 0, 1, 1]])] * 2, 10, normalize=False)
    with pytest.raises(ShapeError, match=r"\(M, 4\)"):
        box_accuracy(cams, [torch.zeros(1, 3), torch.zeros(1, 4)], 10)


def test_maps_without_zero_and_multiple_gt_boxes():
    maps = np.full((2, 12, 12), 0.5, np.float32)
    maps[1, 3:6, 3:9] = 0.9
    gts = [np.array([[0, 0, 11, 11]]), np.array([[3, 3, 8, 5], [0, 0, 2, 2]])]
    got = box_accuracy(torch.from_numpy(maps), gts, 10, normalize=False)
    want = loop_reference(maps, gts, 10)
    assert got["maxboxacc"] == pytest.approx(want["maxboxacc"]) and got["maxboxacc_v2"] == pytest.approx(
        want["maxboxacc_v2"])
    np.testing.assert_allclose(got["curves"]["boxacc"].numpy(), want["curve"])


def test_noisy_maps_with_many_contours():
    g = torch.Generator().manual_seed(0)
    small = torch.rand(4, 1, 8, 8, generator=g)
    maps = torch.nn.functional.interpolate(small, size=(33, 29), mode="bilinear", align_corners=False)[:, 0]
    maps = maps + 0.2 * torch.rand(maps.shape, generator=g)
    lo, hi = maps.amin((1, 2), keepdim=True), maps.amax((1, 2), keepdim=True)
    maps = (maps - lo) / (hi - lo)
    gts = [np.array([[2, 3, 20, 25]]), np.array([[0, 0, 5, 5], [10, 10, 28, 32]]), np.array([[4, 4, 4, 4]]),
           np.array([[0, 0, 28, 32]])]
    got = box_accuracy(maps, gts, 60)
    want = loop_reference(maps.numpy(), gts, 60)
    np.testing.assert_allclose(got["curves"]["boxacc"].numpy(), want["curve"])
    assert got["maxboxacc_v2"] == pytest.approx(want["maxboxacc_v2"])
