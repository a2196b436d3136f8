"""MAX-Pool head (Oquab et al. 2015): 1×1-conv class maps, class score = spatial maximum."""

from __future__ import annotations

import torch

from wsolkit.heads._base import check_features
from wsolkit.heads._registry import register_head
from wsolkit.heads.conv_pool import ConvPoolHead, Pooling, register_pooling

__all__ = ["max_pool", "MaxPooling", "MaxPool"]


def max_pool(maps: torch.Tensor) -> torch.Tensor:
    """Global max pooling of class maps: ``s_c = max_ij M_c(i, j)``.

    With ties the gradient is shared equally among the maximal locations (``torch.amax``).

    Args:
        maps: class maps.

    Returns:
        Class scores.

    Shape:
        - maps: :math:`(B, C, h, w)`
        - output: :math:`(B, C)`

    Example:
        >>> max_pool(torch.arange(16.0).view(1, 1, 4, 4))
        tensor([[15.]])
    """
    check_features(maps, name="maps")
    return maps.amax(dim=(-2, -1))


@register_pooling("max")
class MaxPooling(Pooling):
    """:func:`max_pool` as a module.

    Example:
        >>> MaxPooling()(torch.arange(4.0).view(1, 1, 2, 2))
        tensor([[3.]])
    """

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return max_pool(maps)


@register_head("max")
class MaxPool(ConvPoolHead):
    """MAX-Pool head: 1×1 convolution to class maps (the CAMs), logits = spatial max (Oquab et al. 2015).

    Args:
        in_channels: feature channels K.
        num_classes: classes C.
        bias: learn a per-class bias (added to the maps, hence to the logits).

    Shape:
        - input: :math:`(B, K, h, w)`
        - logits: :math:`(B, C)`; cams: :math:`(B, C, h, w)`

    Example:
        >>> head = MaxPool(in_channels=8, num_classes=2)
        >>> out = head(torch.randn(3, 8, 7, 7))
        >>> out.logits.shape, out.cams.shape
        (torch.Size([3, 2]), torch.Size([3, 2, 7, 7]))
    """

    def __init__(self, in_channels: int, num_classes: int, bias: bool = True):
        super().__init__(in_channels, num_classes, "max", bias=bias)
