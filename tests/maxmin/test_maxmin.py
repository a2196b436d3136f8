"""MaxMin: mask, losses, trust, recursive erasing, train step — against float64 references written here."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError
from wsolkit.backbones import create_backbone
from wsolkit.heads import GAP
from wsolkit.losses import ELB
from wsolkit.maxmin import (
    MaxMin,
    MaxMinMask,
    accumulate_mask,
    localizer_ce,
    maxmin_loss,
    maxmin_mask,
    maxmin_method,
    negative_uniform_ce,
    positive_ce,
    size_prior,
    trust_coefficients,
)
from wsolkit.models import WSOLModel
from wsolkit.output import WSOLOutput


def train(model, x, y, scaler=None):
    """The protocol's loop for one batch; returns the summed terms, ``loss`` and ``steps`` (yielded steps)."""
    logs, n, total = {}, 0, 0.0
    for step in model.training_steps(x, y):
        assert step.total.ndim == 0 and all(not v.requires_grad for v in step.terms.values())
        (scaler.scale(step.total) if scaler is not None else step.total).backward()
        total += float(step.total.detach())
        for k, v in step.terms.items():
            logs[k] = logs.get(k, 0.0) + float(v)
        n += 1
    logs["loss"], logs["steps"] = total, n
    return logs


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one intra-op thread is faster and immune to oversubscription on a shared machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ---------------------------------------------------------------- float64 references


def ref_softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def ref_mask(cams: np.ndarray, logits: np.ndarray, size: tuple[int, int], omega=8.0, sp=0.5) -> np.ndarray:
    """eqs. 10-11 in float64, min-max per sample; returns (B, H, W)."""
    p = ref_softmax(logits)
    t = (p[:, :, None, None] * cams).sum(1)  # eq. 10
    up = F.interpolate(torch.from_numpy(t)[:, None], size=size, mode="bilinear", align_corners=False)[:, 0].numpy()
    out = np.empty_like(up)
    for i in range(up.shape[0]):
        lo, hi = up[i].min(), up[i].max()
        out[i] = (up[i] - lo) / (hi - lo) if hi > lo else 0.0
    return 1.0 / (1.0 + np.exp(-omega * (out - sp)))  # eq. 11


def ref_ce(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    return -np.log(ref_softmax(logits)[np.arange(len(y)), y])


def ref_elb(z: np.ndarray, t: float) -> np.ndarray:
    return np.where(z <= -1 / t**2, -np.log(-np.minimum(z, -1 / t**2)) / t, t * z - np.log(1 / t**2) / t + 1 / t)


# ---------------------------------------------------------------- mask (eqs. 10-11)


def test_mask_matches_float64_reference():
    cams = torch.randn(3, 4, 5, 6)
    logits = torch.randn(3, 4)
    got = maxmin_mask(cams, logits, size=(20, 24), omega=8.0, sigma_prime=0.5)
    assert got.shape == (3, 1, 20, 24)
    ref = ref_mask(cams.double().numpy(), logits.double().numpy(), (20, 24))
    np.testing.assert_allclose(got[:, 0].double().numpy(), ref, atol=1e-5)
    # module == function, other omega / sigma'
    m = MaxMinMask(omega=3.0, sigma_prime=0.2)
    np.testing.assert_allclose(
        m(cams, logits, (20, 24))[:, 0].double().numpy(),
        ref_mask(cams.double().numpy(), logits.double().numpy(), (20, 24), 3.0, 0.2),
        atol=1e-5,
    )
    assert "omega=3.0" in repr(m)


def ref_authors_mask(cams: np.ndarray, logits: np.ndarray, size, omega=8.0, sp=0.5, align_corners=True):
    """float64 re-implementation of the authors' mask (sbelharbi/wsol-min-max-entropy-interpretability,
    ``deepmil/models.py``: ``ResNet.segment`` builds ``Σ_k p_k·maps_k`` upsampled with ``align_corners=True``;
    ``ResNet.get_pseudo_binary_mask`` min-max normalises over the **whole batch**, then ``sigmoid(w(x − σ))``)."""
    p = ref_softmax(logits)
    t = (p[:, :, None, None] * cams).sum(1)
    up = F.interpolate(torch.from_numpy(t)[:, None], size=size, mode="bilinear", align_corners=align_corners)
    up = up[:, 0].numpy()
    x = (up - up.min()) / (up.max() - up.min())
    return 1.0 / (1.0 + np.exp(-omega * (x - sp)))


def test_mask_is_normalised_per_sample_not_per_batch():
    g = torch.Generator().manual_seed(3)
    cams = torch.randn(2, 2, 4, 4, generator=g, dtype=torch.float64)
    logits = torch.randn(2, 2, generator=g, dtype=torch.float64)
    a = maxmin_mask(cams, logits, 8)
    scaled = cams.clone()
    scaled[1] = scaled[1] * 100 + 50  # another sample's range must not matter
    b = maxmin_mask(scaled, logits, 8)
    torch.testing.assert_close(a[0], b[0])
    np.testing.assert_allclose(b[:, 0].numpy(), ref_mask(scaled.numpy(), logits.numpy(), (8, 8)), atol=1e-12)
    # the reference normalises over the batch: sample 0's mask changes with sample 1 (the difference we keep)
    ref = ref_authors_mask(scaled.numpy(), logits.numpy(), (8, 8), align_corners=False)
    assert np.abs(ref[0] - b[0, 0].numpy()).max() > 0.1
    # ... and the two agree on a batch of one image (same upsampling)
    one = ref_authors_mask(cams[:1].numpy(), logits[:1].numpy(), (8, 8), align_corners=False)
    np.testing.assert_allclose(maxmin_mask(cams[:1], logits[:1], 8)[:, 0].numpy(), one, atol=1e-12)


def test_mask_gradients_and_constant_map():
    cams = torch.randn(2, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    logits = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda c, z: maxmin_mask(c, z, (5, 5)), (cams, logits))
    # constant T -> normalised zeros -> sigmoid(-omega * sigma')
    r = maxmin_mask(torch.ones(1, 2, 3, 3), torch.zeros(1, 2), 3)
    torch.testing.assert_close(r, torch.full_like(r, 1 / (1 + math.exp(4.0))))


def test_mask_errors():
    with pytest.raises(ShapeError, match="logits"):
        maxmin_mask(torch.randn(2, 3, 4, 4), torch.randn(2, 4), 8)
    with pytest.raises(ShapeError, match="cams"):
        maxmin_mask(torch.randn(3, 4, 4), torch.randn(3, 4), 8)
    with pytest.raises(WSOLValueError, match="omega"):
        maxmin_mask(torch.randn(2, 3, 4, 4), torch.randn(2, 3), 8, omega=0.0)
    with pytest.raises(WSOLValueError, match="omega"):
        MaxMinMask(omega=-1.0)


# ---------------------------------------------------------------- losses (eqs. 3, 6, 8, 9) and size priors


def test_losses_match_float64_reference():
    z_pos, z_neg, z_loc = torch.randn(5, 4), torch.randn(5, 4), torch.randn(5, 4)
    y = torch.tensor([0, 3, 1, 2, 3])
    yn = y.numpy()
    ce_pos = ref_ce(z_pos.double().numpy(), yn)
    ce_loc = ref_ce(z_loc.double().numpy(), yn)
    p_neg = ref_softmax(z_neg.double().numpy())
    unif = -(0.25 * np.log(p_neg)).sum(1)  # eq. 6 with q = 1/c
    np.testing.assert_allclose(positive_ce(z_pos, y, reduction="none").numpy(), ce_pos, rtol=1e-5)
    np.testing.assert_allclose(localizer_ce(z_loc, y, reduction="none").numpy(), ce_loc, rtol=1e-5)
    np.testing.assert_allclose(negative_uniform_ce(z_neg, reduction="none").numpy(), unif, rtol=1e-5)
    np.testing.assert_allclose(float(negative_uniform_ce(z_neg, reduction="sum")), unif.sum(), rtol=1e-5)
    total = maxmin_loss(z_pos, z_neg, z_loc, y, weights=(0.5, 2.0, 3.0))
    np.testing.assert_allclose(float(total), 0.5 * ce_pos.mean() + 2 * unif.mean() + 3 * ce_loc.mean(), rtol=1e-5)
    # eq. 6 is minimal (log c) at the uniform prediction
    assert float(negative_uniform_ce(torch.zeros(1, 4))) == pytest.approx(math.log(4), abs=1e-6)
    assert float(negative_uniform_ce(torch.tensor([[1.0, 0, 0, 0]]))) > math.log(4)


def test_size_prior_matches_elb_reference():
    mask = torch.rand(3, 1, 4, 5)
    barrier = ELB(t0=2.0)
    m = mask.double().numpy().reshape(3, -1)
    ref = (ref_elb(-m.sum(1), 2.0) + ref_elb(-(1 - m).sum(1), 2.0)).mean()
    np.testing.assert_allclose(float(size_prior(mask, barrier)), ref, rtol=1e-5)
    # an empty mask violates the first constraint: larger penalty than a half mask
    empty = torch.zeros(1, 1, 4, 4)
    assert float(size_prior(empty, barrier)) > float(size_prior(torch.full_like(empty, 0.5), barrier))


def test_loss_errors():
    with pytest.raises(WSOLValueError, match="labels"):
        positive_ce(torch.randn(2, 3), torch.tensor([0, 3]))
    with pytest.raises(WSOLValueError, match="labels"):
        localizer_ce(torch.randn(2, 3), torch.tensor([-1, 0]))
    with pytest.raises(ShapeError, match="logits_neg"):
        maxmin_loss(torch.randn(2, 3), torch.randn(2, 4), torch.randn(2, 3), torch.tensor([0, 1]))
    with pytest.raises(WSOLValueError, match="reduction"):
        negative_uniform_ce(torch.randn(2, 3), reduction="max")


# ---------------------------------------------------------------- trust (eqs. 12-14)


def _logit(a: float, y: int, c: int = 3) -> list[float]:
    z = [0.0] * c
    z[y] = a
    return z


def test_trust_hand_made_batch():
    y = torch.tensor([0, 1, 2, 0])
    z0 = torch.tensor([_logit(2.0, 0), _logit(2.0, 1), _logit(2.0, 2), [0.0, 3.0, 0.0]])
    psi0, alive0 = trust_coefficients(z0, y, t=0, sigma=10.0)
    p2 = math.exp(2) / (math.exp(2) + 2)
    torch.testing.assert_close(psi0, torch.tensor([p2, p2, p2, 0.0]))  # t=0: exp(0)=1, loss <= itself
    assert alive0.tolist() == [True, True, True, False]
    loss0 = F.cross_entropy(z0, y, reduction="none")
    # t=3: s0 more confident (trusted), s1 correct but higher loss (0), s2 misclassified (0), s3 dead stays 0
    z3 = torch.tensor([_logit(3.0, 0), _logit(1.0, 1), [2.0, 0.0, 1.0], _logit(5.0, 0)])
    psi3, alive3 = trust_coefficients(z3, y, t=3, sigma=10.0, loss0=loss0, alive=alive0)
    p3 = math.exp(3) / (math.exp(3) + 2)
    torch.testing.assert_close(psi3, torch.tensor([math.exp(-0.3) * p3, 0.0, 0.0, 0.0]))
    # the authors' history drops only a wrong label (s2, and s3 earlier); Alg. 1's reading every zero trust (s1)
    assert alive3.tolist() == [True, True, False, False]
    psi3t, alive3t = trust_coefficients(z3, y, t=3, sigma=10.0, loss0=loss0, alive=alive0, history="trust")
    torch.testing.assert_close(psi3t, psi3)
    assert alive3t.tolist() == [True, False, False, False]
    # equal loss is trusted (<=); decay exp(-t / sigma) with another sigma
    psi, _ = trust_coefficients(z0[:1], y[:1], t=2, sigma=0.5, loss0=loss0[:1])
    assert float(psi) == pytest.approx(math.exp(-4.0) * p2, rel=1e-6)


def test_accumulate_mask_and_trust_errors():
    acc = torch.tensor([[[[0.3, 0.9]]], [[[0.2, 0.0]]]])
    r = torch.tensor([[[[1.0, 0.5]]], [[[1.0, 1.0]]]])
    got = accumulate_mask(acc, r, torch.tensor([0.5, 0.8]))
    torch.testing.assert_close(got, torch.tensor([[[[0.5, 0.9]]], [[[0.8, 0.8]]]]))
    with pytest.raises(ShapeError):
        accumulate_mask(acc, r[:, :, :, :1], torch.ones(2))
    with pytest.raises(WSOLValueError, match="sigma"):
        trust_coefficients(torch.randn(2, 3), torch.tensor([0, 1]), t=1, sigma=0.0)
    with pytest.raises(WSOLValueError, match="t"):
        trust_coefficients(torch.randn(2, 3), torch.tensor([0, 1]), t=-1)
    with pytest.raises(WSOLValueError, match="labels"):
        trust_coefficients(torch.randn(2, 3), torch.tensor([0, 5]), t=0)
    with pytest.raises(WSOLValueError, match="history"):
        trust_coefficients(torch.randn(2, 3), torch.tensor([0, 1]), t=0, history="loss")


# ---------------------------------------------------------------- recursive erasing with scripted models


class ScriptedLocalizer(nn.Module):
    """Returns scripted logits (+ a learnable bias) and cams at each call; records its inputs."""

    def __init__(self, logits_seq, cams_seq, rows=None):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(logits_seq[0].shape[1]))
        self.logits_seq, self.cams_seq, self.inputs = logits_seq, cams_seq, []
        self.rows = rows  # samples expected at each step (only the trusted ones are forwarded)

    def forward(self, x):
        t = len(self.inputs) % len(self.logits_seq)
        self.inputs.append(x.detach().clone())
        rows = self.rows[t] if self.rows is not None else list(range(len(x)))
        assert len(rows) == len(x)
        return WSOLOutput(self.logits_seq[t][rows] + self.bias, self.cams_seq[t][rows], {})


class RecordingClassifier(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.w = nn.Parameter(torch.linspace(-1, 1, c))
        self.inputs = []

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        s = x.mean(dim=(1, 2, 3))
        return WSOLOutput(s[:, None] * self.w, torch.zeros(x.shape[0], len(self.w), 2, 2), {})


def _script():
    """4 samples, 3 classes, 4 passes: s0 trusted throughout; s1 misclassified at t=0; s2 loses trust at t=1
    (higher loss) and would regain it at t=2 (the authors' loop trusts it again, Alg. 1's reading does not); s3
    misclassified at t=2 and right again at t=3 (removed for good in both)."""
    a = {0: (1.0, 2.0, 3.0, 4.0), 2: (2.0, 1.0, 3.0, 3.0), 3: (1.0, 1.5, None, 2.0)}
    y = torch.tensor([0, 1, 2, 0])
    seq = []
    for t in range(4):
        z = torch.zeros(4, 3)
        z[0] = torch.tensor(_logit(a[0][t], 0))
        z[1] = torch.tensor([2.0, 0.0, 0.0])
        z[2] = torch.tensor(_logit(a[2][t], 2))
        z[3] = torch.tensor([-1.0, 0.0, 0.0]) if a[3][t] is None else torch.tensor(_logit(a[3][t], 0))
        seq.append(z)
    g = torch.Generator().manual_seed(1)
    cams = [torch.randn(4, 3, 3, 3, generator=g) for _ in range(4)]
    return y, seq, cams


def _reference_authors(x, y, seq, cams, n, sigma):
    """The authors' ``deepmil/train.py`` loop (``nbr_times_erase = n``) in float64: localizer inputs, final
    ``m_pos``, the bias gradient of each pass (``l_c_s_tmp.mean().backward()``) and the trusts."""
    x = x.double().numpy()
    yn = y.numpy()
    b, size = x.shape[0], x.shape[-2:]
    data, history, loss0, m_pos = x.copy(), np.ones(b), None, np.zeros((b, 1, *size))
    inputs, grads, trusts = [], [], []
    for er in range(n):
        if history.sum() <= 0:
            break
        z = seq[er].double().numpy()
        inputs.append(data.copy())
        probs = ref_softmax(z)
        ce = -np.log(probs[np.arange(b), yn])
        grads.append((probs - np.eye(z.shape[1])[yn]).mean(0))  # d/d bias of the mean over every sample
        if er == 0:
            loss0 = ce.copy()
        p_y, pred = probs.max(1), probs.argmax(1)
        check_label = (pred == yn).astype(float)
        trust = math.exp(-er / sigma) * check_label * (ce <= loss0) * p_y
        history = np.minimum(check_label, history)
        trust = trust * history
        trusts.append(trust)
        mask = ref_mask(cams[er].double().numpy(), z, tuple(size))[:, None]
        m_pos = np.maximum(m_pos, trust[:, None, None, None] * mask)
        tr = trust[:, None, None, None]
        data = data * (1 - m_pos) * (tr != 0) + data * (tr == 0)
    return inputs, m_pos, grads, trusts


def _steps_with_grads(model, x, y, param):
    """Iterate the protocol; the gradient of ``param`` from each yielded step alone."""
    grads, terms = [], []
    for step in model.training_steps(x, y):
        param.grad = None
        step.total.backward()
        grads.append(None if param.grad is None else param.grad.double().numpy().copy())
        terms.append({k: float(v) for k, v in step.terms.items()})
    return grads, terms


def test_recursive_erasing_matches_the_authors_loop():
    y, seq, cams = _script()
    x = torch.rand(4, 3, 6, 6) + 0.5
    inputs, m_pos, grads, trusts = _reference_authors(x, y, seq, cams, n=4, sigma=10.0)
    # the script exercises what sets the authors' loop apart: s2 trusted again at t=2 after a zero at t=1
    assert [bool(tr[2] > 0) for tr in trusts] == [True, False, True, True]
    assert [bool(tr[3] > 0) for tr in trusts] == [True, True, False, False]
    loc, cls = ScriptedLocalizer(seq, cams), RecordingClassifier(3)
    model = MaxMin(loc, cls, passes=4, sigma=10.0)
    got_grads, terms = _steps_with_grads(model, x, y, loc.bias)
    assert len(loc.inputs) == len(inputs) == 4 and len(got_grads) == 5  # 4 passes (nbr_times_erase) + C's step
    for got, ref in zip(loc.inputs, inputs, strict=True):  # whole batch at every pass
        np.testing.assert_allclose(got.double().numpy(), ref, atol=1e-5)
    x_pos, x_neg = cls.inputs
    xd = x.double().numpy()
    for i in range(4):  # per-sample x_pos = x ⊙ m_pos
        np.testing.assert_allclose(x_pos[i].double().numpy(), xd[i] * m_pos[i], atol=1e-5)
    np.testing.assert_allclose(x_neg.double().numpy(), xd * (1 - m_pos), atol=1e-5)
    for t in range(4):  # bias gradient of each pass, erasing passes included: mean CE over every sample
        np.testing.assert_allclose(got_grads[t], grads[t], atol=1e-6)
    assert got_grads[4] is None or np.abs(got_grads[4]).sum() == 0.0  # the mask is detached from C's losses
    yn = y.numpy()
    np.testing.assert_allclose(terms[1]["loc_erasing"], ref_ce(seq[1].double().numpy(), yn).mean(), rtol=1e-5)
    # Alg. 1's reading differs on this script (s2's mask of t=2, the gradients of the erasing passes)
    loc_a, cls_a = ScriptedLocalizer(seq, cams, [[0, 1, 2, 3], [0, 2, 3], [0, 3], [0]]), RecordingClassifier(3)
    grads_a, _ = _steps_with_grads(MaxMin(loc_a, cls_a, passes=4, erasing="algorithm1"), x, y, loc_a.bias)
    assert np.abs(cls_a.inputs[0][2].double().numpy() - x_pos[2].double().numpy()).max() > 1e-3
    assert np.abs(grads_a[1] - grads[1]).max() > 1e-2


def test_passes_zero_is_the_authors_no_erasing_path_and_u_is_deprecated():
    y, seq, cams = _script()
    x = torch.rand(4, 3, 6, 6) + 0.5
    loc, cls = ScriptedLocalizer(seq, cams), RecordingClassifier(3)
    train(MaxMin(loc, cls, passes=0), x, y)
    r = ref_mask(cams[0].double().numpy(), seq[0].double().numpy(), (6, 6))[:, None]
    assert len(loc.inputs) == 1
    np.testing.assert_allclose(cls.inputs[0].double().numpy(), x.double().numpy() * r, atol=1e-5)  # no Ψ
    with pytest.warns(DeprecationWarning, match="passes"):
        old = MaxMin(ScriptedLocalizer(seq, cams), RecordingClassifier(3), u=3)
    assert old.passes == 4  # the old u counted the erasing steps after the first pass
    with pytest.warns(DeprecationWarning):
        assert MaxMin(ScriptedLocalizer(seq, cams), RecordingClassifier(3), u=0, trust_at_zero=False).passes == 0
    with pytest.warns(DeprecationWarning):
        assert MaxMin(ScriptedLocalizer(seq, cams), RecordingClassifier(3), u=0).passes == 1
    with pytest.raises(WSOLValueError, match="passes"):
        MaxMin(ScriptedLocalizer(seq, cams), RecordingClassifier(3), passes=2, u=1)
    with pytest.raises(WSOLValueError, match="erasing"):
        MaxMin(ScriptedLocalizer(seq, cams), RecordingClassifier(3), erasing="alg1")


def _reference_erasing(x, y, seq, cams, u, sigma):
    """Alg. 1's reading in float64 (``u + 1`` passes): localizer inputs, final R+*, bias gradient of eq. 8, trusts."""
    x = x.double().numpy()
    yn = y.numpy()
    b, size = x.shape[0], x.shape[-2:]
    acc = np.zeros((b, 1, *size))
    xs, alive, loss0 = x.copy(), np.ones(b, bool), None
    inputs, grad, psis, rows = [], np.zeros(seq[0].shape[1]), [], []
    for t in range(u + 1):
        z = seq[t].double().numpy()
        inputs.append(xs.copy())
        rows.append(np.flatnonzero(alive).tolist())
        p = ref_softmax(z)
        ce = -np.log(p[np.arange(b), yn])
        if t == 0:
            loss0 = ce
        ok = alive & (z.argmax(1) == yn) & (ce <= loss0)
        psi = math.exp(-t / sigma) * np.where(ok, p[np.arange(b), yn], 0.0)
        alive = ok
        psis.append(psi)
        weight = np.ones(b) if t == 0 else (psi > 0).astype(float)
        onehot = np.eye(z.shape[1])[yn]
        grad += (weight[:, None] * (p - onehot)).sum(0) / b  # d/d bias of mean-normalised eq. 8
        r = ref_mask(cams[t].double().numpy(), z, tuple(size))[:, None]
        acc = np.maximum(acc, psi[:, None, None, None] * r)
        if not alive.any():
            break
        xs = xs * (1 - acc)
    return inputs, acc, grad, psis, rows


def test_algorithm1_option_matches_algorithm_1():
    y, seq, cams = _script()
    x = torch.rand(4, 3, 6, 6) + 0.5
    inputs, acc, grad, psis, rows = _reference_erasing(x, y, seq, cams, u=3, sigma=10.0)
    assert rows == [[0, 1, 2, 3], [0, 2, 3], [0, 3], [0]]  # s1 dies at t=0, s2 at t=1, s3 at t=2
    loc, cls = ScriptedLocalizer(seq, cams, rows), RecordingClassifier(3)
    model = MaxMin(loc, cls, passes=4, sigma=10.0, erasing="algorithm1")
    logs = train(model, x, y)
    # trust pattern of the script: per-sample stop and zero trust persists
    assert [bool(p[0] > 0) for p in psis] == [True] * 4
    assert [bool(p[1] > 0) for p in psis] == [False] * 4
    assert [bool(p[2] > 0) for p in psis] == [True, False, False, False]
    assert [bool(p[3] > 0) for p in psis] == [True, True, False, False]
    assert len(loc.inputs) == len(inputs) == 4 and logs["steps"] == 5  # 4 localizer steps + the final one
    for got, ref, r in zip(loc.inputs, inputs, rows, strict=True):  # x* <- x* ⊙ R-*, trusted samples only
        np.testing.assert_allclose(got.double().numpy(), ref[r], atol=1e-5)
    x_pos, x_neg = cls.inputs
    np.testing.assert_allclose(x_pos.double().numpy(), x.double().numpy() * acc, atol=1e-5)
    np.testing.assert_allclose(x_neg.double().numpy(), x.double().numpy() * (1 - acc), atol=1e-5)
    np.testing.assert_allclose(loc.bias.grad.double().numpy(), grad, atol=1e-6)  # gated eq. 8 accumulation
    # the logged losses
    yn = y.numpy()
    np.testing.assert_allclose(float(logs["loc"]), ref_ce(seq[0].double().numpy(), yn).mean(), rtol=1e-5)


def test_erasing_stops_early_when_all_trusts_are_zero():
    y = torch.tensor([0, 1])
    ok = torch.tensor([[3.0, 0.0], [0.0, 3.0]])
    bad = torch.tensor([[0.0, 3.0], [3.0, 0.0]])  # every sample misclassified at t=1
    cams = [torch.randn(2, 2, 2, 2) for _ in range(5)]
    loc = ScriptedLocalizer([ok, bad, ok, ok, ok], cams)
    for erasing in ("authors", "algorithm1"):
        loc = ScriptedLocalizer([ok, bad, ok, ok, ok], cams)
        logs = train(MaxMin(loc, RecordingClassifier(2), passes=5, erasing=erasing), torch.rand(2, 3, 4, 4), y)
        assert len(loc.inputs) == 2 and logs["steps"] == 3
        # the authors' loop averages the cross-entropy of every sample; Alg. 1's reading only of trusted ones
        expected = ref_ce(bad.double().numpy(), y.numpy()).mean() if erasing == "authors" else 0.0
        assert float(logs["loc_erasing"]) == pytest.approx(expected, rel=1e-6)
    # passes = 1: a single localizer forward, no erasing
    loc0 = ScriptedLocalizer([ok], cams)
    MaxMin(loc0, RecordingClassifier(2), passes=1).train_step(torch.rand(2, 3, 4, 4), y)
    assert len(loc0.inputs) == 1


# ---------------------------------------------------------------- real model: train step, inference, memory


def _small(passes=5, width=4, **kw):
    torch.manual_seed(0)
    return maxmin_method(2, backbone=create_backbone("smallcnn", output_stride=8, width=width), head="gap",
                         passes=passes, **kw)


def test_inference_output_contract():
    model = _small().eval()
    x = torch.randn(3, 3, 32, 40)
    out = model(x)
    assert isinstance(out, WSOLOutput) and out.logits.shape == (3, 2) and out.cams.shape == (3, 2, 4, 5)
    loc = model.localizer(x)
    r = maxmin_mask(loc.cams, loc.logits, (32, 40))
    torch.testing.assert_close(out.aux["mask"], r[:, 0])
    with model.classifier_statistics():
        torch.testing.assert_close(out.logits, model.classifier(x * r).logits)
    torch.testing.assert_close(out.aux["localizer_logits"], loc.logits)
    assert out.aux["mask"].min() >= 0 and out.aux["mask"].max() <= 1


def test_train_step_accumulates_gradients_and_detach_mask():
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 1, 0])
    # classifier terms only: with the paper's detached mask no gradient reaches the localizer head
    m = _small(passes=2, weights=(1.0, 1.0, 0.0), share_backbone=False)
    train(m, x, y)
    g = m.localizer.head.classifier.weight.grad
    assert g is None or float(g.abs().sum()) == 0.0
    assert float(m.classifier.head.classifier.weight.grad.abs().sum()) > 0
    m2 = _small(passes=2, weights=(1.0, 1.0, 0.0), share_backbone=False, detach_mask=False)
    train(m2, x, y)
    assert float(m2.localizer.head.classifier.weight.grad.abs().sum()) > 0
    # gradients accumulate across calls (the user zeroes them)
    m3 = _small(passes=1)
    for mod in m3.modules():  # no batch-norm statistics drift between the two calls
        if isinstance(mod, nn.BatchNorm2d):
            mod.eval()
    train(m3, x, y)
    g1 = [p.grad.clone() for p in m3.parameters()]
    train(m3, x, y)
    for a, p in zip(g1, m3.parameters(), strict=True):
        torch.testing.assert_close(p.grad, 2 * a)


def test_train_step_one_pass_equals_eq9_gradient():
    """passes = 1: the accumulated gradient equals that of eq. 9 with R+* = Ψ(0)·R+ (autograd on the closed form)."""
    m = _small(passes=1)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.eval()
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 1, 0])
    ref = copy.deepcopy(m)
    logs = train(m, x, y)
    loc = ref.localizer(x)
    psi, _ = trust_coefficients(loc.logits, y, 0)
    r = psi[:, None, None, None] * maxmin_mask(loc.cams.detach(), loc.logits.detach(), (32, 32))
    loss = maxmin_loss(ref.classifier(x * r).logits, ref.classifier(x * (1 - r)).logits, loc.logits, y)
    loss.backward()
    assert float(logs["loss"]) == pytest.approx(float(loss.detach()), rel=1e-5)
    for a, b in zip(m.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6)


class _SavedTensorTracker:
    """Counts the bytes of tensors saved for backward that are still alive (freed graphs release them)."""

    def __init__(self):
        self.live = 0
        self.peak = 0

    def pack(self, t):
        tracker = self

        class Holder:
            def __init__(self, t):
                self.t, self.n = t, t.numel() * t.element_size()
                tracker.live += self.n
                tracker.peak = max(tracker.peak, tracker.live)

            def __del__(self):
                tracker.live -= self.n

        return Holder(t)

    @staticmethod
    def unpack(h):
        return h.t


def _confident(model):
    """Make the localizer always right with loss exactly 0 so that no trust drops and all u steps run."""
    with torch.no_grad():
        model.localizer.head.bias.copy_(torch.tensor([100.0, -100.0]))
    return model


def test_graph_of_each_step_is_freed_memory_flat_in_passes():
    x, y = torch.randn(4, 3, 32, 32), torch.zeros(4, dtype=torch.long)
    peaks = {}
    for n in (1, 5):
        model = _confident(_small(passes=n, share_backbone=False))
        tr = _SavedTensorTracker()
        at_start = []
        model.localizer.register_forward_pre_hook(lambda *_, a=at_start, tr=tr: a.append(tr.live))
        with torch.autograd.graph.saved_tensors_hooks(tr.pack, tr.unpack):
            logs = train(model, x, y)
        assert logs["steps"] == n + 1  # n localizer passes and the final step
        assert at_start == [0] * n  # nothing of pass t is alive when pass t+1 starts
        assert tr.live == 0
        peaks[n] = tr.peak
    assert peaks[5] == peaks[1]


def test_grad_scaler_scales_every_backward():
    x, y = torch.randn(4, 3, 32, 32), torch.zeros(4, dtype=torch.long)
    a = _confident(_small(passes=3))
    for mod in a.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.eval()
    b = copy.deepcopy(a)
    train(a, x, y)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    train(b, x, y, scaler=scaler)
    opt = torch.optim.SGD(b.parameters(), lr=0.1)
    scaler.unscale_(opt)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        if pa.grad is not None:
            torch.testing.assert_close(pb.grad, pa.grad, rtol=1e-4, atol=1e-7)
    scaler.step(opt)
    scaler.update()
    # bf16 autocast on CPU runs too
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logs = train(_small(passes=2), x, y)
    assert all(math.isfinite(v) for v in logs.values())


def test_size_prior_variant_value_and_gradient_against_float64():
    """TMI variant (``detach_mask=False``): the size term is the ELB of ``−ΣR⁺*``, ``−ΣR⁻*`` and its gradient
    reaches the localizer through the mask of pass 0 (float64 autograd on the closed form of eqs. 10-13)."""
    y, seq, cams = _script()
    x = torch.rand(4, 3, 6, 6) + 0.5
    grads = {}
    for w in (0.0, 0.1):
        loc = ScriptedLocalizer(seq[:1], cams[:1])
        logs = train(MaxMin(loc, RecordingClassifier(3), passes=1, detach_mask=False, size_prior=ELB(t0=1.0),
                            size_weight=w), x, y)
        grads[w] = loc.bias.grad.double().clone()
    bias = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    z = seq[0].double() + bias
    tmap = (torch.softmax(z, 1)[:, :, None, None] * cams[0].double()).sum(1, keepdim=True)  # eq. 10
    up = F.interpolate(tmap, size=(6, 6), mode="bilinear", align_corners=False)
    lo, hi = up.amin((1, 2, 3), keepdim=True), up.amax((1, 2, 3), keepdim=True)
    r = torch.sigmoid(8.0 * ((up - lo) / (hi - lo) - 0.5))  # eq. 11
    psi = torch.from_numpy(_reference_authors(x, y, seq, cams, n=1, sigma=10.0)[3][0])  # Ψ(0), constant
    acc = psi[:, None, None, None] * r
    pos, neg = acc.flatten(1).sum(1), (1 - acc).flatten(1).sum(1)
    t = 1.0
    def elb(v):
        return torch.where(v <= -1 / t**2, -torch.log(-torch.clamp(v, max=-1 / t**2)) / t,
                           t * v - math.log(1 / t**2) / t + 1 / t)
    size = 0.1 * (elb(-pos) + elb(-neg)).mean()
    size.backward()
    assert logs["size"] == pytest.approx(float(size.detach()), rel=1e-5)
    assert float(bias.grad.abs().max()) > 1e-3  # the script gives the size term a gradient to check
    torch.testing.assert_close(grads[0.1] - grads[0.0], bias.grad, rtol=1e-4, atol=1e-7)
    with pytest.raises(WSOLValueError, match="detach_mask"):
        _small(size_prior=ELB())


# ---------------------------------------------------------------- typed errors


def test_typed_errors():
    with pytest.raises(WSOLValueError, match="`passes`"):
        _small(passes=-1)
    with pytest.raises(WSOLTypeError, match="`passes`"):
        _small(passes=2.5)
    with pytest.raises(WSOLValueError, match="sigma"):
        _small(sigma=0.0)
    with pytest.raises(WSOLValueError, match="omega"):
        _small(omega=-2.0)
    m = _small(passes=2)
    with pytest.raises(WSOLValueError, match="labels"):
        train(m, torch.randn(2, 3, 32, 32), torch.tensor([0, 2]))
    with pytest.raises(ShapeError, match="labels"):
        train(m, torch.randn(2, 3, 32, 32), torch.tensor([0, 1, 1]))
    with pytest.raises(ShapeError, match=r"\(B, 3, H, W\)"):
        train(m, torch.randn(3, 32, 32), torch.tensor([0, 1, 1]))
    # mismatched backbone widths
    bb8 = create_backbone("smallcnn", output_stride=8, width=8)
    bb4 = create_backbone("smallcnn", output_stride=8, width=4)
    with pytest.raises(ShapeError, match="channels"):
        MaxMin(WSOLModel(bb8, GAP(bb8.out_channels, 2)), WSOLModel(bb4, GAP(bb8.out_channels, 2)))
    with pytest.raises(ShapeError, match="classifier"):
        MaxMin(WSOLModel(bb8, GAP(bb8.out_channels, 2)), WSOLModel(bb4, GAP(bb8.out_channels, 2)))
    with pytest.raises(WSOLTypeError, match="localizer"):
        MaxMin("resnet", nn.Identity())
    with pytest.raises(WSOLValueError, match="classifier_backbone"):
        maxmin_method(2, backbone=bb8, head="gap", share_backbone=True, classifier_backbone=bb4)
    # separate backbones of different widths build heads of the right width each
    m2 = maxmin_method(2, backbone=bb8, head="gap", share_backbone=False, classifier_backbone=bb4)
    assert m2.classifier.head.in_channels == bb4.out_channels
    with pytest.raises(WSOLValueError, match="_pass"):
        m(torch.randn(1, 3, 32, 32), _pass="decoder")
    with pytest.raises(WSOLTypeError, match="trust_at_zero"):
        _small(passes=None, trust_at_zero=1)


def test_shared_backbone_and_repr():
    m = _small(passes=3)
    assert m.localizer.backbone is m.classifier.backbone
    n_shared = sum(p.numel() for p in m.parameters())
    sep = _small(passes=3, share_backbone=False)
    assert sum(p.numel() for p in sep.parameters()) > n_shared
    assert "passes=3" in repr(m) and "erasing='authors'" in repr(m) and "sigma=10.0" in repr(m)


def test_default_heads_are_the_papers_wildcat():
    from wsolkit.heads import list_heads

    if "wildcat" not in list_heads():
        pytest.skip("WILDCAT head not available")
    from wsolkit.maxmin import WILDCAT_DEFAULTS

    m = maxmin_method(3, backbone=create_backbone("smallcnn", output_stride=8, width=4))
    for head in (m.localizer.head, m.classifier.head):
        assert type(head).__name__ == "WILDCAT"
        assert (head.modalities, head.kmax, head.kmin, head.alpha, head.dropout) == (5, 0.09, 0.09, 0.0, 0.75)
    assert WILDCAT_DEFAULTS["modalities"] == 5
    logs = train(m, torch.randn(2, 3, 32, 32), torch.tensor([0, 2]))
    assert math.isfinite(logs["loss"])
    assert m.eval()(torch.randn(2, 3, 32, 32)).cams.shape == (2, 3, 4, 4)


def test_batchnorm_statistics_come_from_the_inference_passes_only():
    x, y = torch.randn(4, 3, 32, 32), torch.zeros(4, dtype=torch.long)
    model = _confident(_small(passes=4, share_backbone=False))
    ref = copy.deepcopy(model)
    logs = train(model, x, y)
    assert logs["steps"] == 5
    ref.localizer(x)  # one training-mode pass of M on x
    for (name, a), b in zip(model.localizer.named_buffers(), ref.localizer.buffers(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    for name, buf in model.classifier.named_buffers():  # C: updated once (x ⊙ R+*), not by x ⊙ R-*
        if name.endswith("num_batches_tracked"):
            assert int(buf) == 1, name
    for m in model.modules():  # flags restored
        if isinstance(m, nn.BatchNorm2d):
            assert m.track_running_stats


def test_shared_backbone_keeps_separate_batchnorm_statistics_for_the_classifier():
    """Shared backbone: M's running statistics come from M(x) only, C's from C(x ⊙ R+*) only, and eval uses each."""
    x, y = torch.randn(4, 3, 32, 32) * 2 + 1, torch.zeros(4, dtype=torch.long)
    model = _confident(_small(passes=1))
    assert model.localizer.backbone is model.classifier.backbone
    bns = [m for m in model.localizer.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and model.classifier_bn_stats.n == len(bns)
    ref_m, ref_c = copy.deepcopy(model), copy.deepcopy(model)
    train(model, x, y)
    # independent reference: one training-mode pass of M on x, one of C on x ⊙ R+ (Ψ(0) = 1: p = 1, loss = 0)
    loc = ref_m.localizer(x)
    r = maxmin_mask(loc.cams.detach(), loc.logits.detach(), (32, 32))
    ref_c.classifier(x * r)
    ref_m_bns = [m for m in ref_m.localizer.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    ref_c_bns = [m for m in ref_c.classifier.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    for i, (a, bm, bc) in enumerate(zip(bns, ref_m_bns, ref_c_bns, strict=True)):
        torch.testing.assert_close(a.running_mean, bm.running_mean)
        torch.testing.assert_close(a.running_var, bm.running_var)
        torch.testing.assert_close(getattr(model.classifier_bn_stats, f"running_mean_{i}"), bc.running_mean)
        torch.testing.assert_close(getattr(model.classifier_bn_stats, f"running_var_{i}"), bc.running_var)
        assert int(getattr(model.classifier_bn_stats, f"num_batches_tracked_{i}")) == 1
        assert not torch.allclose(bm.running_mean, bc.running_mean)  # the two distributions differ
    # eval: M normalises with M's statistics, C with C's
    model.eval(), ref_m.eval(), ref_c.eval()
    x2 = torch.randn(3, 3, 32, 32)
    out = model(x2)
    loc2 = ref_m.localizer(x2)
    r2 = maxmin_mask(loc2.cams, loc2.logits, (32, 32))
    torch.testing.assert_close(out.aux["localizer_logits"], loc2.logits)
    torch.testing.assert_close(out.logits, ref_c.classifier(x2 * r2).logits)
    with model.classifier_statistics():
        torch.testing.assert_close(model.classifier(x2 * r2).logits, out.logits)
    # the statistics are saved with the model and restored by load_state_dict
    state = model.state_dict()
    assert "classifier_bn_stats.running_mean_0" in state
    clone = _confident(_small(passes=1)).eval()
    clone.load_state_dict(state)
    torch.testing.assert_close(clone(x2).logits, out.logits)


def _bn_batch_mode(model):
    """Context: batch-norm layers normalise with batch statistics (no update), everything else in eval mode."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]

    class _Ctx:
        def __enter__(self):
            for m in bns:
                m.train()
                m.track_running_stats = False

        def __exit__(self, *a):
            for m in bns:
                m.eval()
                m.track_running_stats = True

    return _Ctx()


@pytest.mark.parametrize("share", [True, False])
def test_recalibrate_statistics_equals_batch_statistics_of_the_inference_inputs(share):
    """One batch: recalibrated eval-mode M and C equal M(x) and C(x ⊙ R⁺) normalised with their batch statistics."""
    model = _small(passes=2, share_backbone=share)
    x, y = torch.randn(6, 3, 32, 32) * 2 + 0.5, torch.tensor([0, 1, 0, 1, 0, 1])
    train(model, x, y)  # moves the running statistics somewhere else
    model.train()
    model.recalibrate_statistics(x, batch_size=6)
    assert model.training  # mode restored
    model.eval()
    ref = copy.deepcopy(model)
    with torch.no_grad():
        out = model(x)
        with _bn_batch_mode(ref):
            loc = ref.localizer(x)
            r = maxmin_mask(loc.cams, loc.logits, (32, 32))
            # C's batch statistics on x ⊙ R⁺, whatever buffers the shared layers hold
            ref_c = ref.classifier(x * r)
    # running_var is unbiased, batch normalisation uses the biased variance: (n-1)/n with n = 6·h·w (96 at 4x4)
    torch.testing.assert_close(out.aux["localizer_logits"], loc.logits, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(out.aux["mask"], r[:, 0], rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(out.logits, ref_c.logits, rtol=2e-2, atol=2e-2)
    for m in model.modules():  # momenta restored
        if isinstance(m, nn.BatchNorm2d):
            assert m.momentum == 0.1 and m.track_running_stats
    # two batches: each counts equally (cumulative average of the batch means)
    bn0 = next(m for m in model.localizer.modules() if isinstance(m, nn.BatchNorm2d))
    conv0 = next(m for m in model.localizer.modules() if isinstance(m, nn.Conv2d))
    model.recalibrate_statistics(x, batch_size=3)
    with torch.no_grad():
        means = [conv0(x[:3]).mean(dim=(0, 2, 3)), conv0(x[3:]).mean(dim=(0, 2, 3))]
    torch.testing.assert_close(bn0.running_mean, (means[0] + means[1]) / 2, rtol=1e-4, atol=1e-5)
    with pytest.raises(WSOLValueError, match="batch_size"):
        model.recalibrate_statistics(x, batch_size=0)
