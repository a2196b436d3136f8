import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wsolkit._checks import WSOLTypeError, WSOLValueError
from wsolkit.erasing import SPG, SPG_THRESHOLDS, masked_bce, spg_loss, spg_seeds
from wsolkit.heads import create_head
from wsolkit.output import WSOLOutput


def _ref_get_mask(heatmap, th_high, th_low, carry=True, min_fg=30):
    """float64 re-implementation of xiaomengyc/SPG ``get_mask`` = ``mark_obj`` then ``mark_bg``.

    ``carry=True`` is the reference as written: ``threshold`` reassigned by the fallback stays for the next images.
    """
    hm = heatmap.detach().double().numpy()
    mask = np.full(hm.shape, 255, dtype=np.int64)
    threshold = th_high
    for i in range(hm.shape[0]):
        if not carry:
            threshold = th_high
        pos = hm[i] > threshold
        if pos.sum() < min_fg:
            threshold = hm[i].max() * 0.7
            pos = hm[i] > threshold
        mask[i][pos] = 1
    mask[hm < th_low] = 0
    return torch.from_numpy(mask)


def _ref_bce(logits, seeds):
    z = logits.double().flatten()
    t = seeds.flatten()
    keep = t != 255
    if not keep.any():
        return z.sum() * 0
    z, t = z[keep], t[keep].double()
    p = 1 / (1 + torch.exp(-z))
    return -(t * torch.log(p) + (1 - t) * torch.log(1 - p)).mean()


def _norm(t):
    lo = t.amin((-2, -1), keepdim=True)
    hi = t.amax((-2, -1), keepdim=True)
    return (t - lo) / (hi - lo)


def _maps(seed=0):
    """Images with many / few / no pixels above 0.7 so that both branches of the fallback are taken."""
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(4, 12, 12, generator=g, dtype=torch.float64)
    a[1] *= 0.6  # nothing above 0.7: fallback
    a[2] *= 0.6
    a[2, :3, :3] = 0.9  # 9 pixels above 0.7 (< 30): fallback at 0.63
    return a


def test_seeds_hand_values():
    att = torch.tensor([[[0.0, 0.009, 0.01, 0.5, 0.69, 0.7, 0.71, 1.0]]])
    assert spg_seeds(att, 0.7, 0.01, min_foreground=0).tolist() == [[[0, 0, 255, 255, 255, 255, 1, 1]]]
    # fewer than 30 pixels above 0.7: threshold 0.7 * max = 0.7 (max 1.0), strict
    assert spg_seeds(att, 0.7, 0.01).tolist() == [[[0, 0, 255, 255, 255, 255, 1, 1]]]
    att = torch.tensor([[[0.0, 0.2, 0.3, 0.5]]])  # max 0.5: fallback threshold 0.35
    assert spg_seeds(att, 0.7, 0.1).tolist() == [[[0, 255, 255, 1]]]
    # the background wins where both hold (mark_bg runs after mark_obj)
    assert spg_seeds(torch.tensor([[[0.0, 0.04, 0.05]]]), 0.7, 0.045).tolist() == [[[0, 0, 1]]]


@pytest.mark.parametrize("high,low", [(0.7, 0.05), (0.5, 0.05), (0.7, 0.1), (0.3, 0.3)])
def test_seeds_match_reference_per_image(high, low):
    att = _maps()
    assert torch.equal(spg_seeds(att, high, low), _ref_get_mask(att, high, low, carry=False))
    assert torch.equal(spg_seeds(att.float(), high, low, min_foreground=0), _ref_get_mask(att, high, low, min_fg=0))
    for i in range(4):  # one image at a time there is nothing to carry: equal to the reference as written
        assert torch.equal(spg_seeds(att[i : i + 1], high, low), _ref_get_mask(att[i : i + 1], high, low))


def test_reference_carries_the_fallback_threshold_to_the_next_image():
    att = torch.zeros(2, 8, 8, dtype=torch.float64)
    att[0, 0, 0] = 0.5  # image 0: fallback, threshold 0.35 for the reference's next images
    att[1] = 0.5  # image 1: 64 pixels at 0.5, none above 0.7
    att[1, :6, :6] = 0.8  # 36 pixels above 0.7: no fallback of its own
    ours, ref = spg_seeds(att, 0.7, 0.05), _ref_get_mask(att, 0.7, 0.05)
    assert torch.equal(ours[0], ref[0])
    assert int((ours[1] == 1).sum()) == 36 and int((ref[1] == 1).sum()) == 64
    assert torch.equal(ours, _ref_get_mask(att, 0.7, 0.05, carry=False))


def test_masked_bce():
    z = torch.randn(2, 5, 5)
    s = _ref_get_mask(torch.rand(2, 5, 5), 0.6, 0.3, min_fg=0)
    assert torch.allclose(masked_bce(z, s).double(), _ref_bce(z, s), atol=1e-6)
    z = torch.randn(1, 2, 2, requires_grad=True)
    loss = masked_bce(z, torch.full((1, 2, 2), 255))
    assert loss.item() == 0.0 and loss.requires_grad


def _reference_get_loss(out, y, size, guidance):
    """float64 xiaomengyc/SPG ``get_loss`` (per-image fallback): B2 <- attention, B1 <- sigma(B2), C <- fused."""

    def up(t):
        return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[:, 0]

    att = _norm(up(out.cams[torch.arange(len(y)), y][:, None]))
    b1, b2, c = up(out.aux["side_b1"]), up(out.aux["side_b2"]), up(out.aux["side_c"])
    if guidance == "reference":
        m2 = _ref_get_mask(att, 0.7, 0.05, carry=False)
        m1 = _ref_get_mask(torch.sigmoid(b2), 0.5, 0.05, carry=False)
    else:
        m1 = _ref_get_mask(att, 0.7, 0.01, carry=False)
        m2 = _ref_get_mask(att, 0.5, 0.05, carry=False)
    fused = (torch.sigmoid(b1) + torch.sigmoid(b2)) / 2
    m3 = _ref_get_mask(fused, 0.7, 0.1, carry=False)
    logp = out.logits - torch.logsumexp(out.logits, 1, keepdim=True)
    return {
        "ce": -logp[torch.arange(len(y)), y].mean(),
        "b1": _ref_bce(b1, m1), "b2": _ref_bce(b2, m2), "c": _ref_bce(c, m3),
    }, (m1, m2, m3)


@pytest.mark.parametrize("guidance", ["reference", "attention"])
def test_loss_matches_reference_at_image_resolution(guidance):
    torch.manual_seed(0)
    head = SPG(6, 3, mid_channels=8, reduction=4, guidance=guidance).double()
    f = torch.randn(2, 6, 5, 5, dtype=torch.float64)
    y = torch.tensor([2, 0])
    out = head(f)
    ref, masks = _reference_get_loss(out, y, (20, 20), guidance)
    assert all(bool((m != 255).any()) for m in masks)  # every term is active
    step = head.loss(out, y)
    for k in ("ce", "b1", "b2", "c"):
        assert torch.allclose(step.terms[k], ref[k], atol=1e-10), k
    assert torch.allclose(step.total, sum(ref.values()), atol=1e-10)
    same = spg_loss(out, y, SPG_THRESHOLDS[guidance], guidance=guidance, size=(20, 20))
    assert torch.allclose(same.total, step.total)


def test_the_two_guidances_differ_where_the_reference_says():
    torch.manual_seed(0)
    head = SPG(6, 2, mid_channels=8, reduction=4).double()
    out = head(torch.randn(2, 6, 5, 5, dtype=torch.float64))
    y = torch.tensor([0, 1])
    th = ((0.5, 0.05), (0.7, 0.05), (0.7, 0.1))
    ref = spg_loss(out, y, th, guidance="reference", size=(20, 20))
    att = spg_loss(out, y, th, guidance="attention", size=(20, 20))
    # same B2 and C targets, B1 learns from sigma(B2) instead of the class map
    for k in ("ce", "b2", "c"):
        assert torch.equal(ref.terms[k], att.terms[k])
    assert not torch.allclose(ref.terms["b1"], att.terms["b1"])


def test_gradient_paths():
    torch.manual_seed(0)
    head = SPG(6, 2, mid_channels=8, reduction=2)
    f = torch.randn(2, 6, 4, 4)
    y = torch.tensor([0, 1])
    out = head(f)
    # B2 and C without seeds ((1, 0): nothing above 1 or below 0): only CE and B1's term have gradients
    step = spg_loss(out, y, thresholds=((0.5, 0.5), (1.0, 0.0), (1.0, 0.0)), min_foreground=0, size=(8, 8))
    assert step.terms["b1"] > 0 and step.terms["b2"] == 0 and step.terms["c"] == 0
    step.total.backward(retain_graph=True)
    # B1's seeds come from sigma(B2) but carry no gradient to B2
    assert head.side_b2[0].weight.grad is None or head.side_b2[0].weight.grad.abs().max() == 0
    assert head.side_b1[0].weight.grad.abs().max() > 0
    head.zero_grad()
    th = ((0.5, 0.05), (0.7, 0.05), (0.5, 0.5))  # (0.5, 0.5): every fused pixel is a seed at init
    guidance = spg_loss(out, y, thresholds=th, size=(8, 8)).total - F.cross_entropy(out.logits, y)
    guidance.backward()  # guidance terms only: the classifier gets no gradient
    assert head.classifier.weight.grad is None or head.classifier.weight.grad.abs().max() == 0
    assert head.side_c[0].weight.grad.abs().max() > 0
    assert head.a2[0].weight.grad.abs().max() > 0  # the guidance of C shapes the shared features


def test_method_compares_at_the_image_resolution():
    import wsolkit
    from wsolkit.backbones import create_backbone

    torch.manual_seed(0)
    m = wsolkit.create_method("spg", 2, backbone=create_backbone("smallcnn", output_stride=8, width=4),
                              mid_channels=8).double()
    assert m.head.reduction == 8 and m.head.guidance == "reference"
    x, y = torch.rand(2, 3, 32, 32, dtype=torch.float64), torch.tensor([0, 1])
    (step,) = list(m.training_steps(x, y))
    out = m(x)
    ref, _ = _reference_get_loss(out, y, (32, 32), "reference")
    assert torch.allclose(step.total, sum(ref.values()), atol=1e-10)


def test_registry_and_bad_inputs():
    head = create_head("spg", 4, 2, mid_channels=8)
    assert isinstance(head, SPG) and "reduction=1" in repr(head) and "guidance='reference'" in repr(head)
    with pytest.raises(WSOLValueError, match="low"):
        spg_seeds(torch.rand(1, 2, 2), high=0.1, low=0.5)
    with pytest.raises(WSOLValueError, match="high"):
        spg_seeds(torch.rand(1, 2, 2), high=1.5, low=0.5)
    with pytest.raises(WSOLValueError, match="attention"):
        spg_seeds(torch.rand(2, 2), 0.7, 0.1)
    with pytest.raises(WSOLValueError, match="min_foreground"):
        spg_seeds(torch.rand(1, 2, 2), 0.7, 0.1, min_foreground=-1)
    out = head(torch.randn(2, 4, 3, 3))
    with pytest.raises(WSOLValueError, match="thresholds"):
        spg_loss(out, torch.tensor([0, 1]), thresholds=((0.7, 0.1),))
    with pytest.raises(WSOLValueError, match="guidance"):
        spg_loss(out, torch.tensor([0, 1]), guidance="b2")
    with pytest.raises(WSOLValueError, match="guidance"):
        SPG(4, 2, guidance="seeds")
    with pytest.raises(WSOLValueError, match="labels"):
        spg_loss(out, torch.tensor([0, 3]))
    with pytest.raises(WSOLTypeError, match="SPG"):
        spg_loss(WSOLOutput(torch.zeros(1, 2), torch.zeros(1, 2, 1, 1), {}), torch.tensor([0]))
    with pytest.raises(WSOLValueError, match="reduction"):
        SPG(4, 2, reduction=0)
