"""PRM peak stimulation (survey eq. 5) against a brute-force float64 reference."""

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
            nb = [
                vals[a][b]
                for a in range(max(0, i - r // 2), min(h, i + r // 2 + 1))
                for b in range(max(0, j - r // 2), min(w, j + r // 2 + 1))
            ]
            out[i, j] = vals[i][j] >= max(nb) and (not median or vals[i][j] >= med)
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


def test_hand_values_ties_and_window():
    m = torch.tensor([[[[3.0, 3.0, 0.0, 1.0, 0.0, 0.0, 2.0]]]], dtype=torch.float64)
    # r = 3: plateau 3,3 both peaks, 1 and 2 peaks -> (3+3+1+2)/4
    assert prm_pool(m, 3).item() == pytest.approx(9 / 4)
    # r = 5: 1 is within 2 of a 3 -> not a peak; (3+3+2)/3
    assert prm_pool(m, 5).item() == pytest.approx(8 / 3)
    # r = 1: every location is a peak -> mean
    assert prm_pool(m, 1).item() == pytest.approx(m.mean().item())
    # large window -> global max (ties included)
    assert prm_pool(m, 13).item() == pytest.approx(3.0)


def test_gradient_only_through_peaks():
    x = torch.tensor([[[[1.0, 0.0, 0.0, 2.0, 0.0]]]], requires_grad=True)
    prm_pool(x, 3).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([[[[0.5, 0.0, 0.0, 0.5, 0.0]]]]))
    y = torch.randn(2, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: prm_pool(t, 3), (y,))


def test_module_and_aux():
    head = PRM(4, 3, window=5, peak_filter="median").double()
    f = torch.randn(2, 4, 7, 5, dtype=torch.float64)
    out = head(f)
    cams = torch.einsum("ck,bkhw->bchw", head.classifier.weight.view(3, 4), f) + head.classifier.bias.view(1, 3, 1, 1)
    torch.testing.assert_close(out.cams, cams)
    torch.testing.assert_close(out.logits, ref_prm(cams.detach(), 5, True))
    torch.testing.assert_close(out.logits, prm_pool(out.cams, 5, "median"))
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
