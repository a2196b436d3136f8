"""WILDCAT (survey eq. 6) against a float64 reference written with plain Python sorting."""

from __future__ import annotations

import pytest
import torch

from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError
from wsolkit.heads import WILDCAT, class_wise_pool, create_head, wildcat_pool


def _n(k, n):
    # count for an int, max(1, round(k * n)) for a fraction
    if isinstance(k, int):
        return min(k, n)
    return max(1, min(n, round(k * n)))


def ref_wildcat(maps, kmax, kmin, alpha):
    b, c, h, w = maps.shape
    out = torch.zeros(b, c, dtype=torch.float64)
    for i in range(b):
        for j in range(c):
            vals = sorted(maps[i, j].double().flatten().tolist())
            npos, nneg = _n(kmax, h * w), _n(kmin, h * w)
            top = vals[::-1][:npos]
            low = vals[:nneg]
            out[i, j] = sum(top) / npos + alpha * sum(low) / nneg
    return out


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 1, 1, 1), (1, 2, 3, 3), (4, 2, 1, 5)])
@pytest.mark.parametrize(
    "kmax,kmin,alpha", [(1, 1, 1.0), (0.1, 0.2, 0.6), (3, None, 0.0), (0.01, 0.01, 0.7), (1.0, 0.5, 0.3), (100, 2, 1.0)]
)
def test_matches_reference(shape, kmax, kmin, alpha):
    maps = torch.randn(*shape, dtype=torch.float64)
    got = wildcat_pool(maps, kmax, kmin, alpha)
    exp = ref_wildcat(maps, kmax, kmax if kmin is None else kmin, alpha)
    torch.testing.assert_close(got, exp)


def test_hand_values_and_ties():
    m = torch.tensor([[[[2.0, 2.0, 2.0], [-1.0, 0.0, -1.0]]]], dtype=torch.float64)
    # top-2 = {2, 2}; bottom-2 = {-1, -1}
    assert wildcat_pool(m, kmax=2, kmin=2, alpha=1.0).item() == pytest.approx(2.0 - 1.0)
    # top-4 = 2,2,2,0 -> 1.5 ; bottom-3 = -1,-1,0 -> -2/3
    assert wildcat_pool(m, kmax=4, kmin=3, alpha=0.5).item() == pytest.approx(1.5 - 1.0 / 3.0)
    # fraction smaller than one location still selects one: max + alpha * min
    assert wildcat_pool(m, kmax=0.01, kmin=0.01, alpha=1.0).item() == pytest.approx(1.0)
    # all equal map: any tie-breaking gives the same value
    c = torch.full((1, 1, 3, 3), 0.25, dtype=torch.float64)
    assert wildcat_pool(c, kmax=0.3, alpha=0.6).item() == pytest.approx(0.25 * 1.6)


def test_negative_term_is_not_lost():
    m = torch.tensor([[[[4.0, 0.0], [0.0, -8.0]]]])
    assert wildcat_pool(m, kmax=1, kmin=1, alpha=0.5).item() == pytest.approx(4.0 - 4.0)
    assert wildcat_pool(m, kmax=1, kmin=1, alpha=0.0).item() == pytest.approx(4.0)


def test_gradcheck():
    maps = torch.randn(2, 2, 3, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: wildcat_pool(x, 0.2, 0.3, 0.7), (maps,))
    # gradient reaches only the selected locations, with weight 1/n+ and alpha/n-
    x = torch.tensor([[[[3.0, 1.0, 2.0, -5.0]]]], requires_grad=True)
    wildcat_pool(x, kmax=2, kmin=1, alpha=0.5).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([[[[0.5, 0.0, 0.5, 0.5]]]]))


def test_dropout():
    x = torch.full((1, 1, 1, 1), 3.0)
    assert wildcat_pool(x, 1, alpha=0.0, dropout=0.75, training=False).item() == 3.0
    vals = {round(wildcat_pool(x, 1, alpha=0.0, dropout=0.75, training=True).item(), 5) for _ in range(200)}
    assert vals == {0.0, 12.0}  # inverted dropout: kept values scaled by 1 / (1 - p)
    head = WILDCAT(4, 2, modalities=5, kmax=0.09, kmin=0.09, alpha=0.0, dropout=0.75).eval()
    f = torch.randn(2, 4, 6, 6)
    torch.testing.assert_close(head(f).logits, head(f).logits)


def test_module_matches_reference():
    k, c, m = 3, 2, 4
    head = WILDCAT(k, c, modalities=m, kmax=0.2, kmin=0.3, alpha=0.6).double()
    f = torch.randn(2, k, 5, 3, dtype=torch.float64)
    w = head.classifier.weight.detach().view(c * m, k)
    bias = head.classifier.bias.detach()
    maps = torch.einsum("ok,bkhw->bohw", w, f) + bias.view(1, -1, 1, 1)
    cams = maps.view(2, c, m, 5, 3).mean(2)
    out = head(f)
    torch.testing.assert_close(out.cams, cams)
    torch.testing.assert_close(out.logits, ref_wildcat(cams, 0.2, 0.3, 0.6))
    torch.testing.assert_close(out.aux["modality_maps"], maps.view(2, c, m, 5, 3))
    # function == Module
    torch.testing.assert_close(out.logits, wildcat_pool(class_wise_pool(maps, m), 0.2, 0.3, 0.6))
    assert "modalities=4" in repr(head)


def test_registry():
    head = create_head("wildcat", 6, 3, modalities=5, kmax=0.09, kmin=0.09, alpha=0.0, dropout=0.75)
    assert isinstance(head, WILDCAT)
    assert head(torch.randn(1, 6, 1, 1)).logits.shape == (1, 3)


@pytest.mark.parametrize(
    "kw,err",
    [
        ({"kmax": 0}, WSOLValueError),
        ({"kmax": -0.1}, WSOLValueError),
        ({"kmax": 1.5}, WSOLValueError),
        ({"kmin": 0.0}, WSOLValueError),
        ({"kmax": "a"}, WSOLTypeError),
        ({"kmax": True}, WSOLTypeError),
        ({"modalities": 0}, WSOLValueError),
        ({"alpha": -1.0}, WSOLValueError),
        ({"dropout": 1.0}, WSOLValueError),
        ({"dropout": -0.1}, WSOLValueError),
    ],
)
def test_bad_hyper_parameters(kw, err):
    with pytest.raises(err) as e:
        WILDCAT(4, 2, **kw)
    assert next(iter(kw)) in str(e.value)


def test_in_channels_mismatch():
    with pytest.raises(ShapeError, match=r"5 channels.*in_channels=4"):
        WILDCAT(4, 2)(torch.randn(1, 5, 3, 3))
    with pytest.raises(ShapeError, match="multiple of modalities"):
        class_wise_pool(torch.randn(1, 5, 2, 2), 2)
