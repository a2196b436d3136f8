"""LSE head (Pinheiro & Collobert 2015; Sun et al. 2016; survey eq. 4): log-sum-exp pooling of class maps."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from wsolkit._checks import WSOLValueError, check_int, check_number
from wsolkit.heads._base import check_features
from wsolkit.heads._registry import register_head
from wsolkit.output import WSOLOutput

__all__ = ["lse_pool", "LSE"]


def lse_pool(maps: torch.Tensor, q: float | torch.Tensor = 5.0) -> torch.Tensor:
    """Log-sum-exp pooling (survey eq. 4): ``s_c = (1/q) log[(1/hw) Σ_ij exp(q M_c(i, j))]``.

    Computed in the stable form ``m + (1/q) log mean exp(q (M - m))`` with ``m = max M_c``, so it does not overflow
    for large ``q`` or large activations. Small ``q`` tends to the mean, large ``q`` to the maximum.

    Args:
        maps: class maps.
        q: sharpness ``q > 0`` (a float, or a positive scalar tensor, e.g. a learnable parameter).

    Returns:
        Class scores.

    Shape:
        - maps: :math:`(B, C, h, w)`
        - output: :math:`(B, C)`

    Example:
        >>> m = torch.tensor([[[[0.0, 1000.0]]]])
        >>> round(lse_pool(m, q=100.0).item(), 3)  # 1000 + log(1/2) / 100, no overflow
        999.993
    """
    check_features(maps, name="maps")
    if isinstance(q, torch.Tensor):
        if q.numel() != 1:
            raise WSOLValueError(f"`q` must be a scalar, got a tensor of shape {tuple(q.shape)}")
        if not bool(q.detach() > 0):
            raise WSOLValueError(f"`q` must be > 0, got {float(q)}")
    else:
        q = check_number(q, "q", low=0.0, low_inclusive=False)
    flat = maps.flatten(2)
    top = flat.amax(dim=-1, keepdim=True).detach()  # any constant shift is exact; detached for a clean gradient
    n = flat.shape[-1]
    lse = torch.logsumexp(q * (flat - top), dim=-1) - math.log(n)
    return top.squeeze(-1) + lse / q


@register_head("lse")
class LSE(nn.Module):
    """LSE head: 1×1 convolution to class maps (the CAMs), logits = :func:`lse_pool` with fixed or learnable ``q``.

    A learnable ``q`` is parametrised as ``q = exp(log_q)`` so it stays positive.

    Args:
        in_channels: feature channels K.
        num_classes: classes C.
        q: sharpness (initial value when learnable); survey Table 9 grid: 1-10.
        learnable: learn ``q``.
        bias: learn a per-class bias.

    Shape:
        - input: :math:`(B, K, h, w)`
        - logits: :math:`(B, C)`; cams: :math:`(B, C, h, w)`

    Example:
        >>> head = LSE(in_channels=8, num_classes=2, q=5.0, learnable=True)
        >>> out = head(torch.randn(3, 8, 7, 7))
        >>> out.logits.shape, round(float(head.q.detach()), 4)
        (torch.Size([3, 2]), 5.0)
    """

    def __init__(self, in_channels: int, num_classes: int, q: float = 5.0, learnable: bool = False, bias: bool = True):
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", low=1)
        self.num_classes = check_int(num_classes, "num_classes", low=1)
        q = check_number(q, "q", low=0.0, low_inclusive=False)
        self.learnable = bool(learnable)
        self.classifier = nn.Conv2d(in_channels, num_classes, kernel_size=1, bias=bool(bias))
        self._q = q
        self.log_q = nn.Parameter(torch.tensor(math.log(q))) if self.learnable else None

    @property
    def q(self) -> torch.Tensor | float:
        """Current sharpness ``q`` (a tensor when learnable, else the fixed float)."""
        return self.log_q.exp() if self.log_q is not None else self._q

    def forward(self, features: torch.Tensor) -> WSOLOutput:
        check_features(features, self.in_channels)
        cams = self.classifier(features)
        q = self.q
        if isinstance(q, torch.Tensor):
            q = q.to(cams.dtype)
        return WSOLOutput(lse_pool(cams, q), cams, {})

    def extra_repr(self) -> str:
        q = self.q.detach() if isinstance(self.q, torch.Tensor) else self.q
        return (
            f"in_channels={self.in_channels}, num_classes={self.num_classes}, q={float(q):.4g}, "
            f"learnable={self.learnable}"
        )
