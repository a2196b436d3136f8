"""MaxMin under the method protocol: registry entry, training_steps generator, the authors' no-erasing path."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import wsolkit
from wsolkit.backbones import create_backbone
from wsolkit.maxmin import MaxMin, build_maxmin, maxmin_method, maxmin_train_step


def _bb(width=4):
    return create_backbone("smallcnn", output_stride=8, width=width)


def _eval_bn(m):
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.eval()
    return m


def test_registry_entry():
    info = wsolkit.method_info("MaxMin")
    assert info == {"name": "maxmin", "needs": "backbone", "family": "localizer-classifier"}
    torch.manual_seed(0)
    m = wsolkit.create_method("maxmin", 3, backbone=_bb(), head="gap", passes=2, sigma=5.0)
    assert isinstance(m, MaxMin) and m.passes == 2 and m.sigma == 5.0 and m.erasing == "authors"
    assert type(m.localizer.head).__name__ == "GAP" and m.localizer.backbone is m.classifier.backbone
    default = wsolkit.create_method("maxmin", 3, backbone="smallcnn")
    assert type(default.localizer.head).__name__ == "WILDCAT"


def test_deprecated_aliases_warn_and_match_the_protocol():
    torch.manual_seed(0)
    with pytest.warns(DeprecationWarning, match="create_method"):
        old = build_maxmin(_bb(), 2, head="gap", u=1)
    new = _eval_bn(copy.deepcopy(old))
    old = _eval_bn(old)
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 1])
    with pytest.warns(DeprecationWarning, match="training_steps"):
        logs = old.train_step(x, y)
    total = 0.0
    for step in new.training_steps(x, y):
        step.total.backward()
        total += float(step.total.detach())
    assert logs["loss"].item() == pytest.approx(total, rel=1e-6)
    for a, b in zip(old.parameters(), new.parameters(), strict=True):
        if a.grad is not None:
            torch.testing.assert_close(a.grad, b.grad)
    with pytest.warns(DeprecationWarning), pytest.raises(wsolkit._checks.WSOLTypeError, match="MaxMin"):
        maxmin_train_step(nn.Linear(2, 2), x, y)


def test_each_step_is_yielded_before_the_next_forward():
    """The generator is lazy: step t+1's forward runs only when the user asks for it (after backward of t)."""
    torch.manual_seed(0)
    m = maxmin_method(2, backbone=_bb(), head="gap", passes=3, share_backbone=False)
    with torch.no_grad():
        m.localizer.head.bias.copy_(torch.tensor([100.0, -100.0]))  # always right: every step runs
    calls = []
    m.localizer.register_forward_hook(lambda *_: calls.append("M"))
    m.classifier.register_forward_hook(lambda *_: calls.append("C"))
    steps = m.training_steps(torch.randn(2, 3, 32, 32), torch.zeros(2, dtype=torch.long))
    seen = []
    for step in steps:
        seen.append((sorted(step.terms), list(calls)))
        step.total.backward()
    assert [s[0] for s in seen] == [["loc"], ["loc_erasing"], ["loc_erasing"], ["neg", "pos"]]
    assert [len(s[1]) for s in seen] == [1, 2, 3, 5]  # one M pass per step, then C twice


def test_detach_mask_false_defers_step_zero_to_the_final_step():
    torch.manual_seed(0)
    m = maxmin_method(2, backbone=_bb(), head="gap", passes=2, detach_mask=False, share_backbone=False)
    with torch.no_grad():
        m.localizer.head.bias.copy_(torch.tensor([100.0, -100.0]))
    terms = [sorted(s.terms) for s in _loop(m, torch.randn(2, 3, 32, 32), torch.zeros(2, dtype=torch.long))]
    assert terms == [["loc_erasing"], ["loc", "neg", "pos"]]


def _loop(m, x, y):
    out = []
    for step in m.training_steps(x, y):
        step.total.backward()
        out.append(step)
    return out


def ref_authors_u0(x, cams, logits, omega=8.0, sp=0.5):
    """float64 re-implementation of the authors' u = 0 path (sbelharbi/wsol-min-max-entropy-interpretability,
    ``deepmil/models.py``: ``ResNet.segment`` → ``get_pseudo_binary_mask`` → ``apply_mask``), with the mask
    normalised per sample as wsolkit does: ``x⁺ = x·R⁺``, ``x⁻ = x·(1 − R⁺)``, no trust Ψ."""
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    t = (p[:, :, None, None] * cams).sum(1, keepdims=True)
    up = F.interpolate(torch.from_numpy(t), size=x.shape[-2:], mode="bilinear", align_corners=False).numpy()
    lo, hi = up.min(axis=(1, 2, 3), keepdims=True), up.max(axis=(1, 2, 3), keepdims=True)
    r = 1 / (1 + np.exp(-omega * ((up - lo) / (hi - lo) - sp)))
    return x * r, x * (1 - r)


class _Recorder(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner, self.inputs = inner, []

    def forward(self, x):
        self.inputs.append(x.detach().double())
        return self.inner(x)


@pytest.mark.parametrize("passes", [1, 0])
def test_one_pass_and_the_authors_no_erasing_path(passes):
    torch.manual_seed(0)
    m = _eval_bn(maxmin_method(2, backbone=_bb(), head="gap", passes=passes, share_backbone=False))
    m.classifier = _Recorder(m.classifier)
    x, y = torch.randn(3, 3, 32, 32), torch.tensor([0, 1, 1])
    with torch.no_grad():
        loc = m.localizer(x)
    _loop(m, x, y)
    x_pos, x_neg = m.classifier.inputs
    ref_pos, ref_neg = ref_authors_u0(x.double().numpy(), loc.cams.double().numpy(), loc.logits.double().numpy())
    p_true = loc.logits.double().softmax(1)[torch.arange(3), y].numpy()
    right = (loc.logits.argmax(1) == y).numpy()
    if passes == 1:  # eq. 13 at t = 0: R⁺* = Ψ(0)·R⁺, Ψ(0, i) = p̂ˢ(y_i|x_i) when M is right, else 0
        psi = np.where(right, p_true, 0.0)[:, None, None, None]
        np.testing.assert_allclose(x_pos.numpy(), psi * ref_pos, rtol=1e-4, atol=1e-4)  # float32 vs float64
        assert not np.allclose(x_pos.numpy(), ref_pos, atol=1e-3)  # the difference passes=0 removes
    else:
        np.testing.assert_allclose(x_pos.numpy(), ref_pos, rtol=1e-4, atol=1e-4)  # float32 vs float64
        np.testing.assert_allclose(x_neg.numpy(), ref_neg, rtol=1e-4, atol=1e-4)
