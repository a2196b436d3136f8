"""Helpers shared by the erasing methods."""

from __future__ import annotations

import torch.nn as nn

__all__ = ["branch"]


def branch(in_channels: int, mid_channels: int | None, out_channels: int) -> nn.Sequential:
    """conv3×3-ReLU-conv3×3-ReLU-conv1×1 classifier branch (ACoL / SPG); ``mid_channels=None`` → one 1×1 conv."""
    if mid_channels is None:
        return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1))
    return nn.Sequential(
        nn.Conv2d(in_channels, mid_channels, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(mid_channels, mid_channels, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(mid_channels, out_channels, 1),
    )
