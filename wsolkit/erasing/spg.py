"""Self-Produced Guidance (SPG, Zhang et al. 2018): seed masks from the class map supervise side branches."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from wsolkit import cams as cam_ops
from wsolkit._checks import (
    WSOLTypeError,
    WSOLValueError,
    check_floating,
    check_int,
    check_labels,
    check_ndim,
    check_probability,
)
from wsolkit.heads._base import check_features
from wsolkit.heads._registry import register_head
from wsolkit.output import WSOLOutput

__all__ = ["SPG_THRESHOLDS", "spg_seeds", "masked_bce", "SPG", "spg_loss"]

#: Default (high, low) thresholds of the three guidance masks (B1, B2, C) — survey Table 9 grid.
SPG_THRESHOLDS: tuple[tuple[float, float], ...] = ((0.7, 0.01), (0.5, 0.05), (0.7, 0.1))


def spg_seeds(attention: torch.Tensor, high: float, low: float, ignore_index: int = 255) -> torch.Tensor:
    """Self-produced guidance mask: foreground seeds (1) where ``attention >= high``, background seeds (0) where
    ``attention < low``, ``ignore_index`` in between.

    Args:
        attention: maps normalised to ``[0, 1]``.
        high: foreground threshold.
        low: background threshold, ``low <= high``.
        ignore_index: label of the uncertain pixels.

    Returns:
        ``int64`` mask.

    Shape:
        - attention: :math:`(B, H, W)`
        - output: :math:`(B, H, W)`

    Example:
        >>> spg_seeds(torch.tensor([[[0.0, 0.3, 0.9]]]), high=0.7, low=0.1)
        tensor([[[  0, 255,   1]]])
    """
    check_ndim(attention, "attention", 3, "(B, H, W)")
    check_floating(attention, "attention")
    high = check_probability(high, "high")
    low = check_probability(low, "low")
    if low > high:
        raise WSOLValueError(f"`low` must be <= `high`, got low={low}, high={high}")
    out = torch.full(attention.shape, ignore_index, dtype=torch.int64, device=attention.device)
    out[attention < low] = 0
    out[attention >= high] = 1
    return out


def masked_bce(logits: torch.Tensor, seeds: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """Mean binary cross-entropy over the non-ignored pixels (0 with a gradient path when all are ignored).

    Args:
        logits: side-branch logits.
        seeds: mask from :func:`spg_seeds`.
        ignore_index: label to skip.

    Shape:
        - logits: :math:`(B, H, W)`; seeds: :math:`(B, H, W)`

    Example:
        >>> masked_bce(torch.zeros(1, 1, 2), torch.tensor([[[1, 255]]]))
        tensor(0.6931)
    """
    valid = seeds != ignore_index
    if not bool(valid.any()):
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[valid], seeds[valid].to(logits.dtype))


@register_head("spg")
class SPG(nn.Module):
    """SPG head: a classification path (SPG-A) and three self-guided side branches (SPG-B1, B2, C).

    The features go through two conv3×3-ReLU layers (SPG-A2) and a 1×1 classifier to class maps (``cams``; GAP
    logits). Side branches B1 and B2 (conv3×3-ReLU-conv1×1 → 1 map each) read the head's input features; side
    branch C reads the SPG-A2 features. Their targets are produced by :func:`spg_loss` from the network itself:
    B1 / B2 from the min-max normalised class map of the true class, C from the fused, detached B1/B2 maps. As
    features are shared, the guidance shapes the representation that produces the CAM. In the original the side
    branches sit on two intermediate Inception stages; here they sit on the head input so that SPG works on any
    backbone.

    Args:
        in_channels: feature channels K.
        num_classes: classes C.
        mid_channels: width of the convolutions.
        reduction: backbone stride; the seeds and side maps are compared at ``(h·reduction, w·reduction)`` — the
            image resolution as in the paper. ``1`` keeps the feature resolution.

    Shape:
        - input: :math:`(B, K, h, w)`
        - logits: :math:`(B, C)`; cams: :math:`(B, C, h, w)`; aux ``side_b1``, ``side_b2``, ``side_c``:
          :math:`(B, 1, h, w)` logits, ``size``: the comparison resolution

    Example:
        >>> head = SPG(in_channels=8, num_classes=2, mid_channels=16, reduction=4)
        >>> out = head(torch.randn(2, 8, 5, 5))
        >>> out.cams.shape, out.aux["side_c"].shape, out.aux["size"]
        (torch.Size([2, 2, 5, 5]), torch.Size([2, 1, 5, 5]), (20, 20))
    """

    def __init__(self, in_channels: int, num_classes: int, mid_channels: int = 512, reduction: int = 1):
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", low=1)
        self.num_classes = check_int(num_classes, "num_classes", low=1)
        self.mid_channels = check_int(mid_channels, "mid_channels", low=1)
        self.reduction = check_int(reduction, "reduction", low=1)
        m = mid_channels
        self.a2 = nn.Sequential(
            nn.Conv2d(in_channels, m, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(m, m, 3, padding=1), nn.ReLU(inplace=True),
        )
        self.classifier = nn.Conv2d(m, num_classes, 1)
        self.side_b1 = self._side(in_channels, m)
        self.side_b2 = self._side(in_channels, m)
        self.side_c = self._side(m, m)

    @staticmethod
    def _side(c_in: int, m: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(c_in, m, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(m, 1, 1))

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> WSOLOutput:
        check_features(features, self.in_channels)
        if labels is not None:  # accepted for a uniform training step; SPG needs the labels only in the loss
            check_labels(labels, "labels", features.shape[0], self.num_classes)
        g = self.a2(features)
        cams = self.classifier(g)
        h, w = features.shape[-2:]
        aux = {
            "side_b1": self.side_b1(features),
            "side_b2": self.side_b2(features),
            "side_c": self.side_c(g),
            "size": (h * self.reduction, w * self.reduction),
        }
        return WSOLOutput(cams.mean(dim=(-2, -1)), cams, aux)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, num_classes={self.num_classes}, mid_channels={self.mid_channels}, "
            f"reduction={self.reduction}"
        )


def spg_loss(
    output: WSOLOutput,
    labels: torch.Tensor,
    thresholds: Sequence[Sequence[float]] = SPG_THRESHOLDS,
    ignore_index: int = 255,
) -> torch.Tensor:
    """SPG loss: ``CE(s, y) + BCE(B1, M1) + BCE(B2, M2) + BCE(C, M3)`` with ignored uncertain pixels.

    ``M1``/``M2`` are :func:`spg_seeds` of the detached, min-max normalised class map of the true class with the
    thresholds ``(δ1h, δ1l)`` / ``(δ2h, δ2l)``; ``M3`` uses ``(δ3h, δ3l)`` on the fused guidance
    ``(σ(B1) + σ(B2)) / 2`` (detached). Every map is bilinearly upsampled to ``output.aux["size"]`` first (the
    image resolution when the head was given the backbone's ``reduction``).

    Args:
        output: output of :class:`SPG`.
        labels: class indices ``(B,)``.
        thresholds: three ``(high, low)`` pairs (defaults ``(0.7, 0.01), (0.5, 0.05), (0.7, 0.1)``).
        ignore_index: label of ignored pixels.

    Returns:
        Scalar loss.

    Example:
        >>> head = SPG(4, 2, mid_channels=8, reduction=2)
        >>> y = torch.tensor([0, 1])
        >>> spg_loss(head(torch.randn(2, 4, 3, 3)), y).ndim
        0
    """
    if not isinstance(output, WSOLOutput) or "side_c" not in output.aux:
        raise WSOLTypeError("`output` must be the WSOLOutput of an SPG head (with aux['side_b1'/'side_b2'/'side_c'])")
    pairs = [tuple(p) for p in thresholds]
    if len(pairs) != 3 or any(len(p) != 2 for p in pairs):
        raise WSOLValueError(f"`thresholds` must be three (high, low) pairs, got {thresholds!r}")
    check_labels(labels, "labels", output.logits.shape[0], output.logits.shape[1])
    size = output.aux["size"]
    attention = cam_ops.normalize(cam_ops.upsample(cam_ops.select(output.cams.detach(), labels), size))
    b1 = cam_ops.upsample(output.aux["side_b1"], size)[:, 0]
    b2 = cam_ops.upsample(output.aux["side_b2"], size)[:, 0]
    c = cam_ops.upsample(output.aux["side_c"], size)[:, 0]
    fused = (torch.sigmoid(b1.detach()) + torch.sigmoid(b2.detach())) / 2
    (h1, l1), (h2, l2), (h3, l3) = pairs
    loss = F.cross_entropy(output.logits, labels)
    loss = loss + masked_bce(b1, spg_seeds(attention, h1, l1, ignore_index), ignore_index)
    loss = loss + masked_bce(b2, spg_seeds(attention, h2, l2, ignore_index), ignore_index)
    loss = loss + masked_bce(c, spg_seeds(fused, h3, l3, ignore_index), ignore_index)
    return loss
