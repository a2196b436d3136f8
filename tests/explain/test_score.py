"""Score-CAM, SS-CAM, IS-CAM and Ablation-CAM against float64 references on hand-set tiny CNNs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.explain._refs import TinyCNN, minmax, raw, softmax_valid, tiny_acts, tiny_head
from wsolkit.cams import postprocess
from wsolkit.explain import ISCAM, SSCAM, AblationCAM, ScoreCAM


def _setup(**kw):
    torch.manual_seed(0)
    m = TinyCNN(stride=2, **kw).double().eval()
    x = torch.rand(2, 3, 9, 10, dtype=torch.float64) - 0.3
    return m, x


def _masks(a, size):
    """(B, K, H, W) masks: upsample each channel then min-max; validity = non-constant channel."""
    b, k = a.shape[:2]
    up = F.interpolate(a.reshape(b * k, 1, *a.shape[-2:]), size=size, mode="bilinear", align_corners=False)[:, 0]
    valid = (a.flatten(2).amax(2) > a.flatten(2).amin(2)).numpy()
    return minmax(up).view(b, k, *size), valid


def _ref_score(m, x, score_fn, top_k=None):
    a = tiny_acts(m, x)
    c = tiny_head(m, a).argmax(1)
    masks, valid = _masks(a, x.shape[-2:])
    if top_k is not None:
        mean = np.where(valid, a.mean((2, 3)).numpy(), -np.inf)
        keep = np.zeros_like(valid)
        for i in range(len(keep)):
            keep[i, np.argsort(-mean[i])[:top_k]] = True
        valid = valid & keep
    s = np.zeros(valid.shape)
    with torch.no_grad():
        for i in range(a.shape[0]):
            for k in range(a.shape[1]):
                if valid[i, k]:
                    s[i, k] = score_fn(x[i : i + 1], masks[i, k], int(c[i]))
    alpha = softmax_valid(s, valid)
    return np.maximum(np.einsum("bk,bkhw->bhw", alpha, a.numpy()), 0), valid


@pytest.mark.parametrize("batch_size", [1, 3, 64])
@pytest.mark.parametrize("dedup", [True, False])
def test_scorecam_formula(batch_size, dedup):
    m, x = _setup()
    want, valid = _ref_score(m, x, lambda xi, mk, c: float(m(xi * mk)[0, c]))
    got = raw(ScoreCAM(m, "conv2", batch_size=batch_size, dedup=dedup), x)
    assert got.shape == (2, 5, 5) and valid.all()
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)
    assert not got.is_inference()


def test_scorecam_constant_channel_gets_zero_weight():
    m, x = _setup(dead_channel=True)  # channel 0 is constant (-1) at the target layer
    want, valid = _ref_score(m, x, lambda xi, mk, c: float(m(xi * mk)[0, c]))
    assert not valid[:, 0].any() and valid[:, 1:].all()
    got = raw(ScoreCAM(m, "conv2"), x)
    assert torch.isfinite(got).all()
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)
    # all channels constant → the map is exactly 0 (never NaN), and normalisation gives zeros
    with torch.no_grad():
        m.conv2.weight.zero_()
    out = raw(ScoreCAM(m, "conv2"), x)
    assert torch.equal(out, torch.zeros_like(out))


def test_scorecam_dedup_identical_masks():
    m, x = _setup(duplicate=True)  # channel 2 = 2 × channel 1 → identical normalised masks
    cam = ScoreCAM(m, "conv2", dedup=True)
    got = raw(cam, x)
    assert cam.last_num_forwards == 2 * 3  # 4 channels, one duplicate, per image
    plain = ScoreCAM(m, "conv2", dedup=False)
    ref = raw(plain, x)
    assert plain.last_num_forwards == 2 * 4
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-14)
    want, _ = _ref_score(m, x, lambda xi, mk, c: float(m(xi * mk)[0, c]))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)


def test_scorecam_top_k_approximation():
    m, x = _setup(k=6)
    want, _ = _ref_score(m, x, lambda xi, mk, c: float(m(xi * mk)[0, c]), top_k=2)
    got = raw(ScoreCAM(m, "conv2", top_k=2), x)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)


def test_iscam_formula():
    m, x = _setup()
    n = 4

    def score(xi, mk, c):
        return float(sum(m(xi * mk * (i / n))[0, c] for i in range(1, n + 1)) / n)

    want, _ = _ref_score(m, x, score)
    got = raw(ISCAM(m, "conv2", n_samples=n, batch_size=5), x)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("perturb", ["mask", "input"])
def test_sscam_formula(perturb):
    m, x = _setup()
    n, sigma, seed = 3, 2.0, 5
    a = tiny_acts(m, x)
    c = tiny_head(m, a).argmax(1)
    masks, valid = _masks(a, x.shape[-2:])
    pairs = [(i, k) for i in range(a.shape[0]) for k in range(a.shape[1]) if valid[i, k]]
    g = torch.Generator().manual_seed(seed)
    s = np.zeros(valid.shape)
    xs = torch.stack([x[i] for i, _ in pairs])
    mk = torch.stack([masks[i, k] for i, k in pairs])[:, None]
    shape = mk.shape if perturb == "mask" else xs.shape
    with torch.no_grad():
        for _ in range(n):
            eps = (torch.randn(shape, generator=g) * sigma).double()
            inp = xs * (mk + eps) if perturb == "mask" else (xs + eps) * mk
            out = m(inp)
            for j, (i, k) in enumerate(pairs):
                s[i, k] += float(out[j, c[i]]) / n
    want = np.maximum(np.einsum("bk,bkhw->bhw", softmax_valid(s, valid), a.numpy()), 0)
    cam = SSCAM(m, "conv2", n_samples=n, sigma=sigma, seed=seed, perturb=perturb, dedup=False, batch_size=64)
    np.testing.assert_allclose(raw(cam, x).numpy(), want, rtol=1e-10, atol=1e-12)
    # σ = 0: every sample is the plain masked input → Score-CAM exactly
    torch.testing.assert_close(
        raw(SSCAM(m, "conv2", n_samples=2, sigma=0.0), x),
        raw(ScoreCAM(m, "conv2"), x),
    )


@pytest.mark.parametrize("batch_size", [1, 5])
def test_ablationcam_formula(batch_size):
    m, x = _setup(dead_channel=True)
    a = tiny_acts(m, x)
    y_all = tiny_head(m, a)
    c = y_all.argmax(1)
    y = y_all.gather(1, c[:, None])[:, 0].detach().numpy()
    w = np.zeros(a.shape[:2])
    for k in range(a.shape[1]):
        ak = a.clone()
        ak[:, k] = 0
        yk = tiny_head(m, ak).gather(1, c[:, None])[:, 0].detach().numpy()
        w[:, k] = (y - yk) / y
    want = np.maximum(np.einsum("bk,bkhw->bhw", w, a.numpy()), 0)
    got = raw(AblationCAM(m, "conv2", batch_size=batch_size), x)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-12)


def test_ablationcam_zero_score_gives_zero_weights():
    m, x = _setup()
    got = raw(AblationCAM(m, "conv2"), x, lambda z: z[:, 0] * 0)
    assert torch.equal(got, torch.zeros_like(got))


def _authors_scorecam(m, x, layer_out, class_idx=None):
    """float64 re-implementation of ``haofanwang/Score-CAM`` ``cam/scorecam.py`` ``ScoreCAM.forward`` (one image).

    Weights: the softmax over classes of the masked input's logits at the class (no softmax over channels); the
    map sums the upsampled activations, ReLU, then min-max (the reference returns None for a constant map).
    """
    h, w = x.shape[-2:]
    with torch.no_grad():
        logit = m(x)
        c = int(logit.argmax(1)) if class_idx is None else class_idx
        acts = layer_out(x)
        total = torch.zeros(1, 1, h, w, dtype=torch.float64)
        for i in range(acts.shape[1]):
            sal = F.interpolate(acts[:, i : i + 1], size=(h, w), mode="bilinear", align_corners=False)
            if sal.max() == sal.min():
                continue
            norm = (sal - sal.min()) / (sal.max() - sal.min())
            score = torch.softmax(m(x * norm), dim=1)[0, c]
            total += score * sal
        total = torch.relu(total)
    return total[0, 0], (total[0, 0] - total.min()) / (total.max() - total.min())


def test_scorecam_probability_matches_the_authors_code():
    m, x = _setup(k=6)

    def after_relu(xi):
        return torch.relu(tiny_acts(m, xi))  # the output of `act2` (ReLU after conv2): A >= 0

    cam = ScoreCAM(m, "act2", score="probability")
    out = cam(x)
    for i in range(x.shape[0]):
        want_raw, want_norm = _authors_scorecam(m, x[i : i + 1], after_relu)
        # Σ_k p_k A_k >= 0 here, so summing at the layer resolution then upsampling (the protocol) is the same map
        up = F.interpolate(out.cams[i : i + 1], size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
        np.testing.assert_allclose(up.numpy(), want_raw.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(postprocess(out.cams[i : i + 1], None, x.shape[-2:])[0].numpy(),
                                   want_norm.numpy(), rtol=1e-9, atol=1e-12)
    # the default (softmax over channels of the logits, the paper's Algorithm 1) is a different map
    logit_maps = postprocess(ScoreCAM(m, "act2")(x).cams, None, x.shape[-2:])
    assert not torch.allclose(logit_maps, postprocess(out.cams, None, x.shape[-2:]), atol=1e-3)
    # an explicit class, given as a numpy integer
    want_raw, _ = _authors_scorecam(m, x[:1], after_relu, class_idx=2)
    up = F.interpolate(cam(x[:1], np.int64(2)).cams, size=x.shape[-2:], mode="bilinear", align_corners=False)
    np.testing.assert_allclose(up[0, 0].numpy(), want_raw.numpy(), rtol=1e-10, atol=1e-12)


def test_probability_score_needs_a_class():
    m, x = _setup()
    with pytest.raises(TypeError, match="probability"):
        ScoreCAM(m, "conv2", score="probability")(x, lambda z: z[:, 0])
    with pytest.raises(ValueError, match="`score`"):
        ScoreCAM(m, "conv2", score="prob")
