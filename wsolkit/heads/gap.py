"""GAP / CAM head (Zhou et al. 2016; survey eqs. 2-3)."""

from __future__ import annotations

import torch
import torch.nn as nn

from wsolkit._checks import check_int
from wsolkit.heads._base import check_features
from wsolkit.heads._registry import register_head
from wsolkit.output import WSOLOutput

__all__ = ["gap_pool", "GAP"]


def gap_pool(maps: torch.Tensor) -> torch.Tensor:
    """Global average pooling of class maps: ``s_c = (1 / hw) Σ_ij M_c(i, j)`` (survey eq. 3).

    Args:
        maps: class maps.

    Returns:
        Class scores.

    Shape:
        - maps: :math:`(B, C, h, w)`
        - output: :math:`(B, C)`

    Example:
        >>> gap_pool(torch.arange(16.0).view(1, 1, 4, 4))
        tensor([[7.5000]])
    """
    check_features(maps, name="maps")
    return maps.mean(dim=(-2, -1))


@register_head("gap")
class GAP(nn.Module):
    """Class activation mapping head: 1×1 convolution to class maps, then global average pooling.

    Class maps ``M_c = Σ_k W_ck F_k`` (survey eq. 2); logits ``s_c = mean_ij M_c(i, j) + b_c`` (eq. 3). Because
    averaging and the linear layer commute, this is exactly the classic GAP → linear classifier, and ``M`` is
    the CAM of Zhou et al. (2016) (the bias does not change a normalised map, so it is left out of ``cams``).

    Args:
        in_channels: feature channels K.
        num_classes: classes C.
        bias: learn a per-class bias on the logits.

    Shape:
        - input: :math:`(B, K, h, w)`
        - logits: :math:`(B, C)`; cams: :math:`(B, C, h, w)`

    Example:
        >>> head = GAP(in_channels=8, num_classes=2)
        >>> out = head(torch.randn(3, 8, 7, 7))
        >>> out.logits.shape, out.cams.shape
        (torch.Size([3, 2]), torch.Size([3, 2, 7, 7]))
    """

    def __init__(self, in_channels: int, num_classes: int, bias: bool = True):
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", low=1)
        self.num_classes = check_int(num_classes, "num_classes", low=1)
        self.classifier = nn.Conv2d(in_channels, num_classes, kernel_size=1, bias=False)
        self.bias = nn.Parameter(torch.zeros(num_classes)) if bias else None

    def forward(self, features: torch.Tensor) -> WSOLOutput:
        check_features(features, self.in_channels)
        cams = self.classifier(features)
        logits = gap_pool(cams)
        if self.bias is not None:
            logits = logits + self.bias
        return WSOLOutput(logits, cams, {})

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, num_classes={self.num_classes}, bias={self.bias is not None}"
