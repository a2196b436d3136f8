import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wsolkit._checks import WSOLTypeError, WSOLValueError
from wsolkit.erasing import SPG, masked_bce, spg_loss, spg_seeds
from wsolkit.heads import create_head
from wsolkit.output import WSOLOutput


def _ref_seeds(att, high, low):
    a = att.detach().double().numpy()
    out = np.full(a.shape, 255, dtype=np.int64)
    out[a < low] = 0
    out[a >= high] = 1
    return torch.from_numpy(out)


def _ref_bce(logits, seeds):
    z = logits.double().flatten()
    t = seeds.flatten()
    keep = t != 255
    if not keep.any():
        return z.sum() * 0
    z, t = z[keep], t[keep].double()
    p = 1 / (1 + torch.exp(-z))
    return -(t * torch.log(p) + (1 - t) * torch.log(1 - p)).mean()


def test_seeds_hand_values():
    att = torch.tensor([[[0.0, 0.009, 0.01, 0.5, 0.69, 0.7, 1.0]]])
    assert spg_seeds(att, 0.7, 0.01).tolist() == [[[0, 0, 255, 255, 255, 1, 1]]]


@pytest.mark.parametrize("high,low", [(0.7, 0.01), (0.5, 0.05), (0.7, 0.1), (0.3, 0.3)])
def test_seeds_random(high, low):
    att = torch.rand(3, 9, 11)
    assert torch.equal(spg_seeds(att, high, low), _ref_seeds(att, high, low))


def test_masked_bce():
    z = torch.randn(2, 5, 5)
    s = _ref_seeds(torch.rand(2, 5, 5), 0.6, 0.3)
    assert torch.allclose(masked_bce(z, s).double(), _ref_bce(z, s), atol=1e-6)
    z = torch.randn(1, 2, 2, requires_grad=True)
    loss = masked_bce(z, torch.full((1, 2, 2), 255))
    assert loss.item() == 0.0 and loss.requires_grad


def _norm(t):
    lo = t.amin((-2, -1), keepdim=True)
    hi = t.amax((-2, -1), keepdim=True)
    return (t - lo) / (hi - lo)


def test_loss_matches_reference_at_image_resolution():
    torch.manual_seed(0)
    head = SPG(6, 3, mid_channels=8, reduction=4).double()
    f = torch.randn(2, 6, 5, 5, dtype=torch.float64)
    y = torch.tensor([2, 0])
    out = head(f)
    assert out.aux["size"] == (20, 20)
    th = ((0.6, 0.05), (0.4, 0.1), (0.5, 0.5))

    def up(t):
        return F.interpolate(t, size=(20, 20), mode="bilinear", align_corners=False)[:, 0]

    att = _norm(up(out.cams[torch.arange(2), y][:, None]))
    b1, b2, c = up(out.aux["side_b1"]), up(out.aux["side_b2"]), up(out.aux["side_c"])
    fused = (torch.sigmoid(b1) + torch.sigmoid(b2)) / 2
    ref = (
        F.cross_entropy(out.logits, y)
        + _ref_bce(b1, _ref_seeds(att, *th[0]))
        + _ref_bce(b2, _ref_seeds(att, *th[1]))
        + _ref_bce(c, _ref_seeds(fused, *th[2]))
    )
    assert torch.allclose(spg_loss(out, y, thresholds=th), ref, atol=1e-8)


def test_gradient_paths():
    torch.manual_seed(0)
    head = SPG(6, 2, mid_channels=8, reduction=2)
    f = torch.randn(2, 6, 4, 4)
    y = torch.tensor([0, 1])
    out = head(f)
    # guidance terms only: the classifier gets no gradient (its map is detached), side branches do
    th = ((0.7, 0.01), (0.5, 0.05), (0.5, 0.5))  # (0.5, 0.5): every fused pixel is a seed at init
    (spg_loss(out, y, thresholds=th) - F.cross_entropy(out.logits, y)).backward()
    assert head.classifier.weight.grad is None or head.classifier.weight.grad.abs().max() == 0
    assert head.side_b1[0].weight.grad.abs().max() > 0
    assert head.side_c[0].weight.grad.abs().max() > 0
    assert head.a2[0].weight.grad.abs().max() > 0  # the guidance of C shapes the shared features


def test_registry_and_bad_inputs():
    head = create_head("spg", 4, 2, mid_channels=8)
    assert isinstance(head, SPG) and "reduction=1" in repr(head)
    with pytest.raises(WSOLValueError, match="low"):
        spg_seeds(torch.rand(1, 2, 2), high=0.1, low=0.5)
    with pytest.raises(WSOLValueError, match="high"):
        spg_seeds(torch.rand(1, 2, 2), high=1.5, low=0.5)
    with pytest.raises(WSOLValueError, match="attention"):
        spg_seeds(torch.rand(2, 2), 0.7, 0.1)
    out = head(torch.randn(2, 4, 3, 3))
    with pytest.raises(WSOLValueError, match="thresholds"):
        spg_loss(out, torch.tensor([0, 1]), thresholds=((0.7, 0.1),))
    with pytest.raises(WSOLValueError, match="labels"):
        spg_loss(out, torch.tensor([0, 3]))
    with pytest.raises(WSOLTypeError, match="SPG"):
        spg_loss(WSOLOutput(torch.zeros(1, 2), torch.zeros(1, 2, 1, 1), {}), torch.tensor([0]))
    with pytest.raises(WSOLValueError, match="reduction"):
        SPG(4, 2, reduction=0)
