"""Helpers shared by the heads."""

from __future__ import annotations

import torch

from wsolkit._checks import ShapeError, check_floating, check_ndim

__all__ = ["check_features"]


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
