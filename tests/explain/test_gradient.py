"""Gradient family against float64 formulas: hand-set tiny CNN and random-weight timm/torchvision models."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision

from tests.explain._refs import TinyCNN, raw, ref_map, tiny_acts, tiny_grads, tiny_head
from wsolkit import create_method
from wsolkit.cams import postprocess
from wsolkit.explain import (
    GradCAM,
    GradCAMPlusPlus,
    LayerCAM,
    SmoothGradCAMPlusPlus,
    gradcam_map,
    gradcampp_map,
    layercam_map,
    xgradcam_map,
)

GRAD_METHODS = ["gradcam", "gradcam++", "xgradcam", "layercam"]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return TinyCNN().double().eval(), torch.rand(3, 3, 6, 7, dtype=torch.float64) - 0.3


@pytest.mark.parametrize("method", GRAD_METHODS)
@pytest.mark.parametrize("targets", [None, 2, "tensor"])
def test_tiny_hand_gradients(tiny, method, targets):
    m, x = tiny
    a = tiny_acts(m, x)
    logits = tiny_head(m, a)
    c = logits.argmax(1).numpy() if targets is None else np.array([2, 2, 2]) if targets == 2 else np.array([0, 2, 1])
    t = torch.tensor([0, 2, 1]) if targets == "tensor" else targets
    g = tiny_grads(m, a, c)
    want = ref_map(method, a.numpy(), g)
    got = raw(create_method(method, classifier=m, target_layers="conv2"), x, t)
    assert got.dtype == torch.float64 and got.shape == (3, 6, 7)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)
    assert want.max() > 0  # the reference is not trivially zero


def test_gradcampp_zero_denominator_exact():
    # g = 0 wherever A <= 0 in the tiny net → 0/0 → α = 0 exactly; no epsilon: tiny gradients keep full weight
    a = torch.tensor([[[[1.0, 2.0], [0.0, 3.0]]]], dtype=torch.float64)
    g = torch.tensor([[[[1e-9, 2e-9], [0.0, 1e-9]]]], dtype=torch.float64)
    alpha = (g**2 / (2 * g**2 + a.sum() * g**3)).nan_to_num(0.0)
    w = (alpha * g.clamp(min=0)).sum()
    torch.testing.assert_close(gradcampp_map(a, g), torch.relu(w * a[:, 0]), rtol=1e-12, atol=0)
    assert float(gradcampp_map(a, g).max()) > 1e-9  # an eps of 1e-6 in the denominator would crush this


def test_functional_hand_values():
    a = torch.arange(8.0).view(1, 2, 2, 2) - 2
    g = torch.tensor([1.0, -1.0, 0.5, 2.0, 0.0, 1.0, -2.0, 3.0]).view(1, 2, 2, 2)
    # Grad-CAM: w = [0.625, 0.5]
    torch.testing.assert_close(gradcam_map(a, g), torch.relu(0.625 * a[:, 0] + 0.5 * a[:, 1]))
    # LayerCAM: relu(g) * a summed over channels
    torch.testing.assert_close(layercam_map(a, g), torch.relu((g.clamp(min=0) * a).sum(1)))
    # XGrad-CAM: channel 0 has Σ A = -2 + -1 + 0 + 1 = -2; Σ A g = -2 + 1 + 0 + 2 = 1 → w0 = -0.5
    s1 = a[0, 1].sum()
    w1 = (a[0, 1] * g[0, 1]).sum() / s1
    torch.testing.assert_close(xgradcam_map(a, g), torch.relu(-0.5 * a[:, 0] + w1 * a[:, 1]))


def _split_forward(name: str):
    """(model, x, acts_fn, head_fn, spatial_fn): explicit forward split at the default target layer, float64."""
    torch.manual_seed(0)
    if name == "resnet18":
        m = torchvision.models.resnet18(num_classes=4)
        x = torch.randn(1, 3, 64, 64)

        def acts(x):
            y = m.maxpool(m.relu(m.bn1(m.conv1(x))))
            return m.layer4(m.layer3(m.layer2(m.layer1(y))))

        def head(a):
            return m.fc(torch.flatten(m.avgpool(a), 1))

        layer = m.layer4
    elif name == "densenet121":
        m = torchvision.models.densenet121(num_classes=4)
        x = torch.randn(1, 3, 64, 64)
        acts = m.features

        def head(a):
            return m.classifier(torch.flatten(F.adaptive_avg_pool2d(F.relu(a), 1), 1))

        layer = m.features
    elif name == "vgg16":
        m = timm.create_model("vgg16", num_classes=4, mlp_ratio=1 / 64)  # small pre-logits MLP: fast to build
        x = torch.randn(1, 3, 64, 64)
        acts = m.features
        head = m.forward_head
        layer = m.features[30]
    elif name == "vit":
        m = timm.create_model("vit_tiny_patch16_224", num_classes=4, img_size=64, depth=2)
        x = torch.randn(2, 3, 64, 64)
        blk = m.blocks[-1]
        store = {}

        def acts(x):
            t = m.norm_pre(m.patch_drop(m._pos_embed(m.patch_embed(x))))
            for b in m.blocks[:-1]:
                t = b(t)
            store["t"] = t
            return blk.norm1(t)

        def head(a):
            t = store["t"] + blk.ls1(blk.attn(a))
            t = t + blk.ls2(blk.mlp(blk.norm2(t)))
            return m.forward_head(m.norm(t))

        layer = blk.norm1
    else:
        raise ValueError(name)
    m = m.double().eval()
    return m, x.double(), acts, head, layer


def _spatial(name, t):
    if name == "vit":
        t = t[:, 1:]
        return t.reshape(t.shape[0], 4, 4, t.shape[-1]).permute(0, 3, 1, 2)
    return t


@pytest.mark.parametrize(
    "name",
    [
        "resnet18",
        "vit",
        pytest.param("densenet121", marks=pytest.mark.slow),  # ~10-40 s in float64 on a shared CPU
        pytest.param("vgg16", marks=pytest.mark.slow),
    ],
)
def test_random_models_against_formula(name):
    m, x, acts_fn, head_fn, layer = _split_forward(name)
    with torch.no_grad():
        a = acts_fn(x)
    a = a.detach().requires_grad_(True)
    logits = head_fn(a)
    c = logits.argmax(1)
    (g,) = torch.autograd.grad(logits.gather(1, c[:, None]).sum(), a)
    an, gn = _spatial(name, a.detach()).numpy(), _spatial(name, g).numpy()
    for method in GRAD_METHODS:
        cam = create_method(method, classifier=m)
        got = raw(cam, x)
        assert cam.layers == [layer]
        want = ref_map(method, an, gn)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-7, atol=1e-9 * max(1.0, np.abs(want).max()))


def test_smooth_gradcampp_against_formula(tiny):
    m, x = tiny
    cam = SmoothGradCAMPlusPlus(m, "conv2", n_samples=5, sigma=0.2, seed=3)
    a = tiny_acts(m, x)
    c = tiny_head(m, a).argmax(1).numpy()
    gs = [tiny_grads(m, tiny_acts(m, x + eps), c) for eps in cam.noise(x)]
    g1, g2, g3 = (np.mean([g**p for g in gs], 0) for p in (1, 2, 3))
    want = ref_map("smoothgradcam++", a.numpy(), (g1, g2, g3))
    got = raw(cam, x)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)
    # σ = 0 → every copy is the clean input → Grad-CAM++ exactly
    same = raw(SmoothGradCAMPlusPlus(m, "conv2", n_samples=3, sigma=0.0), x)
    torch.testing.assert_close(same, raw(GradCAMPlusPlus(m, "conv2"), x))


def test_layercam_multilayer_fusion(tiny):
    m, x = tiny
    a2 = tiny_acts(m, x)
    c = tiny_head(m, a2).argmax(1)
    # layer 1 (act1 output): independent autograd through the explicit float64 forward
    h = torch.relu(F.conv2d(x, m.conv1.weight, m.conv1.bias, padding=1)).requires_grad_(True)
    s = tiny_head(m, F.conv2d(h, m.conv2.weight, m.conv2.bias)).gather(1, c[:, None]).sum()
    (g1,) = torch.autograd.grad(s, h)
    maps = [ref_map("layercam", h.detach().numpy(), g1.numpy()), ref_map("layercam", a2.numpy(),
                                                                        tiny_grads(m, a2, c.numpy()))]
    scaled = []
    for mp in maps:
        mx = mp.reshape(mp.shape[0], -1).max(1)[:, None, None]
        scaled.append(np.tanh(2.0 * np.divide(mp, mx, out=np.zeros_like(mp), where=mx > 0)))
    want = np.maximum(*scaled)  # same resolution here (1×1 conv keeps the size)
    got = raw(LayerCAM(m, ["act1", "conv2"]), x)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)


def test_multilayer_mean_and_upsampled_output(tiny):
    m, x = tiny
    one = raw(GradCAM(m, "conv2"), x)
    other = raw(GradCAM(m, "act1"), x)
    both = raw(GradCAM(m, ["conv2", "act1"]), x)
    torch.testing.assert_close(both, (one + other) / 2)
    out = postprocess(GradCAM(m, "conv2")(x).cams, None, x.shape[-2:])
    assert out.shape == (3, 6, 7) and float(out.min()) == 0.0 and float(out.max()) == 1.0


def test_callable_target(tiny):
    m, x = tiny
    a = tiny_acts(m, x)
    # s = logit_0 − logit_1: ∂s/∂A is the difference of the two class gradients
    g = tiny_grads(m, a, np.zeros(3, int)) - tiny_grads(m, a, np.ones(3, int))
    got = raw(GradCAM(m, "conv2"), x, lambda z: z[:, 0] - z[:, 1])
    np.testing.assert_allclose(got.numpy(), ref_map("gradcam", a.numpy(), g), rtol=1e-10, atol=1e-12)


def test_create_graph_differentiable(tiny):
    m, x = tiny
    m = TinyCNN().double()
    maps = raw(GradCAM(m, "conv2", create_graph=True), x)
    assert maps.requires_grad
    maps.sum().backward()
    assert m.fc.weight.grad is not None and m.conv1.weight.grad is not None
    assert float(m.fc.weight.grad.abs().sum()) > 0
    # gradcheck w.r.t. the classifier weight through the CAM (float64)

    def f(wfc):
        with torch.no_grad():
            m.fc.weight.copy_(wfc.detach())
        return raw(GradCAM(m, "conv2", create_graph=True), x)

    w0 = m.fc.weight.detach().clone()
    out = f(w0)
    analytic = torch.autograd.grad(out.sum(), m.fc.weight)[0]
    eps = 1e-6
    num = torch.zeros_like(w0)
    for idx in np.ndindex(*w0.shape):
        wp, wm = w0.clone(), w0.clone()
        wp[idx] += eps
        wm[idx] -= eps
        num[idx] = (f(wp).sum() - f(wm).sum()).detach() / (2 * eps)
    torch.testing.assert_close(analytic, num, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("method", GRAD_METHODS)
def test_create_graph_same_values(tiny, method):
    # the default path records no graph before the target layer; create_graph=True records everything
    m, x = tiny
    fast = raw(create_method(method, classifier=m, target_layers=["act1", "conv2"]), x)
    full = raw(create_method(method, classifier=m, target_layers=["act1", "conv2"], create_graph=True), x)
    assert not fast.requires_grad
    torch.testing.assert_close(fast, full.detach(), rtol=1e-12, atol=1e-14)
