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
from wsolkit.output import LossOutput, WSOLOutput

__all__ = ["SPG_THRESHOLDS", "SPG_GUIDANCE", "spg_seeds", "masked_bce", "SPG", "spg_loss"]

#: What each side branch learns from: ``"reference"`` (the authors' ``get_loss``) or ``"attention"``.
SPG_GUIDANCE = ("reference", "attention")

#: Default ``(high, low)`` seed thresholds of the three guidance masks ``(B1, B2, C)`` per guidance. ``"reference"``:
#: the values of ``xiaomengyc/SPG`` ``get_loss``; ``"attention"``: the survey's grid values used by wsolkit <= 0.1.
SPG_THRESHOLDS: dict[str, tuple[tuple[float, float], ...]] = {
    "reference": ((0.5, 0.05), (0.7, 0.05), (0.7, 0.1)),
    "attention": ((0.7, 0.01), (0.5, 0.05), (0.7, 0.1)),
}


def spg_seeds(
    attention: torch.Tensor,
    high: float,
    low: float,
    ignore_index: int = 255,
    min_foreground: int = 30,
    fallback: float = 0.7,
) -> torch.Tensor:
    """Self-produced guidance mask: foreground seeds (1), background seeds (0), ``ignore_index`` in between.

    As the authors' ``mark_obj`` / ``mark_bg`` (``xiaomengyc/SPG``, ``inception3_spg.py``): foreground where
    ``attention > high``; when an image has fewer than ``min_foreground`` such pixels, its foreground is
    ``attention > fallback · max(attention)`` instead; then background where ``attention < low`` (background wins
    where both hold). One difference: the reference keeps the fallback threshold of one image for the next images
    of the batch (``threshold`` is reassigned inside the loop); here every image starts from ``high``.

    Args:
        attention: maps in ``[0, 1]`` (a normalised class map or a side branch's sigmoid).
        high: foreground threshold.
        low: background threshold, ``low <= high``.
        ignore_index: label of the uncertain pixels.
        min_foreground: foreground pixels below which the fallback applies (``0``: never).
        fallback: fallback threshold as a fraction of the image's maximum.

    Returns:
        ``int64`` mask.

    Shape:
        - attention: :math:`(B, H, W)`
        - output: :math:`(B, H, W)`

    Example:
        >>> spg_seeds(torch.tensor([[[0.0, 0.3, 0.9]]]), high=0.7, low=0.1, min_foreground=0)
        tensor([[[  0, 255,   1]]])
        >>> spg_seeds(torch.tensor([[[0.0, 0.3, 0.4]]]), high=0.7, low=0.1)  # no pixel > 0.7: > 0.7 * 0.4
        tensor([[[0, 1, 1]]])
    """
    check_ndim(attention, "attention", 3, "(B, H, W)")
    check_floating(attention, "attention")
    high = check_probability(high, "high")
    low = check_probability(low, "low")
    if low > high:
        raise WSOLValueError(f"`low` must be <= `high`, got low={low}, high={high}")
    check_int(min_foreground, "min_foreground", low=0)
    fallback = check_probability(fallback, "fallback")
    att = attention.detach()
    fg = att > high
    if min_foreground > 0:
        few = fg.flatten(1).sum(1) < min_foreground
        if bool(few.any()):
            peak = att.flatten(1).amax(1).view(-1, 1, 1)
            fg = torch.where(few.view(-1, 1, 1), att > fallback * peak, fg)
    out = torch.full(att.shape, ignore_index, dtype=torch.int64, device=att.device)
    out[fg] = 1
    out[att < low] = 0
    return out


def masked_bce(logits: torch.Tensor, seeds: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """Mean binary cross-entropy over the non-ignored pixels (0 with a gradient path when all are ignored).

    The reference (``loss_saliency``) returns NaN when every pixel is ignored; here the term is 0.

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


def _check_guidance(guidance: str) -> str:
    if guidance not in SPG_GUIDANCE:
        raise WSOLValueError(f"`guidance` must be one of {SPG_GUIDANCE}, got {guidance!r}")
    return guidance


def _check_thresholds(thresholds: Sequence[Sequence[float]] | None, guidance: str) -> tuple[tuple[float, float], ...]:
    if thresholds is None:
        return SPG_THRESHOLDS[guidance]
    try:
        pairs = tuple(tuple(float(v) for v in p) for p in thresholds)
    except (TypeError, ValueError):
        pairs = ()
    if len(pairs) != 3 or any(len(p) != 2 for p in pairs):
        raise WSOLValueError(f"`thresholds` must be three (high, low) pairs for (B1, B2, C), got {thresholds!r}")
    return pairs


@register_head("spg")
class SPG(nn.Module):
    """SPG head: a classification path (SPG-A) and three self-guided side branches (SPG-B1, B2, C).

    The features go through two conv3×3-ReLU layers (SPG-A2) and a 1×1 classifier to class maps (``cams``, raw;
    GAP logits). Side branches B1 and B2 (conv3×3-ReLU-conv1×1 → 1 map each) read the head's input features; side
    branch C reads the SPG-A2 features. Their targets come from the network itself (:func:`spg_loss`, called by
    :meth:`loss`): with ``guidance="reference"`` (default, the authors' ``get_loss``) B2 learns from the seeds of
    the class map of the true class, B1 from the seeds of ``σ(B2)``, C from the seeds of ``(σ(B1) + σ(B2)) / 2``.
    ``guidance="attention"`` (wsolkit <= 0.1) trains both B1 and B2 on seeds of the class map.

    Departures from ``xiaomengyc/SPG`` (``inception3_spg.py``): the side branches sit on the head input instead of
    two Inception stages (``Mixed_5d``, ``Mixed_6d``), so SPG works on any backbone, and B1 / B2 do not share
    their last layers (the reference's ``side_all``).

    Args:
        in_channels: feature channels K.
        num_classes: classes C.
        mid_channels: width of the convolutions.
        reduction: backbone stride; the seeds and side maps are compared at ``(h·reduction, w·reduction)`` — the
            image resolution as in the paper. ``1`` keeps the feature resolution.
        guidance: ``"reference"`` or ``"attention"`` (see above).
        thresholds: ``(high, low)`` pairs of B1, B2, C; ``None``: :data:`SPG_THRESHOLDS` of the guidance.
        min_foreground: seed fallback (see :func:`spg_seeds`); ``0`` disables it.

    Shape:
        - input: :math:`(B, K, h, w)`
        - logits: :math:`(B, C)`; cams: :math:`(B, C, h, w)`; aux ``side_b1``, ``side_b2``, ``side_c``:
          :math:`(B, 1, h, w)` logits

    Example:
        >>> head = SPG(in_channels=8, num_classes=2, mid_channels=16, reduction=4)
        >>> out = head(torch.randn(2, 8, 5, 5))
        >>> out.cams.shape, out.aux["side_c"].shape
        (torch.Size([2, 2, 5, 5]), torch.Size([2, 1, 5, 5]))
        >>> sorted(head.loss(out, torch.tensor([0, 1])).terms)
        ['b1', 'b2', 'c', 'ce']
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        mid_channels: int = 512,
        reduction: int = 1,
        guidance: str = "reference",
        thresholds: Sequence[Sequence[float]] | None = None,
        min_foreground: int = 30,
    ):
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", low=1)
        self.num_classes = check_int(num_classes, "num_classes", low=1)
        self.mid_channels = check_int(mid_channels, "mid_channels", low=1)
        self.reduction = check_int(reduction, "reduction", low=1)
        self.guidance = _check_guidance(guidance)
        self.thresholds = _check_thresholds(thresholds, guidance)
        self.min_foreground = check_int(min_foreground, "min_foreground", low=0)
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

    def forward(self, features: torch.Tensor) -> WSOLOutput:
        check_features(features, self.in_channels)
        g = self.a2(features)
        cams = self.classifier(g)
        aux = {"side_b1": self.side_b1(features), "side_b2": self.side_b2(features), "side_c": self.side_c(g)}
        return WSOLOutput(cams.mean(dim=(-2, -1)), cams, aux)

    def loss(self, output: WSOLOutput, labels: torch.Tensor) -> LossOutput:
        """:func:`spg_loss` with this head's guidance and thresholds, at ``reduction`` × the map size."""
        h, w = output.cams.shape[-2:]
        return spg_loss(
            output, labels, self.thresholds, guidance=self.guidance, min_foreground=self.min_foreground,
            size=(h * self.reduction, w * self.reduction),
        )

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, num_classes={self.num_classes}, mid_channels={self.mid_channels}, "
            f"reduction={self.reduction}, guidance={self.guidance!r}"
        )


def spg_loss(
    output: WSOLOutput,
    labels: torch.Tensor,
    thresholds: Sequence[Sequence[float]] | None = None,
    ignore_index: int = 255,
    guidance: str = "reference",
    min_foreground: int = 30,
    size: Sequence[int] | None = None,
) -> LossOutput:
    """SPG loss: ``CE(s, y) + BCE(B1, M1) + BCE(B2, M2) + BCE(C, M3)`` with ignored uncertain pixels.

    Every map is bilinearly upsampled to ``size`` first; the class map of the true class is then min-max
    normalised (the attention ``A``). Seeds are :func:`spg_seeds` with the ``(high, low)`` pair of each branch:

    - ``guidance="reference"`` (``xiaomengyc/SPG``, ``get_loss``): ``M2 = seeds(A)``, ``M1 = seeds(σ(B2))``,
      ``M3 = seeds((σ(B1) + σ(B2)) / 2)``, default pairs ``(0.5, 0.05), (0.7, 0.05), (0.7, 0.1)``;
    - ``guidance="attention"``: ``M1 = seeds(A)``, ``M2 = seeds(A)``, ``M3`` as above, default pairs
      ``(0.7, 0.01), (0.5, 0.05), (0.7, 0.1)``.

    Seeds carry no gradient (the reference builds them by indexing), so the classifier learns from ``CE`` only.

    Args:
        output: output of :class:`SPG`.
        labels: class indices ``(B,)``.
        thresholds: three ``(high, low)`` pairs for B1, B2, C; ``None``: :data:`SPG_THRESHOLDS` of ``guidance``.
        ignore_index: label of ignored pixels.
        guidance: ``"reference"`` or ``"attention"``.
        min_foreground: seed fallback of :func:`spg_seeds` (30 in the reference; ``0`` disables it).
        size: comparison resolution; ``None`` keeps the map resolution (:meth:`SPG.loss` uses the image's).

    Returns:
        ``LossOutput(total, {"ce", "b1", "b2", "c"})``.

    Example:
        >>> head = SPG(4, 2, mid_channels=8, reduction=2)
        >>> y = torch.tensor([0, 1])
        >>> spg_loss(head(torch.randn(2, 4, 3, 3)), y, size=(6, 6)).total.ndim
        0
    """
    if not isinstance(output, WSOLOutput) or not {"side_b1", "side_b2", "side_c"} <= set(output.aux):
        raise WSOLTypeError("`output` must be the WSOLOutput of an SPG head (with aux['side_b1'/'side_b2'/'side_c'])")
    guidance = _check_guidance(guidance)
    (h1, l1), (h2, l2), (h3, l3) = _check_thresholds(thresholds, guidance)
    check_labels(labels, "labels", output.logits.shape[0], output.logits.shape[1])
    size = tuple(output.cams.shape[-2:]) if size is None else tuple(int(s) for s in size)
    attention = cam_ops.normalize(cam_ops.upsample(cam_ops.select(output.cams.detach(), labels), size))
    b1 = cam_ops.upsample(output.aux["side_b1"], size)[:, 0]
    b2 = cam_ops.upsample(output.aux["side_b2"], size)[:, 0]
    c = cam_ops.upsample(output.aux["side_c"], size)[:, 0]
    kw = {"ignore_index": ignore_index, "min_foreground": min_foreground}
    if guidance == "reference":
        m2 = spg_seeds(attention, h2, l2, **kw)
        m1 = spg_seeds(torch.sigmoid(b2.detach()), h1, l1, **kw)
    else:
        m1 = spg_seeds(attention, h1, l1, **kw)
        m2 = spg_seeds(attention, h2, l2, **kw)
    fused = (torch.sigmoid(b1.detach()) + torch.sigmoid(b2.detach())) / 2
    m3 = spg_seeds(fused, h3, l3, **kw)
    terms = {
        "ce": F.cross_entropy(output.logits, labels),
        "b1": masked_bce(b1, m1, ignore_index),
        "b2": masked_bce(b2, m2, ignore_index),
        "c": masked_bce(c, m3, ignore_index),
    }
    total = terms["ce"] + terms["b1"] + terms["b2"] + terms["c"]
    return LossOutput(total, {k: v.detach() for k, v in terms.items()})
