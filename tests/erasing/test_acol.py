import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wsolkit._checks import WSOLTypeError, WSOLValueError
from wsolkit.erasing import ACoL, acol_erase, acol_loss
from wsolkit.heads import create_head
from wsolkit.output import WSOLOutput


def _ref_region(maps, delta):
    """float64 per-image min-max then >= delta (constant map -> nothing erased)."""
    m = maps.double().numpy()
    out = np.zeros(m.shape, dtype=bool)
    for b in range(m.shape[0]):
        lo, hi = m[b].min(), m[b].max()
        if hi > lo:
            out[b] = (m[b] - lo) / (hi - lo) >= delta
    return torch.from_numpy(out)


@pytest.mark.parametrize("delta", [0.5, 0.7, 0.9])
def test_erase_region_matches_reference(delta):
    f = torch.randn(3, 4, 5, 6)
    maps = torch.randn(3, 5, 6)
    maps[2] = 1.0  # constant map
    erased, region = acol_erase(f, maps, delta)
    ref = _ref_region(maps, delta)
    assert torch.equal(region, ref)
    assert torch.equal(erased, f * (~ref)[:, None].float())
    assert not region[2].any()


def test_erase_hand_values():
    f = torch.ones(1, 1, 2, 2)
    maps = torch.tensor([[[0.0, 10.0], [6.0, 7.0]]])  # normalised: 0, 1, .6, .7
    _, region = acol_erase(f, maps, 0.7)
    assert region.tolist() == [[[False, True], [False, True]]]


def _head():
    torch.manual_seed(0)
    return ACoL(6, 3, delta=0.6, mid_channels=8)


def test_head_branch_b_sees_label_erased_features():
    head = _head()
    f = torch.randn(4, 6, 5, 5)
    y = torch.tensor([0, 1, 2, 1])
    out = head(f, labels=y)
    cams_a = head.branch_a(f)
    maps_y = cams_a[torch.arange(4), y].detach()
    region = _ref_region(maps_y, 0.6)
    assert torch.equal(out.aux["erased"], region)
    cams_b = head.branch_b(f * (~region)[:, None].float())
    assert torch.allclose(out.aux["cams_b"], cams_b, atol=1e-6)
    assert torch.allclose(out.logits, cams_a.mean((-2, -1)), atol=1e-6)
    assert torch.allclose(out.aux["logits_b"], cams_b.mean((-2, -1)), atol=1e-6)

    def norm(t):
        t = t.double()
        lo = t.amin((-2, -1), keepdim=True)
        hi = t.amax((-2, -1), keepdim=True)
        return (t - lo) / (hi - lo)

    # cams: raw maximum of the branch maps; aux["fused"]: the authors' max of per-map normalised maps
    assert torch.allclose(out.cams, torch.maximum(cams_a, cams_b), atol=1e-6)
    assert torch.allclose(out.aux["fused"].double(), torch.maximum(norm(cams_a), norm(cams_b)), atol=1e-6)
    assert not out.aux["fused"].requires_grad and out.cams.requires_grad


def test_head_eval_uses_prediction():
    head = _head().eval()
    f = torch.randn(4, 6, 5, 5)
    out = head(f)
    pred = head.branch_a(f).mean((-2, -1)).argmax(1)
    assert torch.equal(out.aux["erased"], head(f, labels=pred).aux["erased"])


def test_loss_and_gradient_path():
    head = _head()
    f = torch.randn(4, 6, 5, 5, dtype=torch.float64)
    head = head.double()
    y = torch.tensor([0, 1, 2, 1])
    out = head(f, labels=y)
    logp_a = out.logits - torch.logsumexp(out.logits, 1, keepdim=True)
    logp_b = out.aux["logits_b"] - torch.logsumexp(out.aux["logits_b"], 1, keepdim=True)
    ce_a, ce_b = -logp_a[torch.arange(4), y].mean(), -logp_b[torch.arange(4), y].mean()
    step = acol_loss(out, y)
    assert torch.allclose(step.total, ce_a + ce_b)
    assert torch.allclose(step.terms["ce_a"], ce_a) and torch.allclose(step.terms["ce_b"], ce_b)
    assert not any(t.requires_grad for t in step.terms.values())
    assert torch.allclose(head.loss(out, y).total, step.total)
    # the erasing map is detached: the loss of B sends no gradient to branch A
    F.cross_entropy(out.aux["logits_b"], y).backward()
    assert all(p.grad is None or p.grad.abs().max() == 0 for p in head.branch_a.parameters())
    assert head.branch_b[0].weight.grad.abs().max() > 0


def test_model_passes_labels_to_the_head_and_uses_its_loss():
    import wsolkit
    from wsolkit.backbones import create_backbone

    torch.manual_seed(0)
    m = wsolkit.create_method("acol", 3, backbone=create_backbone("smallcnn", output_stride=8, width=4),
                              mid_channels=8, delta=0.6)
    assert m.head.uses_labels
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 1])
    out = m(x, y)
    direct = m.head(m.backbone(x), labels=y)
    assert torch.equal(out.aux["erased"], direct.aux["erased"])
    pred = m(x).logits.argmax(1)
    assert torch.equal(m(x).aux["erased"], m.head(m.backbone(x), labels=pred).aux["erased"])
    (step,) = list(m.training_steps(x, y))
    assert torch.allclose(step.total, acol_loss(m(x, y), y).total)


def test_registry_and_repr():
    head = create_head("acol", 6, 2, mid_channels=None, delta=0.8)
    assert isinstance(head, ACoL) and "delta=0.8" in repr(head)
    assert head(torch.randn(1, 6, 3, 3)).cams.shape == (1, 2, 3, 3)


def test_bad_inputs():
    for d in (0.0, 1.0, 1.5, -0.2):
        with pytest.raises(WSOLValueError, match="delta"):
            ACoL(4, 2, delta=d)
        with pytest.raises(WSOLValueError, match="delta"):
            acol_erase(torch.zeros(1, 2, 3, 3), torch.zeros(1, 3, 3), d)
    head = ACoL(4, 2, mid_channels=None)
    with pytest.raises(WSOLValueError, match="labels"):
        head(torch.randn(2, 4, 3, 3), labels=torch.tensor([0, 2]))
    with pytest.raises(WSOLValueError, match="channels"):
        head(torch.randn(2, 5, 3, 3))
    with pytest.raises(WSOLValueError, match="batch"):
        acol_erase(torch.zeros(2, 2, 3, 3), torch.zeros(1, 3, 3))
    with pytest.raises(WSOLTypeError, match="ACoL"):
        acol_loss(WSOLOutput(torch.zeros(1, 2), torch.zeros(1, 2, 1, 1), {}), torch.tensor([0]))
