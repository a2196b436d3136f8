"""``WSOLModel``: a backbone followed by a bottom-up head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from wsolkit._checks import check_floating, check_ndim
from wsolkit.method import WSOLMethod
from wsolkit.output import LossOutput, WSOLOutput

__all__ = ["WSOLModel"]


class WSOLModel(WSOLMethod):
    """Backbone + head: ``forward(x, labels=None) -> WSOLOutput``, the shape of every bottom-up method.

    ``labels`` reach the head when its ``forward`` takes them (heads that erase or seed from the true class at
    training time, e.g. ACoL and SPG). The objective is the head's ``loss(output, labels, x)`` when it defines one,
    else cross-entropy on the logits.

    Args:
        backbone: any module mapping images ``(B, 3, H, W)`` to features ``(B, K, h, w)``
            (e.g. :func:`wsolkit.backbones.create_backbone`).
        head: a head mapping features to :class:`~wsolkit.output.WSOLOutput` (e.g. :class:`wsolkit.heads.GAP`).

    Shape:
        - input: :math:`(B, 3, H, W)`
        - logits: :math:`(B, C)`; cams: :math:`(B, C, h, w)`

    Example:
        >>> from wsolkit.backbones import create_backbone
        >>> from wsolkit.heads import GAP
        >>> bb = create_backbone("smallcnn", output_stride=8, width=8)
        >>> model = WSOLModel(bb, GAP(bb.out_channels, 2))
        >>> model(torch.zeros(2, 3, 64, 64)).cams.shape
        torch.Size([2, 2, 8, 8])
    """

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> WSOLOutput:
        check_ndim(x, "x", 4, "(B, 3, H, W)")
        check_floating(x, "x")
        features = self.backbone(x)
        if labels is not None and getattr(self.head, "uses_labels", False):
            return self.head(features, labels=labels)
        return self.head(features)

    def loss(self, output: WSOLOutput, labels: torch.Tensor, x: torch.Tensor | None = None) -> LossOutput:
        head_loss = getattr(self.head, "loss", None)
        if callable(head_loss):
            return head_loss(output, labels)
        return super().loss(output, labels, x)

    @torch.no_grad()
    def localize(
        self, x: torch.Tensor, labels: torch.Tensor | int | None = None, size: Sequence[int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and protocol-processed maps (select → upsample to the input size → min-max) in one call:
        :func:`wsolkit.localize` with ``target=labels`` (``None``: the predicted class).

        Args:
            x: images.
            labels: class whose map is returned; ``None`` uses the predicted class.
            size: output size; defaults to the input size.

        Returns:
            ``(logits (B, C), maps (B, H, W) in [0, 1])``.
        """
        from wsolkit.inference import localize

        loc = localize(self, x, "pred" if labels is None else labels, size=size)
        return loc.logits, loc.maps
