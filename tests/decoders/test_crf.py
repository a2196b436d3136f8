import math

import pytest
import torch
import torch.nn.functional as F

from wsolkit._checks import ShapeError, WSOLValueError
from wsolkit.data import SyntheticHistology
from wsolkit.decoders.crf import (
    DenseCRFLoss,
    bilateral_features,
    dense_bilateral_filter,
    dense_crf_loss,
    grid_bilateral_filter,
)


def brute_force_loss(probs, images, weight, sigma_rgb, sigma_xy):
    """−(λ/B) Σ_b Σ_k Σ_ij S_ki W_ij S_kj with explicit pairwise differences, float64."""
    probs, images = probs.double(), images.double()
    b, k, h, w = probs.shape
    total = torch.zeros((), dtype=torch.float64)
    for n in range(b):
        coords = [(y, x) for y in range(h) for x in range(w)]
        pos = torch.tensor(coords, dtype=torch.float64)  # (N, 2) as (y, x)
        rgb = images[n].reshape(3, -1).T
        dp = ((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1)
        dc = ((rgb[:, None, :] - rgb[None, :, :]) ** 2).sum(-1)
        wmat = torch.exp(-dp / (2 * sigma_xy**2) - dc / (2 * sigma_rgb**2))
        s = probs[n].reshape(k, -1)
        total = total + torch.einsum("ki,ij,kj->", s, wmat, s)
    return -weight * total / b


def _inputs(b=2, k=3, h=5, w=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(b, k, h, w, generator=g, dtype=torch.float64), 1)
    images = 255 * torch.rand(b, 3, h, w, generator=g, dtype=torch.float64)
    return probs, images


@pytest.mark.parametrize("sigma_rgb, sigma_xy", [(15.0, 100.0), (40.0, 2.0), (5.0, 0.7)])
def test_exact_matches_brute_force(sigma_rgb, sigma_xy):
    probs, images = _inputs()
    ref = brute_force_loss(probs, images, 0.3, sigma_rgb, sigma_xy)
    out = dense_crf_loss(probs, images, weight=0.3, sigma_rgb=sigma_rgb, sigma_xy=sigma_xy)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    small_chunks = dense_crf_loss(probs, images, 0.3, sigma_rgb, sigma_xy, chunk_size=7)
    torch.testing.assert_close(small_chunks, ref, rtol=1e-10, atol=1e-10)


def test_scale_factor_matches_brute_force_on_resized_inputs():
    probs, images = _inputs(h=8, w=10)
    out = dense_crf_loss(probs, images, 1.0, 20.0, 6.0, scale_factor=0.5)
    p = F.interpolate(probs, size=(4, 5), mode="bilinear", align_corners=False)
    im = F.interpolate(images, size=(4, 5), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, brute_force_loss(p, im, 1.0, 20.0, 3.0), rtol=1e-10, atol=1e-10)


def test_gradient_matches_autograd_of_brute_force():
    probs, images = _inputs()
    a = probs.clone().requires_grad_(True)
    brute_force_loss(a, images, 0.5, 15.0, 3.0).backward()
    b = probs.clone().requires_grad_(True)
    dense_crf_loss(b, images, 0.5, 15.0, 3.0).backward()
    torch.testing.assert_close(b.grad, a.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("method", ["exact", "grid"])
def test_gradcheck(method):
    probs, images = _inputs(b=2, k=2, h=3, w=4)
    probs.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda p: dense_crf_loss(p, images, 0.1, 90.0, 2.0, method=method, step=0.8), (probs,)
    )
    if method == "grid":
        return
    logits = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    img = 255 * torch.rand(1, 3, 4, 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda z: dense_crf_loss(torch.softmax(z, 1), img, 0.1, 30.0, 3.0, scale_factor=0.5, method=method),
        (logits,),
    )


def test_filters_on_tiny_hand_values():
    f = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]]], dtype=torch.float64)
    v = torch.tensor([[[1.0, 2.0, 3.0]]], dtype=torch.float64)
    e = math.exp
    expect = [1 + 2 * e(-0.5) + 3 * e(-2.0), e(-0.5) + 2 + 3 * e(-2.5), e(-2.0) + 2 * e(-2.5) + 3]
    torch.testing.assert_close(dense_bilateral_filter(v, f)[0, 0], torch.tensor(expect, dtype=torch.float64))


def test_bilateral_features_layout():
    img = torch.arange(2 * 3 * 2 * 3, dtype=torch.float32).view(2, 3, 2, 3)
    f = bilateral_features(img, sigma_rgb=2.0, sigma_xy=4.0)
    assert f.shape == (2, 6, 5)
    # pixel (y=1, x=2) is index 5
    torch.testing.assert_close(f[1, 5, :2], torch.tensor([2 / 4.0, 1 / 4.0]))
    torch.testing.assert_close(f[1, 5, 2:], img[1, :, 1, 2] / 2.0)


def test_grid_approximation_within_tolerance():
    """Bilateral grid (default step 0.6 σ) vs exact on histology-like images: loss < 2%, W·S (gradient) < 5%."""
    for kind in ("camelyon", "glas"):
        images, _, _ = SyntheticHistology(kind, "test", n=2, size=64, seed=3).tensors()
        images = 255 * images[1:]
        g = torch.Generator().manual_seed(0)
        probs = torch.softmax(F.interpolate(3 * torch.randn(1, 2, 6, 6, generator=g), size=(64, 64),
                                            mode="bilinear"), 1)
        feats = bilateral_features(images, 15.0, 25.0)
        s = probs.reshape(1, 2, -1)
        exact = dense_bilateral_filter(s.double(), feats.double())
        approx = grid_bilateral_filter(s, feats).double()
        ws_err = float((approx - exact).norm() / exact.norm())
        assert ws_err < 0.05, ws_err
        ref = -float((s.double() * exact).sum())
        out = float(dense_crf_loss(probs, images, sigma_xy=25.0, method="grid"))
        assert abs(out - ref) / abs(ref) < 0.02, (out, ref)


def test_grid_operator_is_symmetric():
    f = 2 * torch.rand(1, 30, 5, dtype=torch.float64)
    eye = torch.eye(30, dtype=torch.float64)[None]  # columns as signals
    wmat = grid_bilateral_filter(eye, f, step=0.7)[0]
    torch.testing.assert_close(wmat, wmat.T, rtol=1e-12, atol=1e-12)


def test_module_equals_function_and_repr():
    probs, images = _inputs()
    m = DenseCRFLoss(weight=0.2, sigma_rgb=10.0, sigma_xy=3.0, scale_factor=1.0)
    torch.testing.assert_close(m(probs, images), dense_crf_loss(probs, images, 0.2, 10.0, 3.0))
    assert "sigma_rgb=10.0" in repr(m)


def test_errors():
    probs, images = _inputs()
    with pytest.raises(WSOLValueError, match="sigma_rgb"):
        dense_crf_loss(probs, images, sigma_rgb=0.0)
    with pytest.raises(WSOLValueError, match="sigma_xy"):
        dense_crf_loss(probs, images, sigma_xy=-1.0)
    with pytest.raises(ShapeError, match="3 \\(RGB\\) channels"):
        dense_crf_loss(probs, images[:, :2])
    with pytest.raises(ShapeError, match="spatial"):
        dense_crf_loss(probs, images[..., :4])
    with pytest.raises(WSOLValueError, match="scale_factor"):
        dense_crf_loss(probs, images, scale_factor=1.5)
    with pytest.raises(WSOLValueError, match="method"):
        dense_crf_loss(probs, images, method="fast")
    with pytest.raises(WSOLValueError, match="sigma_xy"):
        DenseCRFLoss(sigma_xy=0)
