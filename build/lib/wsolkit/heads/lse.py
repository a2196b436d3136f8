"""LSE head (Pinheiro & Collobert 2015; Sun et al. 2016; survey eq. 4): log-sum-exp pooling of class maps."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from wsolkit._checks import WSOLValueError, check_number
from wsolkit.heads._base import check_features
from wsolkit.heads._registry import register_head
from wsolkit.heads.conv_pool import ConvPoolHead, Pooling, register_pooling

__all__ = ["lse_pool", "LSEPooling", "LSE"]


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


@register_pooling("lse")
class LSEPooling(Pooling):
    """:func:`lse_pool` with a fixed or learnable sharpness ``q`` (learnable: ``q = exp(log_q)``, so it stays > 0).

    Args:
        q: sharpness (initial value when learnable).
        learnable: learn ``q``.

    Example:
        >>> LSEPooling(q=1.0)(torch.zeros(1, 2, 3, 3))
        tensor([[0., 0.]])
    """

    def __init__(self, q: float = 5.0, learnable: bool = False):
        super().__init__()
        self._q = check_number(q, "q", low=0.0, low_inclusive=False)
        self.learnable = bool(learnable)
        self.log_q = nn.Parameter(torch.tensor(math.log(self._q))) if self.learnable else None

    @property
    def q(self) -> torch.Tensor | float:
        """Current sharpness ``q`` (a tensor when learnable, else the fixed float)."""
        return self.log_q.exp() if self.log_q is not None else self._q

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        q = self.q
        return lse_pool(maps, q.to(maps.dtype) if isinstance(q, torch.Tensor) else q)

    def extra_repr(self) -> str:
        q = self.q.detach() if isinstance(self.q, torch.Tensor) else self.q
        return f"q={float(q):.4g}, learnable={self.learnable}"


@register_head("lse")
class LSE(ConvPoolHead):
    """LSE head: 1×1 convolution to class maps (the CAMs), logits = :func:`lse_pool` with fixed or learnable ``q``.

    Args:
        in_channels: feature channels K.
        num_classes: classes C.
        q: sharpness (initial value when learnable); survey Table 9 grid: 1-10.
        learnable: learn ``q`` (parametrised as ``q = exp(log_q)``).
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

    # earlier releases held log_q on the head itself
    _legacy_keys = {"log_q": "pool.log_q"}

    def __init__(self, in_channels: int, num_classes: int, q: float = 5.0, learnable: bool = False, bias: bool = True):
        super().__init__(in_channels, num_classes, "lse", bias=bias, q=q, learnable=learnable)

    @property
    def q(self) -> torch.Tensor | float:
        """Current sharpness ``q``."""
        return self.pool.q

    @property
    def learnable(self) -> bool:
        """Whether ``q`` is learnt."""
        return self.pool.learnable

    @property
    def log_q(self) -> torch.Tensor | None:
        """The learnable ``log q`` parameter (``None`` when ``q`` is fixed)."""
        return self.pool.log_q
