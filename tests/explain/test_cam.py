"""``cam``: Zhou et al.'s CAM read off a classifier's own last linear layer, against hand computations in float64."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
import torchvision

import wsolkit
from tests.explain._refs import TinyCNN, tiny_acts, tiny_head
from wsolkit.backbones import create_backbone
from wsolkit.explain import CAM, NotAGAPNetworkError
from wsolkit.heads import GAP
from wsolkit.models import WSOLModel


def _check_cam(m, x, feats, weight, bias, labels, rtol=1e-10, atol=1e-12):
    """cams == W_c · F (no bias) per image, and mean_ij cams + b_c == the classifier's logit (eq. 2)."""
    out = m(x, labels)
    out = wsolkit.WSOLOutput(out.logits.detach(), out.cams.detach(), out.aux)
    f, w, b = feats.detach().numpy(), weight.detach().double().numpy(), bias.detach().double().numpy()
    c = np.asarray(labels)
    want = np.stack([np.einsum("d,dhw->hw", w[c[i]], f[i]) for i in range(len(c))])
    assert out.cams.dtype == x.dtype and out.cams.shape == (len(c), 1, *f.shape[-2:])
    np.testing.assert_allclose(out.cams[:, 0].numpy(), want, rtol=rtol, atol=atol)
    logit_c = out.logits.detach().numpy()[np.arange(len(c)), c]
    np.testing.assert_allclose(want.mean((1, 2)) + b[c], logit_c, rtol=rtol, atol=atol)
    return out


def test_tiny_net_hand_computation():
    torch.manual_seed(0)
    net = TinyCNN().double().eval()
    x = torch.rand(3, 3, 6, 7, dtype=torch.float64) - 0.3
    feats = torch.relu(tiny_acts(net, x))  # the input of the GAP (after the in-place ReLU)
    m = wsolkit.create_method("cam", classifier=net)
    out = _check_cam(m, x, feats, net.fc.weight, net.fc.bias, [0, 2, 1])
    torch.testing.assert_close(out.logits, tiny_head(net, tiny_acts(net, x)))
    pred = tiny_head(net, tiny_acts(net, x)).argmax(1)
    torch.testing.assert_close(m(x).cams, m(x, pred).cams)
    assert m(x).cams.requires_grad  # differentiable like the classifier's own forward  # None → the predicted class
    assert float(out.cams.min()) < 0  # raw evidence, not rectified: W_c can be negative


def test_timm_resnet():
    torch.manual_seed(0)
    clf = timm.create_model("test_resnet", num_classes=3).double().eval()
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        feats = clf.forward_features(x)
    m = wsolkit.create_method("cam", classifier=clf)
    assert m.num_classes == 3 and m._kind == "timm"
    out = _check_cam(m, x, feats, clf.fc.weight, clf.fc.bias, [2, 0])
    torch.testing.assert_close(out.logits, clf(x).detach())


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", pytest.param("densenet121", marks=pytest.mark.slow)])
def test_torchvision(name):
    torch.manual_seed(0)
    dtype = torch.float32 if name == "mobilenet_v2" else torch.float64  # float64 depthwise convs are slow on CPU
    clf = torchvision.models.get_model(name, num_classes=4).to(dtype).eval()
    x = torch.rand(2, 3, 64, 64, dtype=dtype)
    with torch.no_grad():
        if name == "resnet18":
            body = torch.nn.Sequential(*list(clf.children())[:-2])
            feats, linear = body(x), clf.fc
        elif name == "mobilenet_v2":
            feats, linear = clf.features(x), clf.classifier[1]
        else:
            feats, linear = torch.relu(clf.features(x)), clf.classifier
    tol = {"rtol": 1e-10, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-4, "atol": 1e-5}
    out = _check_cam(wsolkit.create_method("cam", classifier=clf), x, feats, linear.weight, linear.bias, [3, 1], **tol)
    torch.testing.assert_close(out.logits, clf(x).detach())


def test_wsol_model_own_cams():
    bb = create_backbone("smallcnn", output_stride=8, width=4)
    model = WSOLModel(bb, GAP(bb.out_channels, 3)).double().eval()
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        out = wsolkit.create_method("cam", classifier=model)(x, [2, 0])
        own = model(x)
    torch.testing.assert_close(out.cams, own.cams[[0, 1], [2, 0]][:, None])
    torch.testing.assert_close(out.logits, own.logits)


def test_huggingface_resnet():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                                    layer_type="basic", num_labels=3)
    clf = transformers.ResNetForImageClassification(cfg).double().eval()
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        feats = clf.resnet(x).last_hidden_state
    m = wsolkit.create_method("cam", classifier=clf)
    assert m.num_classes == 3
    out = _check_cam(m, x, feats, clf.classifier[1].weight, clf.classifier[1].bias, [1, 2])
    torch.testing.assert_close(out.logits, clf(x).logits.detach())


def test_not_a_gap_network_is_a_typed_error():
    x = torch.rand(1, 3, 64, 64)
    vgg = torchvision.models.VGG(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU()), 2)
    vgg.classifier = torch.nn.Sequential(torch.nn.Linear(8 * 7 * 7, 16), torch.nn.ReLU(), torch.nn.Dropout(),
                                         torch.nn.Linear(16, 2))  # VGG's MLP head, small
    vgg.eval()
    with pytest.raises(NotAGAPNetworkError, match="Linear, ReLU, Dropout.*not global average pooling"):
        wsolkit.create_method("cam", classifier=vgg)
    vgg.classifier = torch.nn.Linear(8 * 7 * 7, 2)  # one linear layer on a flattened 7×7 map
    with pytest.raises(NotAGAPNetworkError, match=r"\(1, 392\) vector that is not the spatial mean"):
        wsolkit.create_method("cam", classifier=vgg)(x)
    vit = timm.create_model("vit_tiny_patch16_224", num_classes=2, img_size=64, depth=1).eval()
    with pytest.raises(NotAGAPNetworkError, match="tokens"):
        wsolkit.create_method("cam", classifier=vit)(x)
    convnext = timm.create_model("convnext_atto", num_classes=2).eval()  # LayerNorm after the pooling
    with pytest.raises(NotAGAPNetworkError, match="not the spatial mean"):
        wsolkit.create_method("cam", classifier=convnext)(x)
    assert issubclass(NotAGAPNetworkError, ValueError)
    with pytest.raises(TypeError, match="`labels` of `cam`"):
        CAM(timm.create_model("test_resnet", num_classes=2))(x, lambda z: z[:, 0])


def test_hooks_and_modes_restored_after_an_exception():
    class Boom(torch.nn.Module):
        def forward(self, t):
            raise RuntimeError("boom")

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2)).train()
    m = wsolkit.create_method("cam", classifier=net)
    x = torch.rand(2, 3, 8, 8)
    with torch.inference_mode():  # no gradient needed: runs under inference mode
        ok = m(x, [0, 1])
    assert ok.cams.shape == (2, 1, 8, 8) and all(mod.training for mod in net.modules())
    net.insert(4, Boom())
    with pytest.raises(RuntimeError, match="boom"):
        m(x)
    assert all(not (mod._forward_hooks or mod._forward_pre_hooks) for mod in net.modules())
    assert all(mod.training for mod in net.modules())
