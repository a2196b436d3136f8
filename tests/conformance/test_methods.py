"""The method protocol, checked for every name of the registry (the timm ``test_models.py`` idea).

A method registered later (``wsolkit.register_method``) is covered by registering it: the suite builds it on a tiny
backbone or a tiny classifier depending on ``method_info(name)["needs"]``.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

import wsolkit
from wsolkit.cams import postprocess
from wsolkit.metrics import LocalizationMeter

SURVEY = [
    "gap", "max", "lse", "wildcat", "prm", "deepmil", "has", "adl", "acol", "spg", "cutmix", "tscam", "maxmin",
    "fcam", "negev", "gradcam", "gradcam++", "smoothgradcam++", "xgradcam", "layercam", "scorecam", "sscam",
    "iscam", "ablationcam", "cam",
]
K, B, S = 3, 4, 32

# options that keep a method small on the CPU (the rest of the suite runs each method with its defaults)
TINY_OPTIONS: dict[str, dict] = {
    "tscam": {"backbone": "test_vit", "backbone_options": {"img_size": S}},
    "sscam": {"n_samples": 2},
    "iscam": {"n_samples": 2},
    "smoothgradcam++": {"n_samples": 2},
    "maxmin": {"passes": 3},
    "acol": {"mid_channels": 16},
    "spg": {"mid_channels": 16},
}


def tiny_backbone() -> nn.Module:
    return wsolkit.create_backbone("smallcnn", output_stride=8, width=8)


def tiny_classifier() -> nn.Module:
    import timm

    return timm.create_model("test_resnet", num_classes=K)


def build(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    opts = dict(TINY_OPTIONS.get(name, {}))
    if wsolkit.method_info(name)["needs"] == "classifier":
        clf = tiny_classifier()
        if name in ("fcam", "negev"):  # decoders read the CAMs of a WSOL classifier
            clf = wsolkit.create_method("gap", K, backbone=tiny_backbone())
        return wsolkit.create_method(name, classifier=clf.eval(), **opts)
    opts.setdefault("backbone", tiny_backbone())
    return wsolkit.create_method(name, K, **opts)


def batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, 3, S, S, generator=g)
    y = torch.arange(B) % K
    masks = (torch.rand(B, S, S, generator=g) > 0.5).to(torch.uint8)
    return x, y, masks


def _hooks(module: nn.Module) -> int:
    n = 0
    for m in module.modules():
        n += len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        n += len(getattr(m, "_backward_pre_hooks", {}))
    return n


def test_registry_holds_the_survey():
    names = wsolkit.list_methods()
    assert names == sorted(names)
    assert set(SURVEY) <= set(names), sorted(set(SURVEY) - set(names))


def test_unknown_name_is_a_typed_error_with_close_matches():
    with pytest.raises(ValueError, match="gradcam"):
        wsolkit.create_method("gradkam", classifier=tiny_classifier())


@pytest.mark.parametrize("name", wsolkit.list_methods())
def test_forward_contract(name):
    m = build(name).eval()
    x, y, masks = batch()
    for labels in (None, y):
        out = m(x, labels)
        assert isinstance(out, wsolkit.WSOLOutput)
        assert out.logits.shape == (B, K)
        assert out.cams.ndim == 4 and out.cams.shape[0] == B and out.cams.shape[1] in (1, K), out.cams.shape
        assert out.cams.shape[-2] <= S and out.cams.shape[-1] <= S
        assert torch.isfinite(out.logits).all() and torch.isfinite(out.cams).all()
        assert isinstance(out.aux, dict) and all(isinstance(v, torch.Tensor) for v in out.aux.values())
    maps = postprocess(out.cams.detach(), y, (S, S))
    assert maps.shape == (B, S, S) and float(maps.min()) >= 0.0 and float(maps.max()) <= 1.0
    meter = LocalizationMeter(normalize=True)
    meter.update(out.cams.detach(), masks, y)
    assert 0.0 <= meter.compute()["pxap"] <= 100.0


@pytest.mark.parametrize("name", wsolkit.list_methods())
def test_one_training_step_through_the_shared_loop(name):
    m = build(name)
    x, y, _ = batch()
    if not m.trainable:
        with pytest.raises(wsolkit.NotTrainableError):
            next(iter(m.training_steps(x, y)))
        return
    m.train()
    params = [p for p in m.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    opt = torch.optim.SGD(params, lr=0.1)
    opt.zero_grad()
    n = 0
    for step in m.training_steps(x, y):  # the README's loop
        assert isinstance(step, wsolkit.LossOutput)
        assert step.total.ndim == 0 and torch.isfinite(step.total)
        assert all(not t.requires_grad and torch.isfinite(t).all() for t in step.terms.values())
        step.total.backward()
        n += 1
    opt.step()
    assert n >= 1
    assert any(not torch.equal(a, p.detach()) for a, p in zip(before, params)), "no parameter changed"


@pytest.mark.parametrize("name", wsolkit.list_methods())
def test_eval_is_deterministic_and_leaves_no_state(name):
    m = build(name).eval()
    x, y, _ = batch()
    hooks = _hooks(m)
    modes = [mod.training for mod in m.modules()]
    grads = [p.requires_grad for p in m.parameters()]
    grad_enabled = torch.is_grad_enabled()
    a, b = m(x, y), m(x, y)
    torch.testing.assert_close(a.logits, b.logits)
    torch.testing.assert_close(a.cams, b.cams)
    assert _hooks(m) == hooks
    assert [mod.training for mod in m.modules()] == modes
    assert [p.requires_grad for p in m.parameters()] == grads
    assert torch.is_grad_enabled() == grad_enabled


@pytest.mark.parametrize("name", wsolkit.list_methods())
def test_state_dict_round_trip(name):
    m = build(name, seed=0).eval()
    other = build(name, seed=1).eval()
    other.load_state_dict(copy.deepcopy(m.state_dict()))
    x, y, _ = batch()
    a, b = m(x, y), other(x, y)
    torch.testing.assert_close(a.logits, b.logits)
    torch.testing.assert_close(a.cams, b.cams)


@pytest.mark.parametrize("name", wsolkit.list_methods())
def test_dtype_move(name):
    m = build(name).eval().to(torch.float64)
    x, y, _ = batch()
    out = m(x.double(), y)
    assert out.logits.dtype == torch.float64
    assert torch.isfinite(out.cams).all()


def test_a_method_registered_later_is_built_and_trained_by_the_same_loop():
    @wsolkit.register_method("conformance_custom", overwrite=True)
    def custom(num_classes, backbone="smallcnn", pretrained=False, **options):
        return wsolkit.create_method("gap", num_classes, backbone=backbone, pretrained=pretrained, **options)

    assert "conformancecustom" in wsolkit.list_methods("conformance*")
    test_one_training_step_through_the_shared_loop("conformance_custom")
