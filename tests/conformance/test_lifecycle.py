"""A method's whole life, for every name of the registry, built by name: fit → checkpoint → rebuilt method.

Each method is built with ``create_method(name, ...)`` from names only (a backbone by name, a classifier by timm name
or a wsolkit method built by name), trained one epoch with the real :func:`wsolkit.training.fit`, saved, rebuilt with
:func:`wsolkit.training.load_method` and compared; then autocast, ``torch.compile``, batch 1, non-square inputs and
the state left by ``training_steps``. Exclusions carry their reason; ``docs/conformance.md`` is the table.
"""

from __future__ import annotations

import contextlib
import math

import pytest
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

import wsolkit
from wsolkit.data import Preprocessing, preprocessing
from wsolkit.training import fit, load_checkpoint, load_method, save_checkpoint

K, B, S = 3, 4, 32
METHODS = wsolkit.list_methods()

# options that keep a method small on the CPU; everything is a name or plain data, so checkpoints can record it
TINY: dict[str, dict] = {
    "tscam": {"backbone": "test_vit", "backbone_options": {"img_size": S}},
    "sscam": {"n_samples": 2},
    "iscam": {"n_samples": 2},
    "smoothgradcam++": {"n_samples": 2},
    "maxmin": {"u": 1},
    "acol": {"mid_channels": 16},
    "spg": {"mid_channels": 16},
}

# checks a method is excluded from, with the reason (shown in docs/conformance.md)
NON_SQUARE_EXCLUDED = {"tscam": "a ViT with a fixed patch grid: its input size is the img_size it was built with"}
COMPILE_BREAKS_ALLOWED = {  # graph breaks that do not come from the input checks (those are asserted absent)
}


def build(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    opts = dict(TINY.get(name, {}))
    if wsolkit.method_info(name)["needs"] == "classifier":
        if name in ("fcam", "negev"):  # decoders read the CAMs of a WSOL classifier, itself built by name
            clf = wsolkit.create_method("gap", K, backbone="smallcnn", backbone_options={"width": 8})
            return wsolkit.create_method(name, classifier=clf.eval(), crf=None, **opts)
        return wsolkit.create_method(name, K, classifier="timm:test_resnet", **opts)
    opts.setdefault("backbone", "smallcnn")
    if opts["backbone"] == "smallcnn":
        opts["backbone_options"] = {"width": 8}
    return wsolkit.create_method(name, K, **opts)


def data(n: int = 8, size: int = S, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g), torch.arange(n) % K


def _eval_out(method: nn.Module, x: torch.Tensor, y: torch.Tensor):
    method.eval()
    grad = getattr(method, "needs_grad", False) or wsolkit.method_info(method.method_name)["family"] == "explainer"
    with torch.enable_grad() if grad else torch.no_grad():
        out = method(x, labels=y)
    return out.logits.detach(), out.cams.detach()


@pytest.mark.parametrize("name", METHODS)
def test_fit_checkpoint_load_method_gives_the_same_method(name, tmp_path):
    method = build(name)
    x, y = data()
    if method.trainable:
        res = fit(method, DataLoader(TensorDataset(x, y), batch_size=B), epochs=1, lr=1e-3, progress=False,
                  checkpoint_dir=tmp_path)
        assert math.isfinite(res["history"][0]["loss"])
        path = res["checkpoint"]
    else:
        path = save_checkpoint(tmp_path / "m.pt", method)
    ckpt = load_checkpoint(path)
    assert ckpt["method"] == wsolkit.method_info(name)["name"] and ckpt["wsolkit_version"] == wsolkit.__version__
    assert not ckpt["unrecorded"], ckpt["unrecorded"]  # built by name: everything is recorded
    rebuilt = load_method(path)
    assert type(rebuilt) is type(method)
    for a, b in zip(_eval_out(method, x[:2], y[:2]), _eval_out(rebuilt, x[:2], y[:2])):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # the preprocessing the checkpoint recorded is the one the rebuilt method declares
    p = preprocessing(rebuilt, warn=False)
    assert isinstance(p, Preprocessing) and p == preprocessing(method, warn=False)


@pytest.mark.parametrize("name", METHODS)
def test_batch_of_one_and_a_non_square_input(name):
    if name in NON_SQUARE_EXCLUDED:
        shapes = [(1, S, S)]
    else:
        shapes = [(1, S, S), (2, S, S + 16)]
    method = build(name).eval()
    for b, h, w in shapes:
        x = torch.rand(b, 3, h, w)
        logits, cams = _eval_out(method, x, torch.zeros(b, dtype=torch.long))
        assert logits.shape == (b, K) and cams.shape[0] == b and cams.ndim == 4
        assert cams.shape[-2] <= h and cams.shape[-1] <= w
        maps = wsolkit.cams.postprocess(cams, torch.zeros(b, dtype=torch.long), size=(h, w))
        assert maps.shape == (b, h, w) and torch.isfinite(maps).all()


def _state(method: nn.Module) -> tuple:
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
                + len(getattr(m, "_backward_pre_hooks", {})) for m in method.modules())
    modes = tuple(m.training for m in method.modules())
    flags = tuple(p.requires_grad for p in method.parameters())
    return hooks, modes, flags, torch.is_grad_enabled()


@pytest.mark.parametrize("name", [n for n in METHODS if wsolkit.method_info(n)["family"] != "explainer"
                                  and n != "cam"])
def test_training_steps_leave_hooks_modes_and_grad_flags_as_they_were(name):
    method = build(name).train()
    x, y = data(B)
    before = _state(method)
    for step in method.training_steps(x, y):
        assert torch.isfinite(step.total)
        step.total.backward()
    assert _state(method) == before


@pytest.mark.parametrize("name", METHODS)
def test_bf16_autocast_on_cpu_gives_finite_losses_and_maps(name):
    method = build(name)
    x, y = data(B)
    if method.trainable:
        method.train()
        steps = method.training_steps(x, y)
        while True:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                step = next(steps, None)
            if step is None:
                break
            assert torch.isfinite(step.total.float()), {k: float(v) for k, v in step.terms.items()}
            step.total.backward()
    method.eval()
    grad = wsolkit.method_info(name)["family"] == "explainer"
    with torch.autocast("cpu", dtype=torch.bfloat16), (torch.enable_grad() if grad else torch.no_grad()):
        out = method(x, labels=y)
    assert torch.isfinite(out.logits.float()).all() and torch.isfinite(out.cams.float()).all()


def _check_frames(reason: str) -> bool:
    return "_checks.py" in reason


# one method per family in the slow suite; every method under the `heavy` marker (about 25 CPU-minutes)
_COMPILE_SLOW = {"gap", "wildcat", "acol", "maxmin", "fcam", "gradcam"}


@pytest.mark.slow
@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n in _COMPILE_SLOW else pytest.mark.heavy)
                                  for n in METHODS])
def test_compile_forward_equals_eager_without_breaks_from_the_input_checks(name):
    import torch._dynamo

    method = build(name).eval()
    x, y = data(2)
    grad = wsolkit.method_info(name)["family"] == "explainer"
    ctx = torch.enable_grad if grad else torch.no_grad
    with ctx():
        eager = method(x, labels=y)
    torch._dynamo.reset()
    with ctx():
        explanation = torch._dynamo.explain(method)(x, labels=y)
    from_checks = [str(b.reason) for b in explanation.break_reasons
                   if any("_checks.py" in str(f.filename) for f in getattr(b, "user_stack", []) or [])]
    assert not from_checks, from_checks
    torch._dynamo.reset()
    compiled = torch.compile(method)
    with ctx(), contextlib.nullcontext():
        out = compiled(x, labels=y)
    torch.testing.assert_close(out.logits, eager.logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.cams, eager.cams, rtol=1e-4, atol=1e-5)
