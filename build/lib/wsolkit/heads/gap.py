"""GAP / CAM head (Zhou et al. 2016; survey eqs. 2-3): class maps averaged over space."""

from __future__ import annotations

import torch

from wsolkit.heads._base import check_features
from wsolkit.heads._registry import register_head
from wsolkit.heads.conv_pool import ConvPoolHead, Pooling, register_pooling

__all__ = ["gap_pool", "GAPPooling", "GAP"]


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


@register_pooling("gap")
class GAPPooling(Pooling):
    """:func:`gap_pool` as a module.

    Example:
        >>> GAPPooling()(torch.ones(1, 2, 3, 3))
        tensor([[1., 1.]])
    """

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return gap_pool(maps)


@register_head("gap")
class GAP(ConvPoolHead):
    """Class activation mapping head: 1×1 convolution to class maps, then global average pooling.

    Class maps ``M_c = Σ_k W_ck F_k + b_c`` (survey eq. 2); logits ``s_c = mean_ij M_c(i, j)`` (eq. 3). Averaging
    and the linear layer commute, so this is exactly the classic GAP → linear classifier and ``M`` is the CAM of
    Zhou et al. (2016).

    Args:
        in_channels: feature channels K.
        num_classes: classes C.
        bias: learn a per-class bias.

    Shape:
        - input: :math:`(B, K, h, w)`
        - logits: :math:`(B, C)`; cams: :math:`(B, C, h, w)`

    Example:
        >>> head = GAP(in_channels=8, num_classes=2)
        >>> out = head(torch.randn(3, 8, 7, 7))
        >>> out.logits.shape, out.cams.shape
        (torch.Size([3, 2]), torch.Size([3, 2, 7, 7]))
    """

    # earlier releases kept the bias outside the convolution
    _legacy_keys = {"bias": "classifier.bias"}

    def __init__(self, in_channels: int, num_classes: int, bias: bool = True):
        super().__init__(in_channels, num_classes, "gap", bias=bias)
