"""Dense CRF loss (Tang et al., ECCV 2018, "On regularized losses for weakly-supervised CNN segmentation").

``L = −(λ / B) · Σ_b Σ_k S_kᵀ W S_k`` with the dense Gaussian bilateral affinity
``W_ij = exp(−|p_i − p_j|² / (2σ_xy²) − |I_i − I_j|² / (2σ_rgb²))`` (self-affinity ``W_ii = 1`` included) between
all pixel pairs of an image, ``S_k`` the softmax map of class ``k``, ``B`` the batch size. Two filters compute
``W S``: the exact dense product in row chunks (pure torch, O(N²) time, O(chunk·N) memory) and a bilateral-grid
approximation (splat → separable Gaussian blur → slice on a 5-D grid over (x, y, r, g, b)). Both filters are
symmetric, so the gradient is ``−(2λ / B) · W S`` and is computed from the forward product without a second
filtering pass. No gradient flows to the images.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from wsolkit._checks import (
    ShapeError,
    check_choice,
    check_finite,
    check_floating,
    check_int,
    check_ndim,
    check_number,
    check_same_batch,
    check_same_spatial,
)

__all__ = [
    "bilateral_features",
    "dense_bilateral_filter",
    "grid_bilateral_filter",
    "dense_crf_loss",
    "DenseCRFLoss",
]


def bilateral_features(images: torch.Tensor, sigma_rgb: float = 15.0, sigma_xy: float = 100.0) -> torch.Tensor:
    """Per-pixel features ``(x/σ_xy, y/σ_xy, r/σ_rgb, g/σ_rgb, b/σ_rgb)`` (row-major pixel order, x = column).

    Shape:
        - images: :math:`(B, 3, H, W)`; output: :math:`(B, HW, 5)`

    Example:
        >>> bilateral_features(torch.zeros(1, 3, 2, 2), 1.0, 1.0)[0, :, :2]
        tensor([[0., 0.],
                [1., 0.],
                [0., 1.],
                [1., 1.]])
    """
    _check_images(images)
    sigma_rgb = check_number(sigma_rgb, "sigma_rgb", low=0.0, low_inclusive=False)
    sigma_xy = check_number(sigma_xy, "sigma_xy", low=0.0, low_inclusive=False)
    b, _, h, w = images.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, device=images.device, dtype=images.dtype),
        torch.arange(w, device=images.device, dtype=images.dtype),
        indexing="ij",
    )
    pos = torch.stack([xs, ys], -1).reshape(1, h * w, 2).expand(b, -1, -1) / sigma_xy
    rgb = images.reshape(b, 3, h * w).transpose(1, 2) / sigma_rgb
    return torch.cat([pos, rgb], dim=2)


def _check_images(images: torch.Tensor) -> None:
    check_ndim(images, "images", 4, "(B, 3, H, W)")
    check_floating(images, "images")
    if images.shape[1] != 3:
        raise ShapeError(f"`images` must have 3 (RGB) channels, shape (B, 3, H, W), got {tuple(images.shape)}")


def _check_filter_inputs(values: torch.Tensor, features: torch.Tensor) -> None:
    check_ndim(values, "values", 3, "(B, K, N)")
    check_ndim(features, "features", 3, "(B, N, D)")
    check_floating(values, "values")
    check_floating(features, "features")
    if values.shape[0] != features.shape[0] or values.shape[2] != features.shape[1]:
        raise ShapeError(
            f"`values` (B, K, N) and `features` (B, N, D) must agree on B and N, got {tuple(values.shape)} "
            f"and {tuple(features.shape)}"
        )


def dense_bilateral_filter(values: torch.Tensor, features: torch.Tensor, chunk_size: int = 4_000_000) -> torch.Tensor:
    """Exact ``Σ_j exp(−½|f_i − f_j|²) v_j`` for every pixel ``i``, computed in row chunks.

    Args:
        values: signals to filter.
        features: per-pixel features (already divided by their σ).
        chunk_size: affinity entries materialised at once (memory ≈ 3 × 4 bytes × chunk_size in float32).

    Shape:
        - values: :math:`(B, K, N)`; features: :math:`(B, N, D)`; output: :math:`(B, K, N)`

    Example:
        >>> f = torch.tensor([[[0.0], [1.0]]])
        >>> dense_bilateral_filter(torch.tensor([[[1.0, 0.0]]]), f)
        tensor([[[1.0000, 0.6065]]])
    """
    _check_filter_inputs(values, features)
    check_int(chunk_size, "chunk_size", low=1)
    b, k, n = values.shape
    f = features.to(values.dtype)
    f = f - f.mean(dim=1, keepdim=True)  # centring reduces cancellation in |a|² + |b|² − 2a·b
    sq = (f * f).sum(-1)  # (B, N)
    out = torch.empty_like(values)
    rows = max(1, chunk_size // max(b * n, 1))
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        fc = f[:, start:stop]
        d2 = torch.baddbmm(sq[:, start:stop, None] + sq[:, None, :], fc, f.transpose(1, 2), alpha=-2.0)
        w = torch.exp(d2.clamp_min_(0.0).mul_(-0.5))  # (B, c, N)
        out[:, :, start:stop] = torch.bmm(values, w.transpose(1, 2))
    return out


def _gaussian_taps(std: float, step: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Discrete Gaussian of the given std (grid cells) scaled to the mass ``√(2π)/step`` of the target kernel."""
    radius = max(1, int(math.ceil(4.0 * std)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    # solve for the continuous sigma whose sampled kernel has variance std² (exact for small std)
    lo, hi = 1e-3, 2.0 * std + 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        g = torch.exp(-0.5 * (t / mid) ** 2)
        var = float((g * t * t).sum() / g.sum())
        lo, hi = (mid, hi) if var < std * std else (lo, mid)
    g = torch.exp(-0.5 * (t / (0.5 * (lo + hi))) ** 2)
    g = g / g.sum() * math.sqrt(2.0 * math.pi) / step
    return g.to(device=device, dtype=dtype)


def grid_bilateral_filter(values: torch.Tensor, features: torch.Tensor, step: float = 0.6) -> torch.Tensor:
    """Bilateral-grid approximation of :func:`dense_bilateral_filter`.

    Pixels are splatted (multilinear weights) onto a regular grid over the feature space with cell ``step`` (in
    units of σ), the grid is blurred with a separable discrete Gaussian whose variance ``1/step² − 1/3`` cells²
    compensates the two linear interpolations (variance 1/6 each) and whose mass equals the target kernel's, and
    the result is read back at every pixel (slice = transpose of splat). The operator is symmetric.

    Args:
        values: signals to filter.
        features: per-pixel features (already divided by their σ).
        step: grid cell size in σ units, in ``(0, 1.5]``; smaller is more accurate and slower.

    Shape:
        - values: :math:`(B, K, N)`; features: :math:`(B, N, D)`; output: :math:`(B, K, N)`

    Example:
        >>> f = 3 * torch.rand(1, 256, 5)
        >>> v = torch.rand(1, 2, 256)
        >>> exact = (v * dense_bilateral_filter(v, f)).sum()
        >>> bool(((v * grid_bilateral_filter(v, f)).sum() - exact).abs() / exact < 0.02)
        True
    """
    _check_filter_inputs(values, features)
    step = check_number(step, "step", low=0.0, high=1.5, low_inclusive=False)
    b, k, n = values.shape
    d = features.shape[2]
    dtype = values.dtype
    g = features.to(dtype) / step
    g = g - g.amin(dim=1, keepdim=True)
    dims = [int(math.floor(float(g[..., i].max()))) + 2 for i in range(d)]
    base = g.floor().clamp_max(torch.tensor(dims, device=g.device, dtype=dtype) - 2)
    frac = g - base
    base = base.long()
    strides = [1] * d
    for i in range(d - 2, -1, -1):
        strides[i] = strides[i + 1] * dims[i + 1]
    size = strides[0] * dims[0]
    corners = []
    for bits in itertools.product((0, 1), repeat=d):
        idx = torch.zeros(b, n, dtype=torch.long, device=values.device)
        w = torch.ones(b, n, dtype=dtype, device=values.device)
        for i, bit in enumerate(bits):
            idx += (base[..., i] + bit) * strides[i]
            w = w * (frac[..., i] if bit else 1.0 - frac[..., i])
        corners.append((idx, w))
    grid = torch.zeros(b, k, size, dtype=dtype, device=values.device)
    for idx, w in corners:
        grid.scatter_add_(2, idx[:, None, :].expand(b, k, n), values * w[:, None, :])
    grid = grid.view(b * k, *dims)
    var = 1.0 / (step * step) - 1.0 / 3.0
    taps = _gaussian_taps(math.sqrt(var), step, dtype, values.device)
    r = (taps.numel() - 1) // 2
    for axis in range(d):
        dim = axis + 1
        pad = [0, 0] * d
        pad[2 * (d - 1 - axis)] = r
        pad[2 * (d - 1 - axis) + 1] = r
        padded = F.pad(grid, pad)
        out = torch.zeros_like(grid)
        for t in range(taps.numel()):
            out.add_(padded.narrow(dim, t, dims[axis]), alpha=float(taps[t]))
        grid = out
    grid = grid.reshape(b, k, size)
    out = torch.zeros_like(values)
    for idx, w in corners:
        out.add_(grid.gather(2, idx[:, None, :].expand(b, k, n)) * w[:, None, :])
    return out


class _NegQuadratic(torch.autograd.Function):
    """``−Σ s·(W s)`` for a symmetric filter ``W`` (features are constants); backward ``−2 W s``."""

    @staticmethod
    def forward(ctx, s, features, filt):  # noqa: D102
        with torch.no_grad():
            ws = filt(s, features)
        ctx.save_for_backward(ws)
        return -(s * ws).sum()

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        (ws,) = ctx.saved_tensors
        return -2.0 * grad * ws, None, None


def dense_crf_loss(
    probs: torch.Tensor,
    images: torch.Tensor,
    weight: float = 1.0,
    sigma_rgb: float = 15.0,
    sigma_xy: float = 100.0,
    scale_factor: float = 1.0,
    method: str = "exact",
    chunk_size: int = 4_000_000,
    step: float = 0.6,
) -> torch.Tensor:
    """Dense CRF loss ``−(λ/B) Σ_k S_kᵀ W S_k`` of Tang et al. (2018) with the Gaussian bilateral kernel.

    Args:
        probs: per-pixel class probabilities ``S`` (e.g. the decoder's softmax).
        images: colour images in the units of ``sigma_rgb`` (``[0, 255]`` for the default 15).
        weight: λ.
        sigma_rgb: colour bandwidth (> 0).
        sigma_xy: spatial bandwidth in pixels of the full-resolution image (> 0).
        scale_factor: both inputs are resized (bilinear) by this factor in ``(0, 1]`` first and ``sigma_xy`` is
            multiplied by it, as in the reference implementation.
        method: ``"exact"`` (chunked dense product) or ``"grid"`` (bilateral-grid approximation).
        chunk_size: affinity entries per chunk for ``"exact"``.
        step: grid cell in σ units for ``"grid"``.

    Returns:
        Scalar loss (differentiable in ``probs``).

    Shape:
        - probs: :math:`(B, K, H, W)`; images: :math:`(B, 3, H, W)`

    Example:
        >>> probs = torch.full((1, 2, 4, 4), 0.5, requires_grad=True)
        >>> loss = dense_crf_loss(probs, torch.zeros(1, 3, 4, 4), sigma_xy=1e6)
        >>> float(loss.detach())  # every pair has affinity 1: −(0.5·16)²·2
        -128.0
    """
    check_ndim(probs, "probs", 4, "(B, K, H, W)")
    check_floating(probs, "probs")
    _check_images(images)
    check_same_batch(probs, "probs", images, "images")
    check_same_spatial(probs, "probs", images, "images")
    check_finite(images, "images")
    weight = check_number(weight, "weight")
    sigma_rgb = check_number(sigma_rgb, "sigma_rgb", low=0.0, low_inclusive=False)
    sigma_xy = check_number(sigma_xy, "sigma_xy", low=0.0, low_inclusive=False)
    scale_factor = check_number(scale_factor, "scale_factor", low=0.0, high=1.0, low_inclusive=False)
    check_choice(method, "method", ("exact", "grid"))
    b, k, h, w = probs.shape
    if scale_factor != 1.0:
        size = (max(1, int(math.floor(h * scale_factor))), max(1, int(math.floor(w * scale_factor))))
        probs = F.interpolate(probs, size=size, mode="bilinear", align_corners=False)
        images = F.interpolate(images.detach(), size=size, mode="bilinear", align_corners=False)
        sigma_xy = sigma_xy * scale_factor
    feats = bilateral_features(images.detach().to(probs.dtype), sigma_rgb, sigma_xy)
    s = probs.reshape(b, k, -1)
    if method == "exact":
        def filt(v, f):
            return dense_bilateral_filter(v, f, chunk_size)
    else:
        def filt(v, f):
            return grid_bilateral_filter(v, f, step)
    return weight * _NegQuadratic.apply(s, feats, filt) / b


class DenseCRFLoss(nn.Module):
    """Module form of :func:`dense_crf_loss`.

    Shape:
        - probs: :math:`(B, K, H, W)`; images: :math:`(B, 3, H, W)`; output: scalar

    Example:
        >>> crf = DenseCRFLoss(weight=1e-3, scale_factor=0.5)
        >>> crf(torch.rand(2, 2, 16, 16), 255 * torch.rand(2, 3, 16, 16)).shape
        torch.Size([])
    """

    def __init__(
        self,
        weight: float = 1.0,
        sigma_rgb: float = 15.0,
        sigma_xy: float = 100.0,
        scale_factor: float = 1.0,
        method: str = "exact",
        chunk_size: int = 4_000_000,
        step: float = 0.6,
    ):
        super().__init__()
        self.weight = check_number(weight, "weight")
        self.sigma_rgb = check_number(sigma_rgb, "sigma_rgb", low=0.0, low_inclusive=False)
        self.sigma_xy = check_number(sigma_xy, "sigma_xy", low=0.0, low_inclusive=False)
        self.scale_factor = check_number(scale_factor, "scale_factor", low=0.0, high=1.0, low_inclusive=False)
        self.method = check_choice(method, "method", ("exact", "grid"))
        self.chunk_size = check_int(chunk_size, "chunk_size", low=1)
        self.step = check_number(step, "step", low=0.0, high=1.5, low_inclusive=False)

    def forward(self, probs: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        return dense_crf_loss(
            probs, images, self.weight, self.sigma_rgb, self.sigma_xy, self.scale_factor, self.method,
            self.chunk_size, self.step,
        )

    def extra_repr(self) -> str:
        return (
            f"weight={self.weight}, sigma_rgb={self.sigma_rgb}, sigma_xy={self.sigma_xy}, "
            f"scale_factor={self.scale_factor}, method={self.method!r}"
        )
