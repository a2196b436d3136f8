"""Helpers shared by the heads."""

from __future__ import annotations

from typing import Any

import torch

from wsolkit._checks import (
    ShapeError,
    WSOLTypeError,
    check_floating,
    check_int,
    check_ndim,
    check_number,
)

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


def check_k(k: Any, name: str) -> int | float:
    """Validate a top-k size: a positive ``int`` (a count) or a float in ``(0, 1]`` (a fraction of ``h * w``)."""
    if isinstance(k, bool) or not isinstance(k, (int, float)):
        raise WSOLTypeError(f"`{name}` must be a positive int (count) or a float in (0, 1] (fraction), got {k!r}")
    if isinstance(k, int):
        return check_int(k, name, low=1)
    return check_number(k, name, low=0.0, high=1.0, low_inclusive=False)


def resolve_k(k: int | float, n: int) -> int:
    """Number of selected locations among ``n``: ``min(k, n)`` for an int, ``max(1, round(k * n))`` for a fraction.

    Example:
        >>> resolve_k(0.1, 49), resolve_k(0.01, 49), resolve_k(3, 2), resolve_k(1.0, 49)
        (5, 1, 2, 49)
    """
    if isinstance(k, int):
        return max(1, min(k, n))
    return max(1, min(n, int(round(k * n))))
