"""The one conv-pool head: every named pooling head is ConvPoolHead with its pool_type; registries and names."""

from __future__ import annotations

import pytest
import torch

import wsolkit
from wsolkit._checks import WSOLValueError
from wsolkit.heads import (
    GAP,
    LSE,
    PRM,
    WILDCAT,
    ConvPoolHead,
    DeepMIL,
    MaxPool,
    class_wise_pool,
    create_head,
    gap_pool,
    list_heads,
    list_poolings,
    lse_pool,
    max_pool,
    prm_pool,
    register_head,
    wildcat_pool,
)
from wsolkit.registry import UnknownNameError

CASES = [
    (GAP, "gap", {}, lambda m: gap_pool(m)),
    (MaxPool, "max", {}, lambda m: max_pool(m)),
    (LSE, "lse", {"q": 2.0}, lambda m: lse_pool(m, 2.0)),
    (PRM, "prm", {"window": 3}, lambda m: prm_pool(m, 3)),
    (WILDCAT, "wildcat", {"kmax": 2, "kmin": 1, "alpha": 0.5}, lambda m: wildcat_pool(m, 2, 1, 0.5)),
]


@pytest.mark.parametrize("cls,pool_type,opts,fn", CASES)
def test_named_heads_are_the_shared_head(cls, pool_type, opts, fn):
    head = cls(5, 3, **opts).double()
    assert isinstance(head, ConvPoolHead) and head.pool_type == pool_type
    generic = ConvPoolHead(5, 3, pool_type, modalities=4 if cls is WILDCAT else 1, **opts).double()
    generic.load_state_dict(head.state_dict())
    f = torch.randn(2, 5, 4, 6, dtype=torch.float64)
    out, ref = head(f), generic(f)
    torch.testing.assert_close(out.logits, ref.logits)
    torch.testing.assert_close(out.cams, ref.cams)
    # the maps are the 1×1 convolution (modality average for WILDCAT), the logits the pooling function of them
    w = head.classifier.weight.view(head.classifier.out_channels, 5)
    maps = torch.einsum("ok,bkhw->bohw", w, f) + head.classifier.bias.view(1, -1, 1, 1)
    cams = class_wise_pool(maps, head.modalities)
    torch.testing.assert_close(out.cams, cams)
    torch.testing.assert_close(out.logits, fn(cams))
    assert f"pool_type={pool_type!r}" in repr(head)


def test_pool_types_and_errors():
    assert list_poolings() == ["gap", "lse", "max", "prm", "wildcat"]
    with pytest.raises(UnknownNameError, match="wildcat"):
        ConvPoolHead(4, 2, pool_type="wildcta")
    with pytest.raises(WSOLValueError, match="modalities"):
        ConvPoolHead(4, 2, modalities=0)
    with pytest.raises(TypeError):
        ConvPoolHead(4, 2, "gap", q=1.0)  # GAP takes no hyper-parameter


def test_legacy_lse_checkpoint():
    head = LSE(3, 2, q=2.0, learnable=True)
    state = {k: v for k, v in head.state_dict().items() if k != "pool.log_q"}
    state["log_q"] = torch.tensor(0.5)
    head.load_state_dict(state)
    assert float(head.q.detach()) == pytest.approx(float(torch.tensor(0.5).exp()))


def test_registry_key_rule_and_patterns():
    assert {"gap", "max", "lse", "wildcat", "prm", "deepmil"} <= set(list_heads())
    assert list_heads("*cat") == ["wildcat"] and list_heads() == sorted(list_heads())
    assert isinstance(create_head("Deep-MIL", 4, 2), DeepMIL) and isinstance(create_head("WildCat", 4, 2), WILDCAT)
    with pytest.raises(UnknownNameError, match="did you mean.*wildcat"):
        create_head("wildcta", 4, 2)


def test_register_head_decorator():
    @register_head("unit-test-head", overwrite=True)
    class UnitHead(GAP):
        pass

    assert "unittesthead" in list_heads("unit*")
    assert isinstance(create_head("unit_test_head", 4, 2), UnitHead)
    with pytest.raises(WSOLValueError, match="already registered"):
        register_head("unit-test-head")(GAP)


@pytest.mark.parametrize("name", ["gap", "max", "lse", "wildcat", "prm", "deepmil"])
def test_methods_follow_the_protocol(name):
    method = wsolkit.create_method(name, 2, backbone="smallcnn", backbone_options={"width": 4})
    x, y = torch.rand(2, 3, 32, 32), torch.tensor([0, 1])
    out = method(x, y)
    assert out.logits.shape == (2, 2) and out.cams.shape == (2, 2, 4, 4)
    steps = list(method.training_steps(x, y))
    assert len(steps) == 1 and sorted(steps[0].terms) == ["ce"]
    torch.testing.assert_close(steps[0].total, torch.nn.functional.cross_entropy(method(x).logits, y))
