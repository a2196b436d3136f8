"""MAX-Pool head (Oquab et al. 2015): 1×1-conv class maps, class score = spatial maximum."""

from __future__ import annotations

import torch
import torch.nn as nn

from wsolkit._checks import check_int
from wsolkit.heads._base import check_features
from wsolkit.heads._registry import register_head
from wsolkit.output import WSOLOutput

__all__ = ["max_pool", "MaxPool"]


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


@register_head("max")
class MaxPool(nn.Module):
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
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", low=1)
        self.num_classes = check_int(num_classes, "num_classes", low=1)
        self.classifier = nn.Conv2d(in_channels, num_classes, kernel_size=1, bias=bool(bias))

    def forward(self, features: torch.Tensor) -> WSOLOutput:
        check_features(features, self.in_channels)
        cams = self.classifier(features)
        return WSOLOutput(max_pool(cams), cams, {})

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, num_classes={self.num_classes}, bias={self.classifier.bias is not None}"
        )
