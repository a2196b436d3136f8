"""One template for every registered head: shapes, batch 1, odd sizes, h = w = 1, dtypes, errors, gradients."""

from __future__ import annotations

import pytest
import torch

import wsolkit.heads as heads
from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError
from wsolkit.heads import create_head, list_heads
from wsolkit.output import WSOLOutput

EXPECTED = {"gap", "max", "lse", "wildcat", "prm", "deepmil"}


def test_registry_lists_all_heads():
    assert EXPECTED <= set(list_heads())


def test_public_api():
    for name in heads.__all__:
        assert hasattr(heads, name), name


@pytest.mark.parametrize("name", sorted(list_heads()))
@pytest.mark.parametrize("shape", [(1, 6, 7, 5), (3, 6, 1, 1), (2, 6, 3, 3)])
def test_contract(name, shape):
    head = create_head(name, in_channels=6, num_classes=3)
    head.train()
    f = torch.randn(*shape, requires_grad=True)
    out = head(f)
    assert isinstance(out, WSOLOutput)
    assert out.logits.shape == (shape[0], 3)
    assert out.cams.shape == (shape[0], 3, *shape[2:])
    assert isinstance(out.aux, dict)
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.cams).all()
    # heads with auxiliary branches (ACoL, SPG) train those through tensors in `aux`
    extra = [v.sum() for v in out.aux.values() if isinstance(v, torch.Tensor) and v.requires_grad]
    (out.logits.sum() + sum(extra)).backward()
    assert f.grad is not None and torch.isfinite(f.grad).all()
    assert all(p.grad is not None for p in head.parameters() if p.requires_grad)
    assert "in_channels=6" in repr(head)


@pytest.mark.parametrize("name", sorted(list_heads()))
def test_batch_independence_and_double(name):
    head = create_head(name, in_channels=4, num_classes=2).double().eval()
    f = torch.randn(3, 4, 5, 7, dtype=torch.float64)
    full = head(f)
    one = head(f[1:2])
    torch.testing.assert_close(one.logits, full.logits[1:2])
    torch.testing.assert_close(one.cams, full.cams[1:2])


@pytest.mark.parametrize("name", sorted(list_heads()))
def test_gradcheck(name):
    head = create_head(name, in_channels=3, num_classes=2).double().eval()
    f = torch.randn(1, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: head(t).logits, (f,))


@pytest.mark.parametrize("name", sorted(list_heads()))
def test_input_errors(name):
    head = create_head(name, in_channels=4, num_classes=2)
    with pytest.raises(ShapeError, match=r"5 channels.*in_channels=4"):
        head(torch.randn(1, 5, 3, 3))
    with pytest.raises(ShapeError, match=r"\(B, K, h, w\)"):
        head(torch.randn(4, 3, 3))
    with pytest.raises(WSOLTypeError, match="floating"):
        head(torch.zeros(1, 4, 3, 3, dtype=torch.long))


@pytest.mark.parametrize("name", sorted(list_heads()))
def test_constructor_errors(name):
    with pytest.raises(WSOLValueError, match="in_channels"):
        create_head(name, in_channels=0, num_classes=2)
    with pytest.raises(WSOLValueError, match="num_classes"):
        create_head(name, in_channels=3, num_classes=0)


def test_unknown_name():
    with pytest.raises(WSOLValueError, match="wildcat"):
        create_head("wildcta", 3, 2)
