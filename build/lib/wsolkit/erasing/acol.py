"""Adversarial Complementary Learning (ACoL, Zhang et al. 2018): two classifiers, the second on erased features."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from wsolkit import cams as cam_ops
from wsolkit._checks import ShapeError, WSOLTypeError, check_floating, check_int, check_labels, check_ndim, check_number
from wsolkit.erasing._common import branch
from wsolkit.heads._base import check_features
from wsolkit.heads._registry import register_head
from wsolkit.output import LossOutput, WSOLOutput

__all__ = ["acol_erase", "ACoL", "acol_loss"]


def acol_erase(
    features: torch.Tensor, maps: torch.Tensor, delta: float = 0.7
) -> tuple[torch.Tensor, torch.Tensor]:
    """Erase the features where the min-max normalised map is ``>= delta`` (ACoL's adversarial erasing).

    The map is detached and min-max normalised per image (:func:`wsolkit.cams.normalize`, a constant map becomes
    zeros, so nothing is erased), then upsampled (bilinear) if its size differs from the features.

    Args:
        features: features fed to branch B.
        maps: the branch-A map of the target class of each image.
        delta: erasing threshold in ``(0, 1)``.

    Returns:
        ``(erased features, erased region)``, the region being a boolean ``(B, h, w)`` mask.

    Shape:
        - features: :math:`(B, K, h, w)`; maps: :math:`(B, h', w')`
        - output: :math:`(B, K, h, w)` and :math:`(B, h, w)`

    Example:
        >>> f = torch.ones(1, 2, 1, 3)
        >>> erased, region = acol_erase(f, torch.tensor([[[0.0, 0.5, 1.0]]]), delta=0.7)
        >>> region
        tensor([[[False, False,  True]]])
    """
    check_features(features)
    check_ndim(maps, "maps", 3, "(B, h, w)")
    check_floating(maps, "maps")
    delta = check_number(delta, "delta", 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    if maps.shape[0] != features.shape[0]:
        raise ShapeError(
            f"`maps` {tuple(maps.shape)} and `features` {tuple(features.shape)} have different batch sizes"
        )
    norm = cam_ops.normalize(cam_ops.upsample(maps.detach(), features.shape[-2:]))
    region = norm >= delta
    return features * (~region)[:, None].to(features.dtype), region


@register_head("acol")
class ACoL(nn.Module):
    """ACoL head: classifier A on the features, classifier B on the features erased where A's map is high.

    Each branch is conv3×3-ReLU-conv3×3-ReLU-conv1×1 to ``C`` class maps with GAP logits. Branch B sees the
    features erased by :func:`acol_erase` with the detached map of A for the target class: the label when given
    (``uses_labels``: :class:`~wsolkit.models.WSOLModel` passes the labels to the head), else A's prediction. The
    objective is ``CE(A) + CE(B)`` (:meth:`loss`).

    ``cams`` (raw evidence) are the element-wise maximum of the two branches' raw class maps, ``max(M_A, M_B)``:
    both are trained through GAP + cross-entropy on the same logit scale, so their maximum is the evidence of the
    stronger branch at each location. The authors' localisation map (``xiaomengyc/ACoL``,
    ``get_localization_maps``) is the maximum of the per-map min-max normalised maps, ``max(norm(M_A),
    norm(M_B))``, in ``[0, 1]``: it is in ``aux["fused"]``, next to the per-branch maps ``aux["cams_a"]``,
    ``aux["cams_b"]``.

    Args:
        in_channels: feature channels K.
        num_classes: classes C.
        delta: erasing threshold δ in ``(0, 1)`` (survey grid: 0.5-0.9).
        mid_channels: width of the branch convolutions (1024 in the original); ``None`` → a single 1×1 conv.

    Shape:
        - input: :math:`(B, K, h, w)`; labels :math:`(B,)` (optional)
        - logits: :math:`(B, C)` (branch A); cams: :math:`(B, C, h, w)`;
          aux: ``logits_b`` :math:`(B, C)`, ``cams_a``, ``cams_b``, ``fused`` :math:`(B, C, h, w)`,
          ``erased`` :math:`(B, h, w)` (bool)

    Example:
        >>> head = ACoL(in_channels=8, num_classes=3, mid_channels=16)
        >>> y = torch.tensor([0, 2])
        >>> out = head(torch.randn(2, 8, 6, 6), labels=y)
        >>> out.logits.shape, out.cams.shape, out.aux["logits_b"].shape
        (torch.Size([2, 3]), torch.Size([2, 3, 6, 6]), torch.Size([2, 3]))
        >>> sorted(head.loss(out, y).terms)
        ['ce_a', 'ce_b']
    """

    #: the target class of the erasing is the label at training time
    uses_labels = True

    def __init__(self, in_channels: int, num_classes: int, delta: float = 0.7, mid_channels: int | None = 1024):
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", low=1)
        self.num_classes = check_int(num_classes, "num_classes", low=1)
        self.delta = check_number(delta, "delta", 0.0, 1.0, low_inclusive=False, high_inclusive=False)
        if mid_channels is not None:
            check_int(mid_channels, "mid_channels", low=1)
        self.mid_channels = mid_channels
        self.branch_a = branch(in_channels, mid_channels, num_classes)
        self.branch_b = branch(in_channels, mid_channels, num_classes)

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> WSOLOutput:
        check_features(features, self.in_channels)
        cams_a = self.branch_a(features)
        logits_a = cams_a.mean(dim=(-2, -1))
        if labels is None:
            target = logits_a.argmax(1)
        else:
            target = check_labels(labels, "labels", features.shape[0], self.num_classes)
        erased, region = acol_erase(features, cam_ops.select(cams_a, target), self.delta)
        cams_b = self.branch_b(erased)
        logits_b = cams_b.mean(dim=(-2, -1))
        cams = torch.maximum(cams_a, cams_b)
        fused = torch.maximum(cam_ops.normalize(cams_a.detach()), cam_ops.normalize(cams_b.detach()))
        aux = {"logits_b": logits_b, "cams_a": cams_a, "cams_b": cams_b, "fused": fused, "erased": region}
        return WSOLOutput(logits_a, cams, aux)

    def loss(self, output: WSOLOutput, labels: torch.Tensor) -> LossOutput:
        """``CE(s_A, y) + CE(s_B, y)`` (:func:`acol_loss`)."""
        return acol_loss(output, labels)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, num_classes={self.num_classes}, delta={self.delta}, "
            f"mid_channels={self.mid_channels}"
        )


def acol_loss(output: WSOLOutput, labels: torch.Tensor) -> LossOutput:
    """ACoL loss ``CE(s_A, y) + CE(s_B, y)``.

    Args:
        output: output of :class:`ACoL` (``aux["logits_b"]`` required).
        labels: class indices ``(B,)``.

    Returns:
        ``LossOutput(total, {"ce_a", "ce_b"})``.

    Example:
        >>> head = ACoL(4, 2, mid_channels=None)
        >>> y = torch.tensor([0, 1])
        >>> acol_loss(head(torch.randn(2, 4, 3, 3), y), y).total.ndim
        0
    """
    if not isinstance(output, WSOLOutput) or "logits_b" not in output.aux:
        raise WSOLTypeError("`output` must be the WSOLOutput of an ACoL head (with aux['logits_b'])")
    check_labels(labels, "labels", output.logits.shape[0], output.logits.shape[1])
    ce_a = F.cross_entropy(output.logits, labels)
    ce_b = F.cross_entropy(output.aux["logits_b"], labels)
    return LossOutput(ce_a + ce_b, {"ce_a": ce_a.detach(), "ce_b": ce_b.detach()})
