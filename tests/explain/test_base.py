"""Explainer machinery: registry, hooks and state restoration, exceptions, typed errors, memory, wrappers."""

from __future__ import annotations

import gc

import pytest
import timm
import torch
import torch.nn as nn

import wsolkit
import wsolkit.explain as ex
from tests.explain._refs import TinyCNN, raw
from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError
from wsolkit.backbones import create_backbone
from wsolkit.cams import postprocess
from wsolkit.explain import GradCAM, ScoreCAM, create_explainer, list_explainers
from wsolkit.heads import GAP
from wsolkit.models import WSOLModel
from wsolkit.registry import UnknownNameError

FAST = {"smoothgradcam++": {"n_samples": 2}, "sscam": {"n_samples": 2}, "iscam": {"n_samples": 2}}
NAMES = ["gradcam", "gradcam++", "smoothgradcam++", "xgradcam", "layercam", "scorecam", "sscam", "iscam",
         "ablationcam"]
GRADIENT = ["gradcam", "gradcam++", "smoothgradcam++", "xgradcam", "layercam"]


def _net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3),
    )


def _make(name, net, **kw):
    return wsolkit.create_method(name, classifier=net, **{**FAST.get(name, {}), **kw})


def _hook_count(model: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) + len(m._backward_pre_hooks)
        for m in model.modules()
    )


def test_public_api_and_registry():
    assert sorted(ex.__all__) == sorted([
        "BaseCAM", "CAM", "GradCAM", "GradCAMPlusPlus", "SmoothGradCAMPlusPlus", "XGradCAM", "LayerCAM", "ScoreCAM",
        "SSCAM", "ISCAM", "AblationCAM", "InferenceModeError", "NotAGAPNetworkError", "gradcam_map",
        "gradcampp_map", "xgradcam_map", "layercam_map", "resolve_target_layers", "target_indices",
    ])  # create_explainer / list_explainers are deprecated: out of __all__ (tests/core/test_deprecations.py)
    assert set(NAMES) | {"cam"} <= set(wsolkit.list_methods())
    assert [n for n in wsolkit.list_methods("*cam*") if wsolkit.method_info(n)["family"] in ("explainer", "cam")] \
        == sorted(NAMES + ["cam"])
    for name in NAMES:
        assert wsolkit.method_info(name) == {"name": name, "needs": "classifier", "family": "explainer"}
    assert wsolkit.method_info("cam")["family"] == "cam"
    assert isinstance(wsolkit.create_method("Grad-CAM++", classifier=_net()), ex.GradCAMPlusPlus)
    assert isinstance(wsolkit.create_method("smooth_gradcam_plusplus", classifier=_net()), ex.SmoothGradCAMPlusPlus)
    with pytest.raises(UnknownNameError, match="gradcan.*gradcam"):
        wsolkit.create_method("gradcan", classifier=_net())
    m = _make("scorecam", _net(), target_layers="2")
    assert isinstance(m, wsolkit.WSOLMethod) and m.num_classes is None and not m.trainable


def test_not_trainable_and_num_classes():
    import timm

    clf = timm.create_model("test_resnet", num_classes=3)
    for name in NAMES + ["cam"]:
        m = _make(name, clf)
        assert m.num_classes == 3
        with pytest.raises(wsolkit.NotTrainableError, match="not trained"):
            next(iter(m.training_steps(torch.rand(2, 3, 32, 32), torch.tensor([0, 1]))))
    with pytest.raises(WSOLValueError, match="`num_classes`=4 but the classifier has 3"):
        wsolkit.create_method("gradcam", 4, classifier=clf)


def test_classifier_is_a_submodule():
    net = _net().eval()
    m = _make("gradcam", net, target_layers="2")
    assert list(m.state_dict()) == ["classifier." + k for k in net.state_dict()]
    other = _make("gradcam", _net().apply(lambda mod: mod.reset_parameters() if hasattr(mod, "reset_parameters")
                                          else None), target_layers="2")
    other.load_state_dict(m.state_dict())
    x = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(other(x).cams, m(x).cams)
    m64 = m.to(torch.float64)
    assert net[0].weight.dtype == torch.float64
    assert m64(x.double()).cams.dtype == torch.float64


def test_deprecated_aliases_keep_the_old_call_form():
    net = _net().eval()
    x = torch.rand(2, 3, 8, 8)
    with pytest.warns(DeprecationWarning, match="list_methods"):
        assert list_explainers() == NAMES
    with pytest.warns(DeprecationWarning, match="create_method"):
        old = create_explainer("gradcam", net, target_layers="2")
    with old as cam:
        maps = cam(x, torch.tensor([0, 2]))
    new = wsolkit.create_method("gradcam", classifier=net, target_layers="2")(x, torch.tensor([0, 2]))
    torch.testing.assert_close(maps, postprocess(new.cams, None, x.shape[-2:]))
    with pytest.warns(DeprecationWarning):
        rawmaps = create_explainer("gradcam", net, target_layers="2", upsample=False, normalize=False)(x, 1)
    torch.testing.assert_close(rawmaps, wsolkit.create_method("gradcam", classifier=net, target_layers="2")(x, 1)
                               .cams[:, 0])


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
    grad_mode = torch.is_grad_enabled()
    out = _make(name, net, target_layers="2")(x, torch.tensor([0, 2]))
    assert out.logits.shape == (2, 3) and not out.logits.requires_grad
    assert out.cams.shape == (2, 1, 8, 8) and torch.isfinite(out.cams).all() and float(out.cams.min()) >= 0
    assert torch.is_grad_enabled() == grad_mode
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
    cam = _make(name, net, target_layers="2")
    grad_mode = torch.is_grad_enabled()
    with pytest.raises(RuntimeError, match="boom"):
        cam(torch.rand(2, 3, 8, 8))
    assert _hook_count(net) == 0
    assert [m.training for m in net.modules()] == flags
    assert torch.is_grad_enabled() == grad_mode


@pytest.mark.parametrize("name", GRADIENT)
def test_gradient_family_under_no_grad_and_frozen(name):
    net = _net().eval()
    x = torch.rand(2, 3, 8, 8)
    ref = _make(name, net, target_layers="2")(x)
    net.requires_grad_(False)
    with torch.no_grad():
        out = _make(name, net, target_layers="2")(x)
        assert not torch.is_grad_enabled()
    torch.testing.assert_close(out.cams, ref.cams)
    torch.testing.assert_close(out.logits, ref.logits)
    assert float(out.cams.max()) > 0
    assert not any(p.requires_grad for p in net.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_inference_mode(name):
    net = _net().eval()
    m = _make(name, net, target_layers="2")
    x = torch.rand(2, 3, 8, 8)
    if name in GRADIENT:
        with torch.inference_mode(), pytest.raises(ex.InferenceModeError, match=r"inference_mode\(\).*no_grad"):
            m(x)
        assert isinstance(ex.InferenceModeError("x"), (ValueError, RuntimeError))
        assert _hook_count(net) == 0
    else:  # gradient-free explainers run under inference mode
        ref = m(x)
        with torch.inference_mode():
            out = m(x)
        torch.testing.assert_close(out.cams, ref.cams)


@pytest.mark.parametrize("name", NAMES + ["cam"])
def test_labels_accept_lists_and_numpy(name):
    import numpy as np

    net = _net().eval()
    m = _make(name, net) if name == "cam" else _make(name, net, target_layers="2")
    x = torch.rand(3, 3, 8, 8)
    ref = m(x, torch.tensor([2, 0, 1])).cams
    pred = m(x).logits.argmax(1)
    for labels in ([2, 0, 1], (2, 0, 1), np.array([2, 0, 1]), np.array([2, 0, 1], dtype=np.int32),
                   [np.int64(2), 0, np.int8(1)]):
        torch.testing.assert_close(m(x, labels).cams, ref)
    one = m(x, torch.tensor([1, 1, 1])).cams
    for labels in (1, np.int64(1), np.array(1), [1]):
        torch.testing.assert_close(m(x, labels).cams, one)
    scores = m(x).logits.detach().numpy()
    torch.testing.assert_close(m(x, scores.argmax(1)).cams, m(x, pred).cams)  # what argmax returns
    torch.testing.assert_close(m(x, None).cams, m(x, pred).cams)
    with pytest.raises(WSOLTypeError, match="`labels`.*integer array.*float"):
        m(x, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(WSOLTypeError, match="`labels` given as a list must hold ints"):
        m(x, [0, 1.5, 2])
    with pytest.raises(ShapeError, match=r"`labels` must have shape \(3,\).*\(2,\)"):
        m(x, [0, 1])
    with pytest.raises(WSOLValueError, match=r"`labels`.*\[0, 2\].*\[0, 3\]"):
        m(x, np.array([0, 3, 1]))


def test_dataparallel_and_names():
    net = _net().eval()
    x = torch.rand(2, 3, 8, 8)
    ref = raw(GradCAM(net, "2"), x)
    dp = nn.DataParallel(net)
    torch.testing.assert_close(raw(GradCAM(dp, "2"), x), ref)
    torch.testing.assert_close(raw(GradCAM(dp, "module.2"), x), ref)
    torch.testing.assert_close(raw(GradCAM(dp, net[2]), x), ref)


def test_auto_layer_wsolmodel_probe_timm_swin():
    bb = create_backbone("smallcnn", output_stride=8, width=4)
    model = WSOLModel(bb, GAP(bb.out_channels, 2)).eval()
    cam = GradCAM(model)
    out = raw(cam, torch.rand(2, 3, 32, 32))
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
    cam = GradCAM(sw)
    out = raw(cam, torch.rand(1, 3, 224, 224))
    assert cam.layers == [sw.layers[3]] and out.shape == (1, 7, 7)


def test_gap_model_gradcam_equals_class_map():
    # for GAP → linear, ∂s_c/∂F_k = W_ck / (h w): Grad-CAM is ReLU(CAM_c) / (h w) exactly (survey eq. 2 vs 10-11)
    bb = create_backbone("smallcnn", output_stride=8, width=4)
    model = WSOLModel(bb, GAP(bb.out_channels, 3)).double().eval()
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    got = raw(GradCAM(model), x, torch.tensor([2, 1]))
    with torch.no_grad():
        cams = model(x).cams
    bias = model.head.classifier.bias[torch.tensor([2, 1])].view(2, 1, 1).detach()  # cams hold W·F + b
    want = torch.relu(cams[torch.arange(2), torch.tensor([2, 1])] - bias) / 16
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


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

    out = raw(GradCAM(m, "proj"), torch.rand(2, 3, 12, 12))
    assert out.shape == (2, 3, 3)
    # a token layer without reshape → typed error naming the layer
    m2 = nn.Sequential(nn.Flatten(2), nn.Linear(16, 4), nn.Flatten(), nn.Linear(12, 2))
    with pytest.raises(ShapeError, match="spatial output"):
        GradCAM(m2, "1")(torch.rand(2, 3, 4, 4))
    out2 = raw(GradCAM(m2, "1", reshape=lambda t: t.reshape(t.shape[0], 3, 2, 2)), torch.rand(2, 3, 4, 4))
    assert out2.shape == (2, 2, 2)
    del reshape


def test_typed_errors():
    net = _net().eval()
    x = torch.rand(2, 3, 8, 8)
    cam = GradCAM(net, "2")
    with pytest.raises(WSOLValueError, match=r"`labels`.*\[0, 2\].*\[3, 3\]"):
        cam(x, 3)
    with pytest.raises(WSOLValueError, match=r"`labels`.*\[0, 2\].*\[-1, 0\]"):
        cam(x, torch.tensor([0, -1]))
    with pytest.raises(ShapeError, match=r"`labels` must have shape \(2,\).*\(3,\)"):
        cam(x, torch.tensor([0, 1, 2]))
    with pytest.raises(WSOLTypeError, match="`labels`.*integer"):
        cam(x, torch.tensor([0.0, 1.0]))
    with pytest.raises(WSOLTypeError, match="`labels`"):
        cam(x, "cat")
    with pytest.raises(WSOLTypeError, match="`labels`.*bool"):
        cam(x, True)
    with pytest.raises(ShapeError, match="callable `labels`"):
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
    with pytest.raises(WSOLTypeError, match="`classifier`"):
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
    cam = wsolkit.create_method(name, classifier=net, target_layers="conv2")
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
