"""F-CAM / NEGEV under the method protocol: registry entries, timm classifiers, CRF un-normalisation, frozen model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import wsolkit
from wsolkit._checks import WSOLValueError
from wsolkit.decoders import FCAM, FCAMLoss, NEGEVLoss, NEGEVSeeder, negev_seeds, sampling_weights
from wsolkit.decoders._preprocessing import input_normalization_of, unnormalize_to_255


def _gap():
    torch.manual_seed(0)
    return wsolkit.create_method("gap", 2, backbone=wsolkit.create_backbone("smallcnn", output_stride=8, width=4))


def test_registry_entries():
    for name, loss in (("fcam", FCAMLoss), ("negev", NEGEVLoss)):
        assert wsolkit.method_info(name) == {"name": name, "needs": "classifier", "family": "decoder"}
        m = wsolkit.create_method(name, classifier=_gap(), crf=None)
        assert isinstance(m, FCAM) and type(m.objective) is loss
    with pytest.raises(WSOLValueError, match="num_classes"):
        wsolkit.create_method("fcam", 3, classifier=_gap())
    with pytest.raises(WSOLValueError, match="classifier"):
        wsolkit.create_method("negev", 2)


def test_timm_classifier_cams_are_read_off_the_last_linear_layer():
    import timm

    torch.manual_seed(0)
    clf = timm.create_model("test_resnet", num_classes=3).eval()
    m = wsolkit.create_method("fcam", classifier=clf, crf=None)
    x = torch.randn(2, 3, 48, 40)
    out = m(x)
    with torch.no_grad():
        feats = clf.forward_features(x)
        ref_logits = clf(x)
    w = clf.get_classifier().weight.double()
    ref_cams = torch.einsum("kc,bchw->bkhw", w, feats.double())  # CAM of Zhou et al., float64
    torch.testing.assert_close(out.logits, ref_logits)
    torch.testing.assert_close(out.aux["classifier_cams"].double(), ref_cams, rtol=1e-5, atol=1e-5)
    # GAP of the CAM + bias are the logits (timm's head: global average pool, then the linear layer)
    torch.testing.assert_close(ref_cams.mean((2, 3)) + clf.get_classifier().bias.double(), ref_logits.double(),
                               rtol=1e-5, atol=1e-5)
    assert m.input_normalization == (tuple(clf.pretrained_cfg["mean"]), tuple(clf.pretrained_cfg["std"]))


def test_normalization_sources_and_unnormalize():
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
    clf = _gap()
    assert input_normalization_of(clf, (mean, std)) == (mean, std)
    assert input_normalization_of(clf, {"mean": mean, "std": std}) == (mean, std)
    assert input_normalization_of(clf, {"image_mean": list(mean), "image_std": list(std)}) == (mean, std)  # HF

    class Processor:  # a Hugging Face image processor exposes image_mean / image_std
        image_mean, image_std = list(mean), list(std)

    assert input_normalization_of(clf, Processor()) == (mean, std)
    import torchvision

    tv = input_normalization_of(clf, torchvision.models.ResNet18_Weights.DEFAULT)  # read, not hard-coded here
    t = torchvision.models.ResNet18_Weights.DEFAULT.transforms()
    assert tv == (tuple(t.mean), tuple(t.std))
    # smallcnn: the statistics fit() trains it with (wsolkit.data.preprocessing's convention)
    assert input_normalization_of(clf) == (wsolkit.data.IMAGENET.mean, wsolkit.data.IMAGENET.std)
    plain = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    with pytest.warns(wsolkit.data.PreprocessingWarning):  # declares nothing: the one fallback, as fit feeds it
        assert input_normalization_of(plain) == (wsolkit.data.IMAGENET.mean, wsolkit.data.IMAGENET.std)
    resnet = wsolkit.create_method("gap", 2, backbone="resnet18")
    cfg = resnet.backbone.body.pretrained_cfg
    assert input_normalization_of(resnet) == (tuple(cfg["mean"]), tuple(cfg["std"]))
    img = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    m, s = torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1), torch.tensor(std, dtype=torch.float64).view(
        1, 3, 1, 1)
    torch.testing.assert_close(unnormalize_to_255((img - m) / s, (mean, std)), 255 * img)
    torch.testing.assert_close(unnormalize_to_255(img, None), 255 * img)
    with pytest.raises(WSOLValueError, match="input_normalization"):
        wsolkit.create_method("fcam", classifier=_gap(), input_normalization=object())


def test_crf_sees_the_images_in_0_255():
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.3, 0.4)
    m = wsolkit.create_method("fcam", classifier=_gap(), input_normalization=(mean, std))
    seen = []
    m.objective.crf.register_forward_hook(lambda mod, args, out: seen.append(args[1]))
    img = torch.rand(2, 3, 32, 32)
    x = (img - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    steps = list(m.training_steps(x, torch.tensor([0, 1])))
    assert len(steps) == 1 and sorted(steps[0].terms) == ["crf", "seeds", "size"]
    torch.testing.assert_close(seen[0], 255 * img, rtol=1e-5, atol=1e-3)
    # the smallcnn classifier: the statistics fit() trained it with, read through wsolkit.data.preprocessing
    imagenet = wsolkit.data.IMAGENET
    assert wsolkit.create_method("fcam", classifier=_gap()).input_normalization == (imagenet.mean, imagenet.std)


def test_frozen_classifier_stays_frozen_in_the_shared_loop():
    clf = _gap()
    before = {k: v.clone() for k, v in clf.state_dict().items()}
    m = wsolkit.create_method("negev", classifier=clf, crf=None).train()
    assert not clf.training and all(not p.requires_grad for p in clf.parameters())
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.5, momentum=0.9)
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 1, 0])
    for _ in range(2):
        opt.zero_grad()
        for step in m.training_steps(x, y):
            step.total.backward()
        opt.step()
    for k, v in clf.state_dict().items():
        assert torch.equal(v, before[k]), k  # weights and BN running statistics
    assert all(p.grad is None for p in clf.parameters())


# ---------------------------------------------------------------- NEGEV background sampling (issue: fidelity)


def ref_proba_sampler_weights(cam: np.ndarray, target: str) -> np.ndarray:
    """float64 re-implementation of the weights of ``_ProbaSampler.forward`` (``sbelharbi/negev``): ``c = (cam +
    1e-6) / Σ(cam + 1e-6)``; foreground ``c``, background ``1 − c``; ``multinomial`` draws ∝ these weights."""
    c = cam + 1e-6
    c = c / c.sum()
    return c if target == "fg" else 1.0 - c


@pytest.mark.parametrize("sampler", ["cam", "reference"])
def test_negev_background_sampling_distribution(sampler):
    h = w = 4
    cam = torch.zeros(h, w, dtype=torch.float64)
    cam[:2, :2] = 1.0
    cam[2:, 2:] = 0.5  # object (1), half-evidence (0.5), background (0)
    flat = cam.flatten().numpy()
    if sampler == "cam":
        expect_bg, expect_fg = 1.0 - flat, flat.copy()
    else:
        expect_bg, expect_fg = ref_proba_sampler_weights(flat, "bg"), ref_proba_sampler_weights(flat, "fg")
    fg_w, bg_w = sampling_weights(cam.flatten()[None], sampler)
    np.testing.assert_allclose(bg_w[0].numpy(), expect_bg, rtol=1e-12)
    np.testing.assert_allclose(fg_w[0].numpy(), expect_fg, rtol=1e-12)
    # empirical frequency of one background draw per image matches the normalised weights
    n = 40000
    g = torch.Generator().manual_seed(0)
    seeds = negev_seeds(cam.float().expand(n, h, w).contiguous(), n_fg=0, n_bg=1, generator=g, sampler=sampler)
    freq = (seeds == 0).double().mean(0).flatten().numpy()
    p = expect_bg / expect_bg.sum()
    np.testing.assert_allclose(freq, p, atol=4 * np.sqrt(p.max() / n) + 1e-9)
    if sampler == "cam":
        assert freq[0] == 0.0  # never on full evidence
    else:
        assert p.max() / p[p > 0].min() < 1.2  # nearly uniform, object included
        assert freq[0] > 0.04


def test_negev_seeder_sampler_option():
    assert NEGEVSeeder(sampler="reference").sampler == "reference"
    assert "sampler='reference'" in repr(NEGEVSeeder(sampler="reference"))
    with pytest.raises(WSOLValueError, match="sampler"):
        NEGEVSeeder(sampler="uniform")
