"""Model-randomisation sanity check: Spearman, SSIM, HOG against scipy and float64 references; pass / fail rules."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

import wsolkit
from wsolkit import cams as cam_ops
from wsolkit._checks import WSOLValueError
from wsolkit.metrics import model_randomization, spearman, ssim
from wsolkit.metrics.sanity import hog, hog_similarity, randomizable_layers, spearman_abs
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
    signed = torch.randn(3, 6, 7, generator=g)
    got = spearman_abs(signed, b)
    for i in range(3):
        ref = stats.spearmanr(np.abs(signed[i].double().numpy().ravel()), b[i].double().numpy().ravel())[0]
        assert float(got[i]) == pytest.approx(ref, abs=1e-12)


def ref_hog(img: np.ndarray, orientations=9, cell=8, block=2, eps=1e-5) -> np.ndarray:
    """HOG in float64 with explicit loops: centred differences, hard orientation bins over [0, 180), cell means,
    L2-Hys over every block of block × block cells (skimage.feature.hog's layout)."""
    h, w = img.shape
    gx, gy = np.zeros((h, w)), np.zeros((h, w))
    for i in range(h):
        for j in range(1, w - 1):
            gx[i, j] = img[i, j + 1] - img[i, j - 1]
    for i in range(1, h - 1):
        for j in range(w):
            gy[i, j] = img[i + 1, j] - img[i - 1, j]
    nh, nw = h // cell, w // cell
    hist = np.zeros((nh, nw, orientations))
    for i in range(nh * cell):
        for j in range(nw * cell):
            angle = math.degrees(math.atan2(gy[i, j], gx[i, j])) % 180.0
            k = min(int(angle // (180.0 / orientations)), orientations - 1)
            hist[i // cell, j // cell, k] += math.hypot(gx[i, j], gy[i, j]) / cell**2
    feats = []
    for bi in range(nh - block + 1):
        for bj in range(nw - block + 1):
            v = hist[bi : bi + block, bj : bj + block].ravel()
            v = v / math.sqrt((v**2).sum() + eps**2)
            v = np.minimum(v, 0.2)
            feats.append(v / math.sqrt((v**2).sum() + eps**2))
    return np.concatenate(feats)


def test_hog_and_hog_similarity_equal_a_float64_reference():
    g = torch.Generator().manual_seed(3)
    a, b = torch.rand(2, 26, 21, generator=g), torch.rand(2, 26, 21, generator=g)  # partial cells are dropped
    b[1] = a[1] + 0.05 * b[1]  # a related pair: similarity well above 0
    fa = hog(a)
    assert fa.shape == (2, 2 * 1 * 36)
    for i in range(2):
        ra, rb = ref_hog(a[i].double().numpy()), ref_hog(b[i].double().numpy())
        np.testing.assert_allclose(fa[i].numpy(), ra, rtol=1e-10, atol=1e-12)
        assert float(hog_similarity(a, b)[i]) == pytest.approx(np.corrcoef(ra, rb)[0, 1], abs=1e-10)
    assert float(hog_similarity(a, b)[1]) > 0.5 > abs(float(hog_similarity(a, b)[0]))
    # other cell / bin settings, and a map smaller than two cells (cell shrinks to fit)
    np.testing.assert_allclose(hog(a, orientations=6, cell=4)[0].numpy(),
                               ref_hog(a[0].double().numpy(), orientations=6, cell=4), rtol=1e-10, atol=1e-12)
    small = torch.rand(1, 10, 12, generator=g)
    np.testing.assert_allclose(hog(small)[0].numpy(), ref_hog(small[0].double().numpy(), cell=5), atol=1e-12)
    assert torch.isnan(hog_similarity(torch.zeros(1, 16, 16), a[:1, :16, :16])).all()


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
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))  # noise: no edge a random conv finds
    res = model_randomization(GradCAMLike, clf, x, labels=torch.ones(4, dtype=torch.long))
    assert res.steps == ["trained", "4", "0"] and res.spearman.shape == (3, 4)
    assert torch.equal(res.spearman[0], torch.ones(4, dtype=torch.float64))
    assert res.passed, str(res)
    assert res.table()[-1]["spearman"] < 0.2 and res.table()[-1]["spearman_abs"] < 0.2
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
    assert not res.passed  # 3 of 4 maps keep their ranking: mean 0.75
    assert model_randomization(flat_after_randomising, clf, x, threshold=0.8).passed  # 0.75 < 0.8 once 0 counts
    with pytest.raises(WSOLValueError, match="not modules"):
        model_randomization(GradCAMLike, clf, x, layers=["nope"])
    with pytest.raises(WSOLValueError, match="criteria"):
        model_randomization(GradCAMLike, clf, x, criteria=("pearson",))


def _after_randomising(transform):
    """A factory whose map is ``base`` for the trained model and ``transform(base)`` for every randomised copy."""
    calls = []

    def factory(c):
        calls.append(1)
        first = len(calls) == 1

        def run(imgs, y):
            base = torch.nn.functional.avg_pool2d(imgs.mean(1, keepdim=True), 5, 1, 2)[:, 0] + 0.05
            return base if first else transform(base)
        return run
    return factory


def test_an_unchanged_ranking_fails_whatever_the_structure():
    """``base ** 12`` after randomisation: SSIM far below 0.5 (the former ``min(ρ, SSIM) < 0.5`` passed it), but
    the ranking never changed, so both Spearman correlations are 1 and the check fails; a sign flip has signed
    Spearman −1 but absolute-value Spearman 1 and fails too."""
    clf = _clf()
    x = torch.rand(4, 3, 24, 24, generator=torch.Generator().manual_seed(2))
    power = model_randomization(_after_randomising(lambda m: m**12), clf, x)
    last = power.table()[-1]
    assert last["spearman"] == pytest.approx(1.0) and last["spearman_abs"] == pytest.approx(1.0)
    assert last["ssim"] < 0.5  # a structure-only rule would call this a pass
    assert not power.passed
    assert model_randomization(_after_randomising(lambda m: m**12), clf, x, criteria=("ssim",)).passed
    flip = model_randomization(_after_randomising(lambda m: -m), clf, x)
    assert flip.table()[-1]["spearman"] == pytest.approx(-1.0) and flip.table()[-1]["spearman_abs"] == 1.0
    assert not flip.passed
    assert "wsolkit's rule" in str(flip)


def test_gap_method_through_the_protocol_against_a_hand_made_cascade_and_plot():
    """The protocol path (``lambda m: m``): the maps of every step equal a cascade re-run here by hand (same layers,
    same seed, post-processed CAMs of the trained model's predictions) and the similarities equal scipy's."""
    stats = pytest.importorskip("scipy.stats")
    torch.manual_seed(0)
    gap = wsolkit.create_method("gap", 2, backbone="smallcnn").eval()
    x = torch.rand(2, 3, 32, 32)
    res = model_randomization(lambda m: m, gap, x, keep_maps=True, seed=5)
    assert not gap.training
    names = randomizable_layers(gap)
    assert res.steps == ["trained", *names] and len(res.maps) == len(names) + 1
    with torch.no_grad():
        y = gap(x).logits.argmax(1)
        model = copy.deepcopy(gap)
        expected = [cam_ops.postprocess(gap(x).cams, y, (32, 32))]
        torch.manual_seed(5)
        mods = dict(model.named_modules())
        for name in names:
            for m in mods[name].modules():
                if any(True for _ in m.parameters(recurse=False)):
                    m.reset_parameters()
            expected.append(cam_ops.postprocess(model(x).cams, y, (32, 32)))
    for got, ref in zip(res.maps, expected, strict=True):
        torch.testing.assert_close(got, ref)
    k = len(names)
    for i in range(2):
        ref_rho = stats.spearmanr(expected[0][i].double().numpy().ravel(), expected[k][i].double().numpy().ravel())[0]
        if math.isnan(ref_rho):
            assert math.isnan(float(res.spearman[k, i]))
        else:
            assert float(res.spearman[k, i]) == pytest.approx(ref_rho, abs=1e-9)
    pytest.importorskip("matplotlib")
    from wsolkit.viz import plot_sanity

    fig = plot_sanity({"gap": res})
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) >= 1
