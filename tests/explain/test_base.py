"""Explainer machinery: registry, hooks and state restoration, exceptions, typed errors, memory, wrappers."""

from __future__ import annotations

import gc

import pytest
import timm
import torch
import torch.nn as nn

import wsolkit.explain as ex
from tests.explain._refs import TinyCNN
from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError
from wsolkit.backbones import create_backbone
from wsolkit.explain import GradCAM, ScoreCAM, create_explainer, list_explainers
from wsolkit.heads import GAP
from wsolkit.models import WSOLModel

FAST = {"smoothgradcam++": {"n_samples": 2}, "sscam": {"n_samples": 2}, "iscam": {"n_samples": 2}}
NAMES = list_explainers()


def _net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3),
    )


def _hook_count(model: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) + len(m._backward_pre_hooks)
        for m in model.modules()
    )


def test_public_api():
    assert sorted(ex.__all__) == sorted([
        "BaseCAM", "GradCAM", "GradCAMPlusPlus", "SmoothGradCAMPlusPlus", "XGradCAM", "LayerCAM", "ScoreCAM",
        "SSCAM", "ISCAM", "AblationCAM", "gradcam_map", "gradcampp_map", "xgradcam_map", "layercam_map",
        "resolve_target_layers", "create_explainer", "list_explainers",
    ])
    assert NAMES == ["gradcam", "gradcam++", "smoothgradcam++", "xgradcam", "layercam", "scorecam", "sscam",
                     "iscam", "ablationcam"]
    assert isinstance(create_explainer("Grad-CAM++", _net()), ex.GradCAMPlusPlus)
    assert isinstance(create_explainer("smooth_gradcam_plusplus", _net()), ex.SmoothGradCAMPlusPlus)
    with pytest.raises(WSOLValueError, match="unknown explainer 'gradcan'.*gradcam"):
        create_explainer("gradcan", _net())


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("train", [True, False])
def test_state_restored_after_success(name, train):
    net = _net().train(train)
    net[0].weight.requires_grad_(False)  # frozen parameter
    net[3].eval()  # a per-module flag that differs from the parent's
    flags = [m.training for m in net.modules()]
    rg = [p.requires_grad for p in net.parameters()]
    bn = net[1].running_mean.clone()
    x = torch.rand(2, 3, 8, 8)
    with create_explainer(name, net, target_layers="2", **FAST.get(name, {})) as cam:
        out = cam(x, targets=torch.tensor([0, 2]))
        assert _hook_count(net) == 0
    assert out.shape == (2, 8, 8) and torch.isfinite(out).all()
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert _hook_count(net) == 0
    assert [m.training for m in net.modules()] == flags
    assert [p.requires_grad for p in net.parameters()] == rg
    assert all(p.grad is None for p in net.parameters())  # nothing was back-propagated into the parameters
    assert torch.equal(net[1].running_mean, bn)  # eval mode during the call: BN statistics untouched


class _Boom(nn.Module):
    def __init__(self, after: int):
        super().__init__()
        self.after = after
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if self.calls > self.after:
            raise RuntimeError("boom")
        return x


MULTI_FORWARD = ["smoothgradcam++", "scorecam", "sscam", "iscam", "ablationcam"]


@pytest.mark.parametrize("name, after", [(n, 0) for n in NAMES] + [(n, 1) for n in MULTI_FORWARD])
def test_state_restored_after_exception(name, after):
    net = _net().train()
    net.insert(4, _Boom(after))
    flags = [m.training for m in net.modules()]
    cam = create_explainer(name, net, target_layers="2", **FAST.get(name, {}))
    with pytest.raises(RuntimeError, match="boom"):
        cam(torch.rand(2, 3, 8, 8))
    assert _hook_count(net) == 0
    assert [m.training for m in net.modules()] == flags


@pytest.mark.parametrize("name", ["gradcam", "gradcam++", "xgradcam", "layercam", "smoothgradcam++"])
def test_gradient_family_under_no_grad_and_frozen(name):
    net = _net().eval()
    x = torch.rand(2, 3, 8, 8)
    ref = create_explainer(name, net, target_layers="2", **FAST.get(name, {}))(x)
    net.requires_grad_(False)
    with torch.no_grad():
        out = create_explainer(name, net, target_layers="2", **FAST.get(name, {}))(x)
    torch.testing.assert_close(out, ref)
    assert float(out.max()) == 1.0
    assert not any(p.requires_grad for p in net.parameters())


def test_dataparallel_and_names():
    net = _net().eval()
    x = torch.rand(2, 3, 8, 8)
    ref = GradCAM(net, "2")(x)
    dp = nn.DataParallel(net)
    torch.testing.assert_close(GradCAM(dp, "2")(x), ref)
    torch.testing.assert_close(GradCAM(dp, "module.2")(x), ref)
    torch.testing.assert_close(GradCAM(dp, net[2])(x), ref)


def test_auto_layer_wsolmodel_probe_timm_swin():
    bb = create_backbone("smallcnn", output_stride=8, width=4)
    model = WSOLModel(bb, GAP(bb.out_channels, 2)).eval()
    cam = GradCAM(model, upsample=False)
    out = cam(torch.rand(2, 3, 32, 32))
    assert cam.layers == [model.backbone] and out.shape == (2, 4, 4)
    # Grad-CAM of a GAP + linear model equals the normalised CAM of the true class map (w ∝ W_c, eq. 2)
    with torch.no_grad():
        o = model(torch.rand(1, 3, 32, 32))
    assert o.cams.shape[1] == 2
    # a plain Sequential: probe forward → last module with a 4-D spatial output
    net = _net()
    cam = GradCAM(net)
    cam(torch.rand(1, 3, 8, 8))
    assert cam.layers == [net[3]]  # the Dropout after the in-place ReLU is the last 4-D module
    # timm feature_info
    m = timm.create_model("resnet10t", num_classes=3).eval()
    cam = GradCAM(m)
    cam(torch.rand(1, 3, 64, 64))
    assert cam.layers == [m.layer4]
    # Swin (NHWC stages)
    sw = timm.create_model("swin_tiny_patch4_window7_224", num_classes=3, depths=(1, 1, 1, 1)).eval()
    cam = GradCAM(sw, upsample=False)
    out = cam(torch.rand(1, 3, 224, 224))
    assert cam.layers == [sw.layers[3]] and out.shape == (1, 7, 7)


def test_gap_model_gradcam_equals_class_map():
    # for GAP → linear, ∂s_c/∂F_k = W_ck / (h w): Grad-CAM is ReLU(CAM_c) / (h w) exactly (survey eq. 2 vs 10-11)
    bb = create_backbone("smallcnn", output_stride=8, width=4)
    model = WSOLModel(bb, GAP(bb.out_channels, 3)).double().eval()
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    raw = GradCAM(model, upsample=False, normalize=False)(x, targets=torch.tensor([2, 1]))
    with torch.no_grad():
        cams = model(x).cams
    want = torch.relu(cams[torch.arange(2), torch.tensor([2, 1])]) / 16
    torch.testing.assert_close(raw, want, rtol=1e-10, atol=1e-12)


def test_user_reshape():
    class Tokens(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Conv2d(3, 5, 4, stride=4)
            self.head = nn.Linear(5, 2)

        def forward(self, x):
            t = self.proj(x).flatten(2).transpose(1, 2)  # (B, N, C)
            return self.head(t.mean(1))

    m = Tokens()

    def reshape(t):
        return t.transpose(1, 2).reshape(t.shape[0], t.shape[2], 3, 3)

    out = GradCAM(m, "proj", upsample=False)(torch.rand(2, 3, 12, 12))
    assert out.shape == (2, 3, 3)
    # a token layer without reshape → typed error naming the layer
    m2 = nn.Sequential(nn.Flatten(2), nn.Linear(16, 4), nn.Flatten(), nn.Linear(12, 2))
    with pytest.raises(ShapeError, match="spatial output"):
        GradCAM(m2, "1")(torch.rand(2, 3, 4, 4))
    out2 = GradCAM(m2, "1", reshape=lambda t: t.reshape(t.shape[0], 3, 2, 2), upsample=False)(torch.rand(2, 3, 4, 4))
    assert out2.shape == (2, 2, 2)
    del reshape


def test_typed_errors():
    net = _net().eval()
    x = torch.rand(2, 3, 8, 8)
    cam = GradCAM(net, "2")
    with pytest.raises(WSOLValueError, match=r"`targets`.*\[0, 2\].*got 3"):
        cam(x, 3)
    with pytest.raises(WSOLValueError, match=r"`targets`.*\[0, 2\].*\[-1, 0\]"):
        cam(x, torch.tensor([0, -1]))
    with pytest.raises(ShapeError, match=r"`targets` must have shape \(2,\).*\(3,\)"):
        cam(x, torch.tensor([0, 1, 2]))
    with pytest.raises(WSOLTypeError, match="`targets`.*integer"):
        cam(x, torch.tensor([0.0, 1.0]))
    with pytest.raises(WSOLTypeError, match="`targets`"):
        cam(x, "cat")
    with pytest.raises(ShapeError, match="callable `targets`"):
        cam(x, lambda z: z)
    with pytest.raises(ShapeError, match=r"`x` must have shape \(B, C, H, W\), got \(3, 8, 8\)"):
        cam(x[0])
    with pytest.raises(WSOLTypeError, match="`x` must be a floating"):
        cam(x.long())
    with pytest.raises(WSOLValueError, match="not a submodule"):
        GradCAM(net, nn.Conv2d(3, 4, 3))
    with pytest.raises(WSOLValueError, match=r"no module named '9'"):
        GradCAM(net, "9")
    with pytest.raises(WSOLValueError, match=r"no module named 'module\.2'"):
        GradCAM(net, "module.2")
    with pytest.raises(WSOLTypeError, match="`target_layers`"):
        GradCAM(net, [3.5])
    with pytest.raises(ShapeError, match="Linear must have a spatial output"):
        GradCAM(net, "6")(x)
    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.used = nn.Conv2d(3, 2, 1)
            self.unused = nn.Conv2d(3, 2, 1)

        def forward(self, t):
            return self.used(t).mean((2, 3))

    with pytest.raises(WSOLValueError, match="not called"):
        GradCAM(Unused(), "unused")(x)
    with pytest.raises(WSOLTypeError, match="`model`"):
        GradCAM(lambda t: t)
    for cls in (ex.SmoothGradCAMPlusPlus, ex.SSCAM, ex.ISCAM):
        with pytest.raises(WSOLValueError, match="`n_samples` must be >= 1, got 0"):
            cls(net, "2", n_samples=0)
    for cls in (ex.SmoothGradCAMPlusPlus, ex.SSCAM):
        with pytest.raises(WSOLValueError, match="`sigma` must be >= 0.0, got -1"):
            cls(net, "2", sigma=-1.0)
    with pytest.raises(WSOLValueError, match="`batch_size`"):
        ScoreCAM(net, "2", batch_size=0)
    with pytest.raises(WSOLValueError, match="`perturb`"):
        ex.SSCAM(net, "2", perturb="both")

    class Bad(nn.Module):
        def forward(self, x):
            return {"logits": x}

    with pytest.raises(WSOLTypeError, match="must return logits"):
        GradCAM(nn.Sequential(nn.Conv2d(3, 3, 1), Bad()), "0")(x)


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: thread hand-off costs more than the work on a shared CPU
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("name", ["gradcam", "scorecam"])
def test_memory_flat_over_repeated_calls(name, one_thread):
    net = TinyCNN().eval()
    cam = create_explainer(name, net, target_layers="conv2")
    x = torch.rand(1, 3, 4, 4)
    for _ in range(5):
        cam(x)
    gc.collect()
    before = sum(1 for o in gc.get_objects() if type(o) in (torch.Tensor, nn.Parameter))
    for _ in range(200):
        cam(x)
    gc.collect()
    after = sum(1 for o in gc.get_objects() if type(o) in (torch.Tensor, nn.Parameter))
    assert after <= before + 2, (before, after)
    assert _hook_count(net) == 0
    assert cam.layers == [net.conv2]
