"""Extended log-barrier (ELB) of Kervadec et al. (2019/2022) for inequality constraints ``z <= 0``."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from wsolkit._checks import check_floating, check_number

__all__ = ["elb", "ELB"]


def elb(z: torch.Tensor, t: float) -> torch.Tensor:
    """Extended log-barrier penalty of the constraint ``z <= 0``, element-wise.

    ``ψ_t(z) = −(1/t)·log(−z)`` if ``z <= −1/t²``, else ``t·z − (1/t)·log(1/t²) + 1/t`` — the linear extension
    is the tangent at ``z = −1/t²`` (value ``(2/t)·log t``, slope ``t``), so ψ is C¹ and defined for every ``z``
    (no feasible starting point needed). Larger ``t`` approaches the hard constraint.

    Args:
        z: constraint values (feasible when ``<= 0``).
        t: barrier parameter, > 0.

    Returns:
        The penalty, same shape as ``z``.

    Example:
        >>> t = 5.0
        >>> z = torch.tensor([-1.0, -1 / t**2, 0.5])
        >>> elb(z, t)
        tensor([-0.0000, 0.6438, 3.3438])
    """
    check_floating(z, "z")
    t = check_number(t, "t", low=0.0, low_inclusive=False)
    edge = -1.0 / (t * t)
    inside = z <= edge
    safe = torch.where(inside, z, torch.full_like(z, edge))
    barrier = -torch.log(-safe) / t
    linear = t * z - math.log(1.0 / (t * t)) / t + 1.0 / t
    return torch.where(inside, barrier, linear)


class ELB(nn.Module):
    """Extended log-barrier with the usual schedule on ``t`` (``t ← min(t·factor, t_max)`` at each :meth:`step`).

    Args:
        t0: initial ``t``.
        factor: multiplicative increase per call to :meth:`step` (typically once per epoch).
        t_max: upper bound on ``t``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` over the constraint values.

    Shape:
        - input: any shape; output: scalar (or same as input for ``reduction="none"``).

    Example:
        >>> barrier = ELB(t0=1.0, factor=1.01, t_max=10.0)
        >>> loss = barrier(torch.tensor([-2.0, 1.0]))
        >>> barrier.step(); round(barrier.t, 2)
        1.01
    """

    def __init__(self, t0: float = 1.0, factor: float = 1.01, t_max: float = 10.0, reduction: str = "mean"):
        super().__init__()
        check_number(t0, "t0", low=0.0, low_inclusive=False)
        check_number(factor, "factor", low=1.0)
        check_number(t_max, "t_max", low=t0)
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"`reduction` must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.t0, self.factor, self.t_max, self.reduction = float(t0), float(factor), float(t_max), reduction
        self.register_buffer("_t", torch.tensor(float(t0), dtype=torch.float64))

    @property
    def t(self) -> float:
        """The current barrier parameter."""
        return float(self._t)

    def step(self) -> None:
        """Advance the schedule: ``t ← min(t·factor, t_max)``."""
        self._t.fill_(min(self.t * self.factor, self.t_max))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = elb(z, self.t)
        if self.reduction == "mean":
            return out.mean()
        if self.reduction == "sum":
            return out.sum()
        return out

    def extra_repr(self) -> str:
        return f"t={self.t:.4g}, factor={self.factor}, t_max={self.t_max}, reduction={self.reduction!r}"
