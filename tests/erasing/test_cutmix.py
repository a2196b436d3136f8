import math

import pytest
import scipy.stats
import torch
import torch.nn.functional as F

from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError
from wsolkit.erasing import CutMix, cutmix, cutmix_box, cutmix_loss
from wsolkit.erasing.cutmix import _sample_lam
from wsolkit.output import WSOLOutput


@pytest.mark.parametrize("seed", range(12))
def test_lambda_equals_true_pasted_area(seed):
    b, h, w = 6, 13, 17
    # image i is constant i: a pixel shows its own image iff its value is i
    x = torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1).expand(b, 2, h, w).contiguous()
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    out = cutmix(x, labels, beta=1.0, generator=torch.Generator().manual_seed(seed))
    own = out.images[:, 0] == torch.arange(b, dtype=torch.float32).view(b, 1, 1)
    src = out.images[:, 0, out.box[0], out.box[2]].long() if out.box[1] > out.box[0] and out.box[3] > out.box[2] \
        else torch.arange(b)
    for i in range(b):
        if src[i] != i:  # pasted from another image: the foreign pixel count is the box area
            assert (1 - out.lam) * h * w == pytest.approx(int((~own[i]).sum()), abs=1e-9)
        assert out.labels_b[i] == labels[src[i]]
    assert torch.equal(out.labels_a, labels)
    y0, y1, x0, x1 = out.box
    assert out.lam == pytest.approx(1 - (y1 - y0) * (x1 - x0) / (h * w))
    assert torch.equal(out.images[:, :, :y0], x[:, :, :y0])  # outside the box untouched


def test_box_formula_by_hand():
    # H=W=10, λ=0.64 -> cut ratio 0.6 -> 6x6 box (half-width 3) centred at (5, 5)
    assert cutmix_box((10, 10), 0.64, 5, 5) == (2, 8, 2, 8)
    # clipped at the border
    assert cutmix_box((10, 10), 0.64, 0, 9) == (0, 3, 6, 10)
    assert cutmix_box((10, 20), 1.0, 4, 4) == (4, 4, 4, 4)
    assert cutmix_box((10, 20), 0.0, 5, 10) == (0, 10, 0, 20)


@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_lambda_sampler_is_beta(beta):
    g = torch.Generator().manual_seed(0)
    lams = [_sample_lam(beta, g) for _ in range(400)]
    assert scipy.stats.kstest(lams, scipy.stats.beta(beta, beta).cdf).pvalue > 0.01
    assert scipy.stats.kstest(lams, scipy.stats.beta(beta + 2, beta + 2).cdf).pvalue < 0.01


def test_loss_matches_float64_reference():
    logits = torch.randn(5, 3, dtype=torch.float64)
    a, b = torch.tensor([0, 1, 2, 0, 1]), torch.tensor([2, 2, 1, 0, 0])
    lam = 0.37
    logp = logits - torch.logsumexp(logits, 1, keepdim=True)
    ref = -(lam * logp[torch.arange(5), a] + (1 - lam) * logp[torch.arange(5), b]).mean()
    step = cutmix_loss(logits, a, b, lam)
    assert torch.allclose(step.total, ref)
    assert torch.allclose(step.terms["ce_a"], -logp[torch.arange(5), a].mean())
    assert torch.allclose(step.terms["ce_b"], -logp[torch.arange(5), b].mean())
    assert float(step.terms["lam"]) == pytest.approx(lam)
    out = WSOLOutput(logits, torch.zeros(5, 3, 2, 2, dtype=torch.float64), {})
    assert torch.allclose(cutmix_loss(out, a, b, lam).total, ref)
    assert torch.allclose(cutmix_loss(logits, a, b, 1.0).total, F.cross_entropy(logits, a))


def test_identity_and_reproducibility():
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 0, 1])
    out = cutmix(x, y, training=False)
    assert out.images is x and out.lam == 1.0 and torch.equal(out.labels_b, y)
    assert cutmix(x, y, prob=0.0).images is x
    assert CutMix().eval()(x, y).images is x
    a = cutmix(x, y, generator=torch.Generator().manual_seed(9))
    b = CutMix(generator=torch.Generator().manual_seed(9))(x, y)
    assert torch.equal(a.images, b.images) and a.lam == b.lam and a.box == b.box
    assert "beta=1.0" in repr(CutMix())


def test_gradient_flows_to_both_sources():
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    out = cutmix(x, torch.tensor([0, 1, 0, 1]), generator=torch.Generator().manual_seed(2))
    out.images.sum().backward()
    # every pixel is used exactly once, either in place or pasted into the permuted image
    assert float(x.grad.sum()) == pytest.approx(x.numel())


def test_bad_inputs():
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 0, 1])
    with pytest.raises(WSOLValueError, match="beta"):
        cutmix(x, y, beta=0.0)
    with pytest.raises(WSOLValueError, match="prob"):
        cutmix(x, y, prob=1.5)
    with pytest.raises(ShapeError, match="labels"):
        cutmix(x, y[:3])
    with pytest.raises(WSOLTypeError, match="labels"):
        cutmix(x, y.float())
    with pytest.raises(ShapeError, match="images"):
        cutmix(x[0], y)
    with pytest.raises(WSOLValueError, match="lam"):
        cutmix_loss(torch.randn(4, 2), y, y, 1.2)
    assert math.isfinite(cutmix_loss(torch.randn(4, 2), y, y, 0.5).total.item())
