"""MAX-Pool and LSE (survey eq. 4) against float64 references."""

from __future__ import annotations

import math

import pytest
import torch

from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError
from wsolkit.heads import LSE, MaxPool, lse_pool, max_pool


def ref_lse(maps, q):
    b, c, h, w = maps.shape
    out = torch.zeros(b, c, dtype=torch.float64)
    for i in range(b):
        for j in range(c):
            vals = maps[i, j].double().flatten().tolist()
            out[i, j] = math.log(sum(math.exp(q * v) for v in vals) / len(vals)) / q
    return out


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 1, 1, 1), (1, 2, 3, 3)])
def test_max_reference(shape):
    maps = torch.randn(*shape, dtype=torch.float64)
    exp = torch.tensor([[max(maps[i, j].flatten().tolist()) for j in range(shape[1])] for i in range(shape[0])])
    torch.testing.assert_close(max_pool(maps), exp.double())


def test_max_ties_and_grad():
    x = torch.tensor([[[[2.0, 2.0], [1.0, 0.0]]]], requires_grad=True)
    assert max_pool(x).item() == 2.0
    max_pool(x).sum().backward()
    assert x.grad.sum().item() == pytest.approx(1.0)  # gradient of the max is shared by the tied locations
    assert x.grad[0, 0, 1].abs().sum() == 0
    y = torch.randn(2, 2, 3, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(max_pool, (y,))


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 1, 1, 1), (1, 2, 3, 3)])
@pytest.mark.parametrize("q", [0.5, 1.0, 5.0, 10.0])
def test_lse_reference(shape, q):
    maps = torch.randn(*shape, dtype=torch.float64)
    torch.testing.assert_close(lse_pool(maps, q), ref_lse(maps, q))


def test_lse_limits_and_stability():
    maps = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    torch.testing.assert_close(lse_pool(maps, 1e-6), maps.mean((-2, -1)), atol=1e-5, rtol=0)
    torch.testing.assert_close(lse_pool(maps, 1e6), maps.amax((-2, -1)), atol=1e-4, rtol=0)
    # q = 100 with maps of magnitude 1e3: exact, no overflow (naive exp(1e5) is inf)
    big = torch.tensor([[[[1000.0, 999.0], [-1000.0, 998.5]]]])
    exp = 1000.0 + math.log((1 + math.exp(-100.0) + math.exp(-150.0) + 0.0) / 4) / 100
    got = lse_pool(big, 100.0)
    assert torch.isfinite(got).all()
    assert got.item() == pytest.approx(exp, abs=1e-3)
    # ties
    t = torch.full((1, 1, 3, 3), 7.0, dtype=torch.float64)
    assert lse_pool(t, 3.0).item() == pytest.approx(7.0)


def test_lse_gradcheck():
    maps = torch.randn(2, 2, 3, 5, dtype=torch.float64, requires_grad=True)
    q = torch.tensor(2.5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lse_pool, (maps, q))
    # the gradient w.r.t. the maps is the softmax of q*M divided by... hw-normalised weights summing to 1
    x = torch.randn(1, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    lse_pool(x, 4.0).sum().backward()
    torch.testing.assert_close(x.grad.flatten(), (4.0 * x.detach()).flatten().softmax(0))


def test_lse_module():
    head = LSE(4, 3, q=3.0).double()
    f = torch.randn(2, 4, 5, 3, dtype=torch.float64)
    out = head(f)
    cams = torch.einsum("ck,bkhw->bchw", head.classifier.weight.view(3, 4), f) + head.classifier.bias.view(1, 3, 1, 1)
    torch.testing.assert_close(out.cams, cams)
    torch.testing.assert_close(out.logits, ref_lse(cams.detach(), 3.0))
    assert not any(n.endswith("log_q") for n, _ in head.named_parameters())
    learn = LSE(4, 3, q=3.0, learnable=True)
    learn(torch.randn(2, 4, 3, 3)).logits.sum().backward()
    assert learn.log_q.grad is not None and float(learn.q.detach()) == pytest.approx(3.0)
    assert "learnable=True" in repr(learn)


def test_max_module():
    head = MaxPool(4, 3).double()
    f = torch.randn(1, 4, 5, 3, dtype=torch.float64)
    out = head(f)
    torch.testing.assert_close(out.logits, out.cams.amax((-2, -1)))


@pytest.mark.parametrize("q,err", [(0.0, WSOLValueError), (-1.0, WSOLValueError), ("x", WSOLTypeError)])
def test_lse_bad_q(q, err):
    with pytest.raises(err, match="q"):
        LSE(4, 2, q=q)
    with pytest.raises(err, match="q"):
        lse_pool(torch.zeros(1, 1, 2, 2), q)
    with pytest.raises(WSOLValueError, match="q"):
        lse_pool(torch.zeros(1, 1, 2, 2), torch.tensor(-1.0))


def test_in_channels_mismatch():
    for head in (MaxPool(4, 2), LSE(4, 2)):
        with pytest.raises(ShapeError, match=r"3 channels.*in_channels=4"):
            head(torch.randn(1, 3, 2, 2))
