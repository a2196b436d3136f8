"""PRM peak stimulation (survey eq. 5) against a brute-force float64 re-implementation of the reference.

Reference: ZhouYanzhao/PRM ``peak_stimulation`` (a location is a peak when the window's argmax — the first maximum in
row-major order, ``max_pool2d(..., return_indices=True)`` — is itself; ``-inf`` padding), its ``_median_filter``
(``input >= torch.median``, the lower middle value) as the module's default filter, and its backward (peak indicator
times the output gradient, without 1/N).
"""

from __future__ import annotations

import statistics

import pytest
import torch

from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError
from wsolkit.heads import PRM, find_peaks, prm_pool


def ref_peaks(m, r, median=False):
    h, w = m.shape
    vals = m.tolist()
    med = statistics.median_low(m.flatten().tolist())
    out = torch.zeros(h, w, dtype=torch.bool)
    for i in range(h):
        for j in range(w):
            window = [
                (a, b)
                for a in range(max(0, i - r // 2), min(h, i + r // 2 + 1))
                for b in range(max(0, j - r // 2), min(w, j + r // 2 + 1))
            ]  # row-major scan
            best = window[0]
            for a, b in window[1:]:
                if vals[a][b] > vals[best[0]][best[1]]:
                    best = (a, b)
            out[i, j] = best == (i, j) and (not median or vals[i][j] >= med)
    return out


def ref_prm(maps, r, median=False):
    b, c = maps.shape[:2]
    out = torch.zeros(b, c, dtype=torch.float64)
    for i in range(b):
        for j in range(c):
            p = ref_peaks(maps[i, j], r, median)
            sel = maps[i, j][p].tolist()
            out[i, j] = sum(sel) / len(sel)
    return out


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 1, 1, 1), (1, 2, 9, 9), (2, 1, 1, 6)])
@pytest.mark.parametrize("r", [1, 3, 5, 13])
@pytest.mark.parametrize("median", [False, True])
def test_reference(shape, r, median):
    maps = torch.randn(*shape, dtype=torch.float64)
    filt = "median" if median else "none"
    peaks = find_peaks(maps, r, filt)
    for i in range(shape[0]):
        for j in range(shape[1]):
            assert torch.equal(peaks[i, j], ref_peaks(maps[i, j], r, median))
    torch.testing.assert_close(prm_pool(maps, r, filt), ref_prm(maps, r, median))


@pytest.mark.parametrize("r", [1, 3, 5])
@pytest.mark.parametrize("median", [False, True])
def test_ties_keep_the_window_argmax(r, median):
    """Integer-valued maps full of ties: the brute-force reference and max_pool2d's indices agree with find_peaks."""
    g = torch.Generator().manual_seed(r)
    maps = torch.randint(0, 3, (2, 2, 6, 5), generator=g).double()
    filt = "median" if median else "none"
    peaks = find_peaks(maps, r, filt)
    p = r // 2
    pad = torch.nn.functional.pad(maps, (p, p, p, p), value=float("-inf"))
    _, idx = torch.nn.functional.max_pool2d(pad, r, stride=1, return_indices=True)
    own = torch.arange(pad.shape[-2] * pad.shape[-1]).view(pad.shape[-2:])[p : p + 6, p : p + 5]
    by_indices = idx == own
    if median:
        by_indices &= maps >= maps.flatten(2).median(-1).values[..., None, None]
    assert torch.equal(peaks, by_indices)
    for i in range(2):
        for j in range(2):
            assert torch.equal(peaks[i, j], ref_peaks(maps[i, j], r, median))
    torch.testing.assert_close(prm_pool(maps, r, filt), ref_prm(maps, r, median))


def test_constant_map_has_the_references_peak_count():
    c = torch.full((1, 1, 4, 4), 0.5, dtype=torch.float64)
    assert int(find_peaks(c, 3).sum()) == int(ref_peaks(c[0, 0], 3, median=True).sum()) == 1
    assert int(find_peaks(c, 1, "none").sum()) == 16  # a 1×1 window: every location is its own argmax


def test_hand_values_ties_and_window():
    m = torch.tensor([[[[3.0, 3.0, 0.0, 1.0, 0.0, 0.0, 2.0]]]], dtype=torch.float64)
    # r = 3: the plateau 3, 3 gives one peak (the first); 1 and 2 are peaks -> (3 + 1 + 2) / 3
    assert prm_pool(m, 3, "none").item() == pytest.approx(6 / 3)
    # median filter (median_low = 0): same peaks
    assert prm_pool(m, 3).item() == pytest.approx(6 / 3)
    # r = 5: 1 is within 2 of a 3 -> not a peak; (3 + 2) / 2
    assert prm_pool(m, 5, "none").item() == pytest.approx(5 / 2)
    # r = 1: every location is a peak -> mean
    assert prm_pool(m, 1, "none").item() == pytest.approx(m.mean().item())
    # large window -> global max, once
    assert prm_pool(m, 13, "none").item() == pytest.approx(3.0)


def test_gradient_only_through_peaks():
    x = torch.tensor([[[[1.0, 0.0, 0.0, 2.0, 0.0]]]], requires_grad=True)
    prm_pool(x, 3, "none").sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([[[[0.5, 0.0, 0.0, 0.5, 0.0]]]]))
    y = torch.randn(2, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: prm_pool(t, 3), (y,))


def test_reference_gradient_option():
    """gradient="reference": same scores, gradient = peak indicator × upstream gradient (no 1/N_c)."""
    y = torch.randn(2, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    up = torch.randn(2, 3, dtype=torch.float64)
    exact = prm_pool(y, 3)
    ref = prm_pool(y, 3, gradient="reference")
    torch.testing.assert_close(ref, exact)
    (g_ref,) = torch.autograd.grad((ref * up).sum(), y)
    (g_exact,) = torch.autograd.grad((exact * up).sum(), y)
    indicator = torch.stack([torch.stack([ref_peaks(y[i, j].detach(), 3, True) for j in range(3)]) for i in range(2)])
    n_c = indicator.sum((-2, -1)).double()
    torch.testing.assert_close(g_ref, indicator.double() * up[..., None, None])
    torch.testing.assert_close(g_exact, indicator.double() * (up / n_c)[..., None, None])
    head = PRM(4, 2, gradient="reference")
    assert head.gradient == "reference" and "gradient='reference'" in repr(head)
    with pytest.raises(WSOLValueError, match="gradient"):
        prm_pool(y, 3, gradient="paper")


def test_module_and_aux():
    head = PRM(4, 3, window=5, peak_filter="median").double()
    f = torch.randn(2, 4, 7, 5, dtype=torch.float64)
    out = head(f)
    cams = torch.einsum("ck,bkhw->bchw", head.classifier.weight.view(3, 4), f) + head.classifier.bias.view(1, 3, 1, 1)
    torch.testing.assert_close(out.cams, cams)
    torch.testing.assert_close(out.logits, ref_prm(cams.detach(), 5, True))
    torch.testing.assert_close(out.logits, prm_pool(out.cams, 5))
    assert PRM(4, 3).peak_filter == "median"  # the reference's default
    assert torch.equal(out.aux["num_peaks"], out.aux["peaks"].sum((-2, -1)))
    assert (out.aux["num_peaks"] >= 1).all()
    assert "window=5" in repr(head)


@pytest.mark.parametrize(
    "kw,err",
    [
        ({"window": 4}, WSOLValueError),
        ({"window": 0}, WSOLValueError),
        ({"window": 3.0}, WSOLTypeError),
        ({"peak_filter": "mean"}, WSOLValueError),
    ],
)
def test_bad_hyper_parameters(kw, err):
    with pytest.raises(err, match=next(iter(kw))):
        PRM(4, 2, **kw)


def test_errors_at_forward():
    with pytest.raises(ShapeError, match=r"5 channels.*in_channels=4"):
        PRM(4, 2)(torch.randn(1, 5, 3, 3))
    with pytest.raises(WSOLValueError, match="peaks"):
        prm_pool(torch.randn(1, 1, 3, 3), peaks=torch.ones(1, 1, 2, 2, dtype=torch.bool))
