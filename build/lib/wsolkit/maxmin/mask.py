"""MaxMin mask computation (Belharbi et al., eqs. 10-11): class-posterior-weighted maps → pseudo-binary mask."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from wsolkit import cams as cam_ops
from wsolkit._checks import ShapeError, check_floating, check_ndim, check_number

__all__ = ["maxmin_mask", "MaxMinMask"]


def maxmin_mask(
    cams: torch.Tensor,
    logits: torch.Tensor,
    size: int | Sequence[int],
    omega: float = 8.0,
    sigma_prime: float = 0.5,
) -> torch.Tensor:
    """Pseudo-binary foreground mask ``R⁺`` of the localizer.

    ``T = Σ_k p̂ˢ(k|x)·A_k`` (eq. 10, ``p̂ˢ = softmax(logits)``), bilinearly upsampled to ``size``, min-max
    normalised **per sample** to ``[0, 1]`` (a constant map becomes zeros), then
    ``R⁺ = sigmoid(ω·(T↑ − σ′))`` (eq. 11). Differentiable w.r.t. ``cams`` and ``logits``; detach the inputs for
    the paper's deterministic variant.

    Departure from the authors' code (``sbelharbi/wsol-min-max-entropy-interpretability``, ``deepmil/models.py``,
    ``ResNet.get_pseudo_binary_mask``): it min-max normalises ``T↑`` over the whole batch, so one image's mask
    depends on the other images of its batch (and on the batch size); wsolkit normalises per sample, which makes
    the mask a function of the image alone (identical in training, inference and any batching). The reference also
    upsamples with ``align_corners=True``; wsolkit uses the protocol's ``align_corners=False``.

    Args:
        cams: class maps ``A`` of the localizer.
        logits: class scores of the localizer (``p̂ˢ`` is their softmax).
        size: output ``(H, W)`` (the image size) or one int.
        omega: sigmoid sharpness ω, > 0.
        sigma_prime: sigmoid offset σ′ on the normalised map.

    Returns:
        ``R⁺`` in ``(0, 1)``; ``R⁻ = 1 − R⁺``.

    Shape:
        - cams: :math:`(B, C, h, w)`; logits: :math:`(B, C)`
        - output: :math:`(B, 1, H, W)`

    Example:
        >>> cams = torch.zeros(1, 2, 2, 2); cams[0, 0, 0, 0] = 1.0
        >>> r = maxmin_mask(cams, torch.tensor([[10.0, 0.0]]), size=2)
        >>> r.shape, round(float(r[0, 0, 0, 0]), 3), round(float(r[0, 0, 1, 1]), 3)
        (torch.Size([1, 1, 2, 2]), 0.982, 0.018)
    """
    check_ndim(cams, "cams", 4, "(B, C, h, w)")
    check_floating(cams, "cams")
    check_ndim(logits, "logits", 2, "(B, C)")
    check_floating(logits, "logits")
    if tuple(logits.shape) != tuple(cams.shape[:2]):
        raise ShapeError(
            f"`logits` must have shape (B, C) = {tuple(cams.shape[:2])} to match `cams` {tuple(cams.shape)}, "
            f"got {tuple(logits.shape)}"
        )
    omega = check_number(omega, "omega", low=0.0, low_inclusive=False)
    sigma_prime = check_number(sigma_prime, "sigma_prime")
    probs = torch.softmax(logits.to(cams.dtype), dim=1)
    t_map = torch.einsum("bc,bchw->bhw", probs, cams)  # eq. 10
    t_up = cam_ops.normalize(cam_ops.upsample(t_map, size))  # per-sample min-max
    return torch.sigmoid(omega * (t_up - sigma_prime))[:, None]  # eq. 11


class MaxMinMask(nn.Module):
    """Module form of :func:`maxmin_mask` holding ω and σ′.

    Args:
        omega: sigmoid sharpness ω (paper: 8).
        sigma_prime: sigmoid offset σ′ (paper: 0.5).

    Shape:
        - cams: :math:`(B, C, h, w)`; logits: :math:`(B, C)`; output: :math:`(B, 1, H, W)`

    Example:
        >>> MaxMinMask()(torch.randn(2, 3, 4, 4), torch.randn(2, 3), size=(16, 16)).shape
        torch.Size([2, 1, 16, 16])
    """

    def __init__(self, omega: float = 8.0, sigma_prime: float = 0.5):
        super().__init__()
        self.omega = check_number(omega, "omega", low=0.0, low_inclusive=False)
        self.sigma_prime = check_number(sigma_prime, "sigma_prime")

    def forward(self, cams: torch.Tensor, logits: torch.Tensor, size: int | Sequence[int]) -> torch.Tensor:
        return maxmin_mask(cams, logits, size, self.omega, self.sigma_prime)

    def extra_repr(self) -> str:
        return f"omega={self.omega}, sigma_prime={self.sigma_prime}"
