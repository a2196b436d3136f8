"""Hugging Face image classifiers (output with ``.logits``) under every explainer: tiny configs, no weights."""

from __future__ import annotations

import pytest
import torch

import wsolkit
from wsolkit.explain import NotAGAPNetworkError

transformers = pytest.importorskip("transformers")

NAMES = ["gradcam", "gradcam++", "smoothgradcam++", "xgradcam", "layercam", "scorecam", "sscam", "iscam",
         "ablationcam"]
FAST = {"smoothgradcam++": {"n_samples": 2}, "sscam": {"n_samples": 2}, "iscam": {"n_samples": 2}}


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    resnet = transformers.ResNetForImageClassification(transformers.ResNetConfig(
        num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic", num_labels=3))
    convnext = transformers.ConvNextForImageClassification(transformers.ConvNextConfig(
        num_channels=3, num_stages=2, hidden_sizes=[8, 16], depths=[1, 1], num_labels=3))
    return {"resnet": resnet.double().eval(), "convnext": convnext.double().eval()}


@pytest.mark.parametrize("arch", ["resnet", "convnext"])
def test_every_explainer_runs(models, arch):
    clf = models[arch]
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64)
    logits = clf(x).logits
    for name in NAMES:
        m = wsolkit.create_method(name, classifier=clf, **FAST.get(name, {}))
        out = m(x, [0, 2])
        assert m.num_classes == 3
        assert m.layers == [clf.base_model.encoder.stages[-1]]  # the last stage, found automatically
        torch.testing.assert_close(out.logits, logits.detach())
        assert out.cams.shape == (2, 1, 8, 8) and torch.isfinite(out.cams).all() and float(out.cams.min()) >= 0


def test_gradcam_of_the_gap_resnet_is_its_cam(models):
    # GAP → linear: ∂s_c/∂F = W_c / (h w), so Grad-CAM = ReLU(CAM_c) / (h w) (survey eqs. 2 and 10-11)
    clf = models["resnet"]
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        cam = wsolkit.create_method("cam", classifier=clf)(x, [1, 2]).cams
        grad = wsolkit.create_method("gradcam", classifier=clf)(x, [1, 2]).cams
    torch.testing.assert_close(grad, torch.relu(cam) / 64, rtol=1e-10, atol=1e-12)  # 8 × 8 maps
    assert float(grad.max()) > 0


def test_cam_refuses_convnext(models):
    with pytest.raises(NotAGAPNetworkError, match="not the spatial mean"):  # LayerNorm after the pooling
        wsolkit.create_method("cam", classifier=models["convnext"])(torch.rand(1, 3, 64, 64, dtype=torch.float64))


def _transformers():
    torch.manual_seed(0)
    vit = transformers.ViTForImageClassification(transformers.ViTConfig(
        image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, num_labels=3))
    deit = transformers.DeiTForImageClassificationWithTeacher(transformers.DeiTConfig(
        image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, num_labels=3))
    swin = transformers.SwinForImageClassification(transformers.SwinConfig(
        image_size=32, patch_size=4, embed_dim=8, depths=[1, 1], num_heads=[1, 1], window_size=4, num_labels=3))
    return {"vit": (vit.double().eval(), 1), "deit": (deit.double().eval(), 2), "swin": (swin.double().eval(), 0)}


@pytest.mark.parametrize("arch", ["vit", "deit", "swin"])
def test_transformers_pick_their_last_block_and_reshape_tokens(arch):
    clf, n_prefix = _transformers()[arch]
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    m = wsolkit.create_method("gradcam", classifier=clf)
    out = m(x, [0, 2])
    base = clf.base_model
    blocks = getattr(base, "layers", None) or getattr(getattr(base, "encoder", None), "layer", None)
    want = base.encoder.layers[-1] if arch == "swin" else blocks[-1].layernorm_before
    assert m.layers == [want]  # not the patch-embedding convolution
    # the same map with the layer and the token reshape written by hand
    side = 4
    ref = wsolkit.create_method("gradcam", classifier=clf, target_layers=[want], reshape=lambda a: a[:, n_prefix:]
                                .reshape(a.shape[0], side, side, a.shape[-1]).permute(0, 3, 1, 2))
    assert out.cams.shape == (2, 1, side, side) and float(out.cams.max()) > 0
    torch.testing.assert_close(out.cams, ref(x, [0, 2]).cams)
