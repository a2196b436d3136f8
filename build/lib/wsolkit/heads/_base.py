"""Helpers shared by the heads: feature checks and the top-k size rule of WILDCAT-like poolings."""

from __future__ import annotations

import numbers
from typing import Any

import torch

from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError, check_floating, check_ndim

__all__ = ["check_features", "check_k", "resolve_k"]


def check_features(features: torch.Tensor, in_channels: int | None = None, name: str = "features") -> torch.Tensor:
    """Check a ``(B, K, h, w)`` float feature tensor (and ``K == in_channels`` when given)."""
    check_ndim(features, name, 4, "(B, K, h, w)")
    check_floating(features, name)
    if in_channels is not None and features.shape[1] != in_channels:
        raise ShapeError(
            f"`{name}` has {features.shape[1]} channels but the head was built with in_channels={in_channels} "
            f"(got shape {tuple(features.shape)})"
        )
    return features


def check_k(k: Any, name: str, allow_zero: bool = False) -> int | float:
    """Validate a top-k size: an ``int >= 1`` is a count, a ``float`` in ``(0, 1)`` a fraction of ``h * w``.

    ``allow_zero`` also accepts the int ``0`` (for ``kmin``: no lowest-activation term). Anything else — ``1.0``,
    ``2.0``, ``0.0``, ``True``, a string — is a typed error, so a fraction can never be mistaken for a count.

    Example:
        >>> check_k(0.09, "kmax"), check_k(3, "kmax"), check_k(0, "kmin", allow_zero=True)
        (0.09, 3, 0)
    """
    low = 0 if allow_zero else 1
    if isinstance(k, bool) or not isinstance(k, numbers.Real):
        raise WSOLTypeError(
            f"`{name}` must be an int >= {low} (a count) or a float in (0, 1) (a fraction of h*w), got {k!r}"
        )
    if isinstance(k, numbers.Integral):
        k = int(k)
        if k < low:
            raise WSOLValueError(f"`{name}` must be an int >= {low} (a count) or a float in (0, 1), got {k}")
        return k
    k = float(k)
    if not 0.0 < k < 1.0:
        hint = " (use an int for a count, e.g. the number of locations h*w for all of them)" if k >= 1 else ""
        if k == 0.0 and allow_zero:
            hint = f" (use the int 0 for no `{name}` term)"
        raise WSOLValueError(f"`{name}` as a float is a fraction and must be in (0, 1), got {k}{hint}")
    return k


def resolve_k(k: int | float, n: int) -> int:
    """Number of selected locations among ``n``: ``min(k, n)`` for a count, ``max(1, round(k * n))`` for a fraction.

    A fraction always selects at least one location (Durand's ``get_positive_k`` may give 0 and divide by it).

    Example:
        >>> resolve_k(0.1, 49), resolve_k(0.01, 49), resolve_k(3, 2), resolve_k(0, 49)
        (5, 1, 2, 0)
    """
    if isinstance(k, int):
        return max(0, min(k, n))
    return max(1, min(n, int(round(k * n))))
