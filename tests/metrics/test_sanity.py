"""Model-randomisation sanity check: Spearman / SSIM against scipy and float64 formulas; pass / fail on tiny nets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import wsolkit
from wsolkit._checks import WSOLValueError
from wsolkit.metrics import model_randomization, spearman, ssim
from wsolkit.output import WSOLOutput


def test_spearman_equals_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (3, 6, 7), generator=g).float()  # many ties
    b = torch.rand(3, 6, 7, generator=g)
    got = spearman(a, b)
    for i in range(3):
        assert float(got[i]) == pytest.approx(stats.spearmanr(a[i].ravel(), b[i].ravel())[0], abs=1e-12)
    assert torch.isnan(spearman(torch.zeros(1, 4, 4), b[:1, :4, :4])).all()


def test_ssim_equals_a_float64_reference():
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(2, 15, 13, generator=g), torch.rand(2, 15, 13, generator=g)
    an, bn = a.double().numpy(), b.double().numpy()
    r, s = 5, 1.5
    w1 = np.exp(-((np.arange(11) - r) ** 2) / (2 * s * s))
    w = np.outer(w1, w1) / w1.sum() ** 2
    for i in range(2):
        vals = []
        for y in range(15 - 10):
            for x in range(13 - 10):
                pa, pb = an[i, y : y + 11, x : x + 11], bn[i, y : y + 11, x : x + 11]
                ma, mb = (w * pa).sum(), (w * pb).sum()
                va, vb = (w * pa * pa).sum() - ma**2, (w * pb * pb).sum() - mb**2
                cv = (w * pa * pb).sum() - ma * mb
                vals.append((2 * ma * mb + 1e-4) * (2 * cv + 9e-4) / ((ma**2 + mb**2 + 1e-4) * (va + vb + 9e-4)))
        assert float(ssim(a, b)[i]) == pytest.approx(np.mean(vals), rel=1e-10)


class GradCAMLike(nn.Module):
    """Hand-written Grad-CAM over a conv classifier (protocol: m(x, labels) -> WSOLOutput)."""

    def __init__(self, clf):
        super().__init__()
        self.clf = clf

    def forward(self, x, labels=None):
        with torch.enable_grad():
            feats = self.clf[1](self.clf[0](x))
            logits = self.clf[4](self.clf[3](self.clf[2](feats)))
            y = logits.argmax(1) if labels is None else labels
            (g,) = torch.autograd.grad(logits.gather(1, y[:, None]).sum(), feats)
        cam = (g.mean((2, 3), keepdim=True) * feats).sum(1, keepdim=True).relu()
        return WSOLOutput(logits.detach(), cam.detach(), {})


def _clf():
    torch.manual_seed(0)
    clf = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(8, 2))
    with torch.no_grad():  # a 'trained' model: class 1 reads the bright square through channel 0
        clf[0].weight.zero_()
        clf[0].weight[0, :, 1, 1] = 1.0
        clf[0].bias.fill_(-0.5)
        clf[4].weight.zero_()
        clf[4].weight[1, 0] = 4.0
    return clf


def _images():
    x = torch.zeros(4, 3, 16, 16)
    for i in range(4):
        x[i, :, 2 + i : 8 + i, 3:9] = 1.0
    return x


def test_gradcam_like_method_passes_and_weight_free_map_fails():
    clf = _clf()
    x = _images()
    res = model_randomization(GradCAMLike, clf, x, labels=torch.ones(4, dtype=torch.long))
    assert res.steps == ["trained", "4", "0"] and res.spearman.shape == (3, 4)
    assert torch.equal(res.spearman[0], torch.ones(4, dtype=torch.float64))
    assert res.passed, str(res)
    assert torch.equal(clf[0].weight[0, :, 1, 1], torch.ones(3))  # the trained classifier is left unchanged

    def brightness(c):  # ignores the model: must fail the check
        return lambda imgs, y: imgs.mean(1)

    bad = model_randomization(brightness, clf, x)
    assert not bad.passed and torch.allclose(bad.spearman[-1], torch.ones(4, dtype=torch.float64))
    rows = bad.table()
    assert rows[-1]["ssim"] == pytest.approx(1.0) and rows[-1]["constant"] == 0


def test_table_counts_constant_maps_as_passed_does():
    """A random-model map that is constant has no ranking: table() and passed both count it as similarity 0."""
    torch.manual_seed(0)
    clf = _clf()
    x = _images()
    calls = []

    def flat_after_randomising(c):
        def run(imgs, y):
            calls.append(1)
            if len(calls) == 1:  # the trained model: a varying map
                return imgs.mean(1)
            out = imgs.mean(1).clone()
            out[0] = 0.5  # image 0: constant map for every randomised copy
            return out
        return run

    res = model_randomization(flat_after_randomising, clf, x)
    last = res.table()[-1]
    assert last["constant"] == 1
    sp = torch.nan_to_num(res.spearman[-1], nan=0.0)
    assert last["spearman"] == pytest.approx(float(sp.mean())) and last["spearman"] == pytest.approx(3 / 4)
    assert res.passed == (min(last["spearman"], last["ssim"]) < res.threshold)
    with pytest.raises(WSOLValueError, match="not modules"):
        model_randomization(GradCAMLike, clf, x, layers=["nope"])


def test_gap_method_through_the_protocol_and_plot():
    torch.manual_seed(0)
    gap = wsolkit.create_method("gap", 2, backbone="smallcnn").eval()
    x = torch.rand(2, 3, 32, 32)
    res = model_randomization(lambda m: m, gap, x, keep_maps=True)
    assert res.steps[0] == "trained" and len(res.steps) == len(res.maps) and res.spearman.shape[1] == 2
    assert not gap.training
    pytest.importorskip("matplotlib")
    from wsolkit.viz import plot_sanity

    fig = plot_sanity({"gap": res})
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) >= 1
