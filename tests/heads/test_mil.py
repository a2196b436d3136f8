"""Attention Deep MIL (survey eqs. 7-9) against a float64 per-instance reference."""

from __future__ import annotations

import math

import pytest
import torch

from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError
from wsolkit.heads import DeepMIL, attention_pool


@torch.no_grad()
def ref_mil(head, f):
    """Loop over instances: ψ per location, softmax, bag, logit (float64)."""
    b, k, h, w = f.shape
    V = head.attention_v.weight.view(-1, k).double()
    bv = head.attention_v.bias.double()
    Wa = head.attention_w.weight.view(head.num_classes, -1).double()
    ba = head.attention_w.bias.double()
    logits = torch.zeros(b, head.num_classes, dtype=torch.float64)
    att = torch.zeros(b, head.num_classes, h, w, dtype=torch.float64)
    scores = torch.zeros(b, head.num_classes, h, w, dtype=torch.float64)
    for i in range(b):
        inst = [f[i, :, y, x].double() for y in range(h) for x in range(w)]
        hid = []
        for v in inst:
            z = torch.tanh(V @ v + bv)
            if head.gated:
                z = z * torch.sigmoid(head.attention_u.weight.view(-1, k).double() @ v + head.attention_u.bias.double())
            hid.append(z)
        for c in range(head.num_classes):
            psi = [float(Wa[c] @ z + ba[c]) for z in hid]
            e = [math.exp(p - max(psi)) for p in psi]
            a = [x / sum(e) for x in e]
            bag = sum(ai * v for ai, v in zip(a, inst))
            logits[i, c] = float(head.classifier_weight[c].double() @ bag + head.classifier_bias[c].double())
            att[i, c] = torch.tensor(a, dtype=torch.float64).view(h, w)
            scores[i, c] = torch.tensor(psi, dtype=torch.float64).view(h, w)
    return logits, att, scores


@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("shape", [(2, 5, 3, 7), (1, 5, 1, 1), (1, 5, 4, 4)])
def test_reference(gated, shape):
    head = DeepMIL(shape[1], 3, mid_channels=6, gated=gated).double()
    f = torch.randn(*shape, dtype=torch.float64)
    out = head(f)
    logits, att, scores = ref_mil(head, f)
    torch.testing.assert_close(out.logits, logits)
    # cams: the raw attention logits psi; the softmax weights in aux["attention"]
    torch.testing.assert_close(out.cams, scores)
    torch.testing.assert_close(out.aux["attention"], att)
    torch.testing.assert_close(out.aux["attention"].sum((-2, -1)), torch.ones(shape[0], 3, dtype=torch.float64))
    assert sorted(out.aux) == ["attention", "bags", "instance"]
    # function == Module
    bags, a2 = attention_pool(f, out.cams)
    torch.testing.assert_close(a2, out.aux["attention"])
    torch.testing.assert_close(bags, out.aux["bags"])


def test_instance_maps_are_what_the_attention_averages():
    """maps="instance": u_c·F_ij + b_c per location (float64 loop), and s_c = Σ_ij A_cij (u_c·F_ij + b_c)."""
    torch.manual_seed(0)
    head = DeepMIL(5, 3, mid_channels=6, maps="instance").double()
    f = torch.randn(2, 5, 3, 4, dtype=torch.float64)
    out = head(f)
    u, b = head.classifier_weight.double(), head.classifier_bias.double()
    ref = torch.zeros(2, 3, 3, 4, dtype=torch.float64)
    for i in range(2):
        for c in range(3):
            for y in range(3):
                for x in range(4):
                    ref[i, c, y, x] = float(u[c] @ f[i, :, y, x]) + float(b[c])
    torch.testing.assert_close(out.cams, ref)
    torch.testing.assert_close(out.aux["instance"], ref)
    torch.testing.assert_close(out.logits, (out.aux["attention"] * ref).sum((-2, -1)))
    _, att, psi = ref_mil(head, f)
    torch.testing.assert_close(out.aux["attention"], att)  # same head otherwise
    head.maps = "attention"
    torch.testing.assert_close(head(f).cams, psi)
    assert "maps='attention'" in repr(head)
    with pytest.raises(WSOLValueError, match="maps"):
        DeepMIL(4, 2, maps="softmax")


def test_attention_pool_hand_values_and_gradcheck():
    f = torch.tensor([[[[1.0, 3.0]], [[0.0, 2.0]]]])  # K=2, h=1, w=2
    s = torch.tensor([[[[0.0, math.log(3.0)]]]])  # weights 1/4, 3/4
    bags, att = attention_pool(f, s)
    torch.testing.assert_close(att, torch.tensor([[[[0.25, 0.75]]]]))
    torch.testing.assert_close(bags, torch.tensor([[[2.5, 1.5]]]))
    # ties: equal scores -> uniform attention = GAP of the features
    bags, _ = attention_pool(f, torch.zeros(1, 1, 1, 2))
    torch.testing.assert_close(bags, f.mean((-2, -1)).unsqueeze(1))
    x = torch.randn(2, 2, 2, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(2, 2, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(attention_pool, (x, y))


def test_module_gradcheck():
    head = DeepMIL(3, 2, mid_channels=4, gated=True).double()
    f = torch.randn(1, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: head(t).logits, (f,))
    assert "gated=True" in repr(head)


@pytest.mark.parametrize("kw,err", [({"mid_channels": 0}, WSOLValueError), ({"mid_channels": 1.5}, WSOLTypeError)])
def test_bad_hyper_parameters(kw, err):
    with pytest.raises(err, match="mid_channels"):
        DeepMIL(4, 2, **kw)


def test_shape_errors():
    with pytest.raises(ShapeError, match=r"5 channels.*in_channels=4"):
        DeepMIL(4, 2)(torch.randn(1, 5, 3, 3))
    with pytest.raises(ShapeError, match="scores"):
        attention_pool(torch.randn(1, 4, 3, 3), torch.randn(1, 2, 3, 2))
