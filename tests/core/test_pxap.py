"""PxAP against a float64 reference of the protocol and against sklearn's AP."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError
from wsolkit.metrics import binned_counts, localization_histogram, pxap


def _ref_pxap(scores: np.ndarray, masks: np.ndarray, T: int = 1000) -> float:
    """Float64 PxAP written from the definition: thresholds τ_i = i/T, positive when s >= τ, pooled counts."""
    s = scores.astype(np.float64).ravel()
    m = masks.ravel()
    keep = m != 255
    s, m = s[keep], m[keep]
    taus = np.arange(T + 1) / T
    prec, rec = [], []
    n_pos = (m == 1).sum()
    for tau in taus[::-1]:  # from high to low
        pred = s >= tau
        tp = np.sum(pred & (m == 1))
        fp = np.sum(pred & (m == 0))
        prec.append(tp / (tp + fp) if tp + fp > 0 else np.nan)
        rec.append(tp / n_pos)
    ap, prev = 0.0, 0.0
    for p, r in zip(prec, rec):
        if not np.isnan(p):
            ap += p * (r - prev)
        prev = r
    return 100 * ap


def test_pxap_matches_float64_reference_on_quantised_scores():
    g = torch.Generator().manual_seed(0)
    # scores on the threshold grid (and exactly 1.0) to exercise the bin edges
    scores = torch.randint(0, 1001, (5, 12, 12), generator=g).double() / 1000
    masks = (torch.rand(5, 12, 12, generator=g) < 0.3).to(torch.uint8)
    masks[0, 0, :4] = 255
    ref = _ref_pxap(scores.numpy(), masks.numpy())
    assert pxap(scores, masks) == pytest.approx(ref, rel=1e-9)


def test_pxap_matches_float64_reference_on_continuous_scores():
    g = torch.Generator().manual_seed(1)
    masks = (torch.rand(4, 16, 16, generator=g) < 0.4).to(torch.uint8)
    scores = (0.3 * masks.double() + 0.7 * torch.rand(4, 16, 16, generator=g, dtype=torch.float64)).clamp(0, 1)
    assert pxap(scores, masks) == pytest.approx(_ref_pxap(scores.numpy(), masks.numpy()), rel=1e-9)


def test_pxap_close_to_sklearn_on_continuous_data():
    g = torch.Generator().manual_seed(2)
    masks = (torch.rand(8, 32, 32, generator=g) < 0.3).to(torch.uint8)
    scores = (0.25 * masks.double() + 0.75 * torch.rand(8, 32, 32, generator=g, dtype=torch.float64))
    sk = 100 * average_precision_score(masks.numpy().ravel(), scores.numpy().ravel())
    assert pxap(scores, masks) == pytest.approx(sk, abs=0.2)  # binning at step 0.001


def test_pxap_equals_sklearn_when_scores_on_grid():
    # with scores on the threshold grid, binning is exact and both are the same step-wise AP
    scores = torch.tensor([[[0.9, 0.8, 0.7, 0.2, 0.1, 0.5]]], dtype=torch.float64)
    masks = torch.tensor([[[1, 0, 1, 0, 0, 1]]])
    sk = 100 * average_precision_score(masks.numpy().ravel(), scores.numpy().ravel())
    assert pxap(scores, masks) == pytest.approx(sk, rel=1e-12)


def test_all_ones_baseline_is_foreground_fraction():
    masks = torch.zeros(3, 10, 10, dtype=torch.uint8)
    masks[:, :3] = 1
    assert pxap(torch.zeros(3, 10, 10), masks) == pytest.approx(30.0)


def test_binned_counts_bins_exact():
    scores = torch.tensor([[[0.0, 0.0005, 0.001, 0.999, 1.0, 1.2]]])
    masks = torch.tensor([[[1, 1, 0, 1, 1, 0]]])
    with pytest.raises(WSOLValueError, match=r"\[0, 1\]"):  # no silent clamp
        binned_counts(scores, masks)
    fg, bg = localization_histogram(scores, masks, validate_args=False)  # unchecked: clamped to bins 0 and T
    assert fg.dtype == torch.int64 and fg.shape == (1001,)
    assert fg[0] == 2 and fg[999] == 1 and fg[1000] == 1 and fg.sum() == 4
    assert bg[1] == 1 and bg[1000] == 1 and bg.sum() == 2


def test_no_positive_pixel_returns_nan_with_warning():
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = pxap(torch.rand(2, 4, 4), torch.zeros(2, 4, 4, dtype=torch.uint8))
    assert np.isnan(out) and any("no foreground" in str(x.message) for x in w)


@pytest.mark.parametrize(
    "cams_, masks_, err, pattern",
    [
        (torch.zeros(2, 4, 4), torch.zeros(3, 4, 4, dtype=torch.uint8), ShapeError, "same batch size"),
        (torch.zeros(2, 4, 4), torch.zeros(2, 4, dtype=torch.uint8), ShapeError, r"`masks` must have shape"),
        (torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.uint8), WSOLTypeError, r"`labels` is required"),
        (torch.full((1, 2, 2), 1.2), torch.zeros(1, 2, 2, dtype=torch.uint8), WSOLValueError, r"\[0, 1\].*1\.2"),
        (torch.full((1, 2, 2), float("nan")), torch.zeros(1, 2, 2, dtype=torch.uint8), WSOLValueError, "NaN"),
        (torch.zeros(1, 2, 2), torch.full((1, 2, 2), 3), WSOLValueError, r"`masks` must only contain.*\[3\]"),
        (torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2, dtype=torch.uint8), WSOLTypeError, "floating"),
    ],
)
def test_bad_inputs(cams_, masks_, err, pattern):
    with pytest.raises(err, match=pattern):
        pxap(cams_, masks_)
