"""Bottom-up pooling heads as registry methods: a backbone plus one head, ``WSOLModel`` under the protocol."""

from __future__ import annotations

import functools
from typing import Any

import torch.nn as nn

from wsolkit.heads._registry import create_head
from wsolkit.method import register_method, resolve_backbone
from wsolkit.models import WSOLModel

__all__ = ["bottom_up_method"]


def bottom_up_method(
    head: str,
    num_classes: int,
    backbone: str | nn.Module = "resnet18",
    pretrained: bool = False,
    output_stride: int = 8,
    backbone_options: dict[str, Any] | None = None,
    **head_options: Any,
) -> WSOLModel:
    """A :class:`~wsolkit.models.WSOLModel` of a backbone and the registered head ``head``.

    Args:
        head: a name of :func:`wsolkit.list_heads`.
        num_classes: classes K.
        backbone: a backbone name (:func:`wsolkit.create_backbone`) or a module with ``out_channels``.
        pretrained: pretrained backbone weights (by name only).
        output_stride: backbone output stride when built by name (8: maps at 1/8 of the input).
        backbone_options: extra keyword arguments of :func:`wsolkit.create_backbone`.
        **head_options: the head's hyper-parameters.

    Example:
        >>> m = bottom_up_method("max", 3, backbone="smallcnn")
        >>> m(torch.rand(1, 3, 32, 32)).cams.shape
        torch.Size([1, 3, 4, 4])
    """
    opts = dict(backbone_options or {})
    bb = resolve_backbone(backbone, pretrained, output_stride, **opts)
    return WSOLModel(bb, create_head(head, bb.out_channels, num_classes, **head_options))


for _name in ("gap", "max", "lse", "wildcat", "prm", "deepmil"):
    register_method(_name, family="pooling")(functools.partial(bottom_up_method, _name))
