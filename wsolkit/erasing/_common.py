"""Helpers shared by the erasing methods."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from wsolkit.output import WSOLOutput

__all__ = ["labelled_step", "branch"]


def labelled_step(
    loss_fn: Callable[[WSOLOutput, torch.Tensor], torch.Tensor],
) -> Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]:
    """A ``step_fn`` for :func:`wsolkit.training.fit` that passes the labels to the head.

    Heads such as :class:`~wsolkit.erasing.ACoL` use the ground-truth class at training time; a plain
    ``model(x)`` cannot pass it. The returned function calls ``model.head(model.backbone(x), labels=y)`` and
    then ``loss_fn(output, y)``.

    Example:
        >>> from wsolkit.backbones import create_backbone
        >>> from wsolkit.models import WSOLModel
        >>> from wsolkit.erasing import ACoL, acol_loss
        >>> bb = create_backbone("smallcnn", output_stride=8, width=4)
        >>> model = WSOLModel(bb, ACoL(bb.out_channels, 2, mid_channels=8))
        >>> step = labelled_step(acol_loss)
        >>> step(model, torch.randn(2, 3, 32, 32), torch.tensor([0, 1])).ndim
        0
    """

    def step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return loss_fn(model.head(model.backbone(x), labels=y), y)

    return step


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
