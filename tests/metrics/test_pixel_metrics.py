"""Histogram core and pixel metrics against independent float64 references, sklearn and properties."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError
from wsolkit.metrics import (
    LocalizationHistogram,
    binned_counts,
    confusion_areas,
    histogram_metrics,
    localization_histogram,
    overlap_curves,
    pxap,
    pxap_from_counts,
)

# ----------------------------------------------------------------------------- float64 references (independent)


def ref_counts(scores: np.ndarray, masks: np.ndarray, t: int, ignore: int = 255):
    """Counts per bin from the comparison rule s >= i / T evaluated in float64, one threshold at a time."""
    s = scores.astype(np.float64).ravel()
    m = masks.ravel()
    ge_fg = np.array([np.sum((s >= i / t) & (m == 1)) for i in range(t + 1)] + [0], dtype=np.int64)
    ge_bg = np.array([np.sum((s >= i / t) & (m == 0)) for i in range(t + 1)] + [0], dtype=np.int64)
    # scores below 0 belong to bin 0
    ge_fg[0] = np.sum(m == 1)
    ge_bg[0] = np.sum(m == 0)
    return ge_fg[:-1] - ge_fg[1:], ge_bg[:-1] - ge_bg[1:]


def ref_pxap(scores: np.ndarray, masks: np.ndarray, t: int) -> float:
    """Protocol AP: thresholds from 1 down to 0, recall starts at 0, skip thresholds with no prediction."""
    s = scores.astype(np.float64).ravel()
    m = masks.ravel()
    keep = m != 255
    s, m = s[keep], m[keep]
    n_pos = np.sum(m == 1)
    ap, prev_rec = 0.0, 0.0
    for i in range(t, -1, -1):
        pred = s >= i / t if i > 0 else np.ones_like(s, dtype=bool)
        tp = np.sum(pred & (m == 1))
        npred = np.sum(pred)
        if npred == 0:
            continue
        rec = tp / n_pos
        ap += (tp / npred) * (rec - prev_rec)
        prev_rec = rec
    return 100 * ap


def ref_normalised(raw: torch.Tensor, size) -> np.ndarray:
    up = F.interpolate(raw[:, None], size=size, mode="bilinear", align_corners=False)[:, 0].numpy()
    out = np.zeros_like(up)
    for k in range(up.shape[0]):
        lo, hi = up[k].min(), up[k].max()
        if hi > lo and raw[k].min() < raw[k].max():  # a constant map stays constant (zeros)
            out[k] = (up[k] - lo) / (hi - lo)
    return out


def _data(b=3, h=9, w=11, seed=0, ignore=True):
    g = torch.Generator().manual_seed(seed)
    cams = torch.rand(b, h, w, generator=g)
    masks = torch.randint(0, 2, (b, h, w), generator=g, dtype=torch.uint8)
    if ignore:
        masks[torch.rand(b, h, w, generator=g) < 0.1] = 255
    return cams, masks


# ----------------------------------------------------------------------------- exact counts


@pytest.mark.parametrize("t", [1, 3, 10, 1000])
def test_counts_exact_vs_reference(t):
    cams, masks = _data()
    cams[0, 0, :5] = torch.tensor([0.0, 1.0, 0.5, 0.001, 0.999])  # grid values
    fg, bg = localization_histogram(cams, masks, t)
    rfg, rbg = ref_counts(cams.numpy(), masks.numpy(), t)
    assert fg.dtype == torch.int64 and fg.shape == (t + 1,)
    assert fg.tolist() == rfg.tolist() and bg.tolist() == rbg.tolist()


def test_counts_exact_float64_on_grid_scores():
    # every score exactly on (or 1 ulp around) the float64 grid i / T: the comparison rule must hold exactly
    t = 1000
    grid = torch.arange(t + 1, dtype=torch.float64) / t
    s = torch.cat([grid, torch.nextafter(grid, torch.tensor(-1.0, dtype=torch.float64)),
                   torch.nextafter(grid, torch.tensor(2.0, dtype=torch.float64))])
    cams = s.view(1, 1, -1)
    masks = torch.ones_like(cams, dtype=torch.uint8)
    fg, _ = localization_histogram(cams, masks, t, validate_args=False)  # -1 ulp below 0: clamped to bin 0
    rfg, _ = ref_counts(cams.numpy(), masks.numpy(), t)
    assert fg.tolist() == rfg.tolist()


def test_float32_products_that_round_exactly():
    # float32 scores just below a grid point: s * T rounds to the integer in float32 arithmetic
    t = 1000
    grid32 = (torch.arange(1, t, dtype=torch.float64) / t).float()
    s = torch.nextafter(grid32, torch.tensor(-1.0))
    cams = torch.cat([s, grid32]).view(1, 1, -1)
    masks = torch.zeros_like(cams, dtype=torch.uint8)
    _, bg = localization_histogram(cams, masks, t)
    _, rbg = ref_counts(cams.numpy(), masks.numpy(), t)
    assert bg.tolist() == rbg.tolist()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_dtypes(dtype):
    cams, masks = _data(seed=3)
    cams = cams.to(dtype)
    fg, bg = localization_histogram(cams, masks, 100)
    rfg, rbg = ref_counts(cams.double().numpy(), masks.numpy(), 100)
    assert fg.tolist() == rfg.tolist() and bg.tolist() == rbg.tolist()


def test_fused_upsample_normalise_equals_protocol_pipeline():
    g = torch.Generator().manual_seed(1)
    raw = torch.randn(4, 7, 7, generator=g) * 3
    raw[2] = 1.5  # constant map -> zeros
    masks = torch.randint(0, 2, (4, 40, 36), generator=g, dtype=torch.uint8)
    fg, bg = localization_histogram(raw, masks, 1000, normalize=True)
    rfg, rbg = ref_counts(ref_normalised(raw, (40, 36)), masks.numpy(), 1000)
    assert fg.tolist() == rfg.tolist() and bg.tolist() == rbg.tolist()


def test_class_selection_with_labels():
    g = torch.Generator().manual_seed(2)
    raw = torch.randn(3, 4, 5, 5, generator=g)
    labels = torch.tensor([3, 0, 2])
    masks = torch.randint(0, 2, (3, 20, 20), generator=g)
    fg, bg = localization_histogram(raw, masks, 50, labels=labels, normalize=True)
    sel = torch.stack([raw[i, labels[i]] for i in range(3)])
    rfg, rbg = ref_counts(ref_normalised(sel, (20, 20)), masks.numpy(), 50)
    assert fg.tolist() == rfg.tolist() and bg.tolist() == rbg.tolist()
    h = LocalizationHistogram(50, normalize=True)
    assert [x.tolist() for x in h(raw, masks, labels)] == [fg.tolist(), bg.tolist()]
    assert "num_thresholds=50" in repr(h)


def test_masks_not_modified_and_other_ignore_index():
    cams, masks = _data(ignore=False)
    masks = masks.long()
    masks[0, 0] = -1
    before = masks.clone()
    fg, bg = localization_histogram(cams, masks, 10, ignore_index=-1)
    assert torch.equal(masks, before)
    rfg, rbg = ref_counts(cams.numpy(), masks.numpy(), 10)
    assert fg.tolist() == rfg.tolist() and bg.tolist() == rbg.tolist()
    assert int(fg.sum() + bg.sum()) == int((masks != -1).sum())


def test_streaming_equals_one_shot():
    cams, masks = _data(b=7, seed=5)
    fg, bg = localization_histogram(cams, masks)
    acc_fg, acc_bg = torch.zeros_like(fg), torch.zeros_like(bg)
    for sl in (slice(0, 1), slice(1, 1), slice(1, 4), slice(4, 7)):
        f, b = localization_histogram(cams[sl], masks[sl])
        acc_fg += f
        acc_bg += b
    assert torch.equal(fg, acc_fg) and torch.equal(bg, acc_bg)


# ----------------------------------------------------------------------------- derived metrics


@pytest.mark.parametrize("t", [1, 7, 1000])
def test_pxap_vs_float64_reference(t):
    cams, masks = _data(b=2, h=12, w=12, seed=4)
    got = pxap(cams, masks, t)
    want = ref_pxap(cams.numpy(), masks.numpy(), t)
    assert math.isclose(got, want, rel_tol=1e-9)


def test_pxap_vs_sklearn_within_binning_error():
    from sklearn.metrics import average_precision_score

    g = torch.Generator().manual_seed(0)
    masks = torch.randint(0, 2, (4, 32, 32), generator=g)
    cams = (torch.randn(4, 32, 32, generator=g) * 0.15 + 0.35 + 0.3 * masks).clamp(0, 1)
    exact = 100 * average_precision_score(masks.flatten().numpy(), cams.flatten().numpy())
    got = pxap(cams, masks, 1000)
    assert abs(got - exact) < 0.2, (got, exact)
    assert abs(pxap(cams, masks, 10) - exact) > abs(got - exact)  # coarser bins, larger error


def test_confusion_areas_vs_reference():
    cams, masks = _data(b=2, seed=6)
    t = 20
    fg, bg = localization_histogram(cams, masks, t)
    got = confusion_areas(fg, bg)
    s = cams.double().numpy().ravel()
    m = masks.numpy().ravel()
    pos, neg = np.sum(m == 1), np.sum(m == 0)
    want = {k: 0.0 for k in ("tp_star", "fn_star", "fp_star", "tn_star")}
    for i in range(1, t + 1):
        pred = s >= i / t
        want["tp_star"] += np.sum(pred & (m == 1)) / pos / t * 100
        want["fn_star"] += np.sum(~pred & (m == 1)) / pos / t * 100
        want["fp_star"] += np.sum(pred & (m == 0)) / neg / t * 100
        want["tn_star"] += np.sum(~pred & (m == 0)) / neg / t * 100
    for k in want:
        assert math.isclose(got[k], want[k], rel_tol=1e-9), k


def test_dice_iou_miou_f1_vs_reference():
    cams, masks = _data(b=2, seed=7)
    t = 40
    fg, bg = localization_histogram(cams, masks, t)
    curves = overlap_curves(fg, bg)
    s = cams.double().numpy().ravel()
    m = masks.numpy().ravel()
    for i in (0, 5, 20, 33, 40):
        pred = s >= i / t
        tp = np.sum(pred & (m == 1))
        fp = np.sum(pred & (m == 0))
        fn = np.sum(~pred & (m == 1))
        tn = np.sum(~pred & (m == 0))
        assert math.isclose(curves["dice_fg"][i], 100 * 2 * tp / (2 * tp + fp + fn), rel_tol=1e-12)
        assert math.isclose(curves["dice_bg"][i], 100 * 2 * tn / (2 * tn + fp + fn), rel_tol=1e-12)
        iou = (tp / (tp + fp + fn) + tn / (tn + fp + fn)) / 2
        assert math.isclose(curves["miou"][i], 100 * iou, rel_tol=1e-12)
    r = histogram_metrics(fg, bg)
    best = int(np.argmax(curves["miou"].numpy()))
    assert r["best_threshold"] == best / t and math.isclose(r["max_miou"], float(curves["miou"][best]))
    pred = s >= 0.5
    tp, fp, fn = np.sum(pred & (m == 1)), np.sum(pred & (m == 0)), np.sum(~pred & (m == 1))
    assert math.isclose(r["f1_pos"], 100 * 2 * tp / (2 * tp + fp + fn), rel_tol=1e-12)
    # a chosen operating threshold is applied as given
    r2 = histogram_metrics(fg, bg, threshold=0.25)
    assert r2["threshold"] == 0.25 and math.isclose(r2["miou"], float(curves["miou"][10]))


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    t=st.integers(1, 60),
    b=st.integers(1, 4),
)
def test_properties(seed, t, b):
    cams, masks = _data(b=b, h=5, w=6, seed=seed)
    masks[0, 0, 0] = 1  # at least one fg pixel
    masks[0, 0, 1] = 0
    fg, bg = localization_histogram(cams, masks, t)
    # permutation invariance: images and pixels shuffled jointly
    perm = torch.randperm(cams.numel(), generator=torch.Generator().manual_seed(seed))
    fg2, bg2 = localization_histogram(cams.flatten()[perm].view_as(cams), masks.flatten()[perm].view_as(masks), t)
    assert torch.equal(fg, fg2) and torch.equal(bg, bg2)
    r = histogram_metrics(fg, bg)
    assert math.isclose(r["tp_star"] + r["fn_star"], 100.0, abs_tol=1e-9)
    assert math.isclose(r["fp_star"] + r["tn_star"], 100.0, abs_tol=1e-9)
    c = r["curves"]
    assert bool((c["tp"].diff() <= 0).all()) and bool((c["fp"].diff() <= 0).all())  # monotone in τ
    assert bool((c["recall"].diff() <= 0).all())
    assert 0.0 <= r["pxap"] <= 100.0 + 1e-9


# ----------------------------------------------------------------------------- edge cases


def test_no_positive_pixel_gives_nan_and_warning():
    cams, masks = _data(ignore=False)
    masks.zero_()
    with pytest.warns(RuntimeWarning, match="no foreground"):
        assert math.isnan(pxap(cams, masks))
    fg, bg = binned_counts(cams, masks)
    with pytest.warns(RuntimeWarning):
        r = histogram_metrics(fg, bg)
    assert math.isnan(r["pxap"]) and math.isnan(r["tp_star"]) and r["fp_star"] + r["tn_star"] == pytest.approx(100)


def test_all_pixels_ignored():
    cams, masks = _data()
    masks.fill_(255)
    fg, bg = binned_counts(cams, masks)
    assert int(fg.sum()) == 0 and int(bg.sum()) == 0
    with pytest.warns(RuntimeWarning):
        assert math.isnan(pxap_from_counts(fg, bg))


def test_constant_cams_give_fg_fraction():
    _, masks = _data(ignore=False, seed=9)
    raw = torch.full((3, 4, 4), 2.0)
    fg, bg = localization_histogram(raw, masks, normalize=True)
    frac = float((masks == 1).sum()) / masks.numel()
    assert math.isclose(pxap_from_counts(fg, bg), 100 * frac, rel_tol=1e-12)
    assert int(fg[0]) == int((masks == 1).sum())
    fg, bg = localization_histogram(torch.full((3, 9, 11), -1.0), masks, normalize=True)  # at mask size
    assert math.isclose(pxap_from_counts(fg, bg), 100 * frac, rel_tol=1e-12)


def test_single_image_and_t1_and_empty_update():
    cams = torch.tensor([[[0.2, 0.7], [1.0, 0.0]]])
    masks = torch.tensor([[[0, 1], [1, 0]]])
    fg, bg = localization_histogram(cams, masks, 1)
    assert fg.tolist() == [1, 1] and bg.tolist() == [2, 0]
    assert pxap(cams, masks, 1) == pytest.approx(ref_pxap(cams.numpy(), masks.numpy(), 1))
    r = histogram_metrics(fg, bg)
    assert r["f1_threshold"] == 1.0  # 0.5 is off the grid {0, 1}: the next grid point is used
    fg0, bg0 = localization_histogram(torch.zeros(0, 4, 4), torch.zeros(0, 4, 4, dtype=torch.uint8), 10,
                                      normalize=True)
    assert fg0.tolist() == [0] * 11 and bg0.tolist() == [0] * 11


# ----------------------------------------------------------------------------- bad inputs


def test_bad_inputs():
    cams, masks = _data()
    with pytest.raises(ShapeError, match="batch"):
        localization_histogram(cams[:2], masks)
    with pytest.raises(WSOLValueError, match=r"\[0, 1\] when normalize=False.*1\.49"):
        pxap(cams * 1.5, masks)  # no silent clamp
    with pytest.raises(WSOLValueError, match=r"-0\.49"):
        localization_histogram(cams - 0.5, masks)
    with pytest.raises(WSOLValueError, match="found \\[2\\]"):
        localization_histogram(cams, masks.clamp(max=2) * 0 + 2)
    bad = cams.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(WSOLValueError, match="NaN"):
        localization_histogram(bad, masks)
    bad[0, 0, 0] = float("inf")
    with pytest.raises(WSOLValueError, match="Inf"):
        localization_histogram(bad, masks)
    with pytest.raises(WSOLTypeError, match="floating"):
        localization_histogram((cams * 10).long(), masks)
    with pytest.raises(WSOLValueError, match="num_thresholds"):
        localization_histogram(cams, masks, 0)
    with pytest.raises(WSOLValueError, match="num_thresholds"):
        pxap(cams, masks, 0)
    with pytest.raises(WSOLTypeError, match="masks"):
        localization_histogram(cams, masks.float())
    with pytest.raises(WSOLTypeError, match="labels"):
        localization_histogram(torch.rand(3, 2, 4, 4), masks)
    with pytest.raises(ShapeError, match="fg"):
        histogram_metrics(torch.zeros(3, 2, dtype=torch.long), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ShapeError, match="same shape"):
        histogram_metrics(torch.zeros(3, dtype=torch.long), torch.zeros(4, dtype=torch.long))
    with pytest.raises(WSOLTypeError, match="count"):
        histogram_metrics(torch.zeros(3), torch.zeros(3))


def test_no_warning_in_normal_use():
    cams, masks = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        histogram_metrics(*localization_histogram(cams, masks))
