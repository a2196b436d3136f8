"""WILDCAT head (Durand et al. 2017; survey eq. 6): class-wise modality pooling + top-k / bottom-k spatial pooling."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from wsolkit._checks import ShapeError, check_int, check_number
from wsolkit.heads._base import check_features, check_k, resolve_k
from wsolkit.heads._registry import register_head
from wsolkit.output import WSOLOutput

__all__ = ["wildcat_pool", "class_wise_pool", "WILDCAT"]


def class_wise_pool(maps: torch.Tensor, modalities: int) -> torch.Tensor:
    """Average the ``M`` modality maps of each class: ``(B, C·M, h, w) → (B, C, h, w)``.

    Channel ``c * M + m`` holds modality ``m`` of class ``c``.

    Args:
        maps: modality maps, class-major.
        modalities: number of modalities per class ``M``.

    Shape:
        - maps: :math:`(B, C M, h, w)`
        - output: :math:`(B, C, h, w)`

    Example:
        >>> class_wise_pool(torch.arange(4.0).view(1, 4, 1, 1), modalities=2).flatten()
        tensor([0.5000, 2.5000])
    """
    check_features(maps, name="maps")
    modalities = check_int(modalities, "modalities", low=1)
    b, cm, h, w = maps.shape
    if cm % modalities != 0:
        raise ShapeError(
            f"`maps` has {cm} channels (shape {tuple(maps.shape)}), not a multiple of modalities={modalities}"
        )
    return maps.view(b, cm // modalities, modalities, h, w).mean(dim=2)


def wildcat_pool(
    maps: torch.Tensor,
    kmax: int | float = 0.1,
    kmin: int | float | None = None,
    alpha: float = 0.6,
    dropout: float = 0.0,
    training: bool = False,
) -> torch.Tensor:
    """WILDCAT spatial pooling (survey eq. 6): ``s_c = Z⁺_c / n⁺ + α Z⁻_c / n⁻``.

    ``Z⁺_c`` (``Z⁻_c``) is the sum of the ``n⁺`` highest (``n⁻`` lowest) values of the class map ``M_c``; i.e. the
    mean of the top-``n⁺`` plus ``α`` times the mean of the bottom-``n⁻`` values. Both terms are kept (the
    negative-evidence term is not dropped, unlike some reference code).

    ``k`` is a count when it is an ``int`` (clipped to ``h·w``) and a fraction of ``h·w`` when it is a float in
    ``(0, 1]`` (``n = max(1, round(k·h·w))``, Python rounding).

    Args:
        maps: class maps ``M``.
        kmax: ``n⁺`` as a count or a fraction.
        kmin: ``n⁻`` as a count or a fraction; ``None`` uses ``kmax``.
        alpha: weight ``α ≥ 0`` of the lowest activations (``0`` disables the term).
        dropout: probability of zeroing a location of the maps before the selection (inverted dropout,
            applied only when ``training``; the MaxMin paper uses 0.75).
        training: apply ``dropout``.

    Returns:
        Class scores.

    Shape:
        - maps: :math:`(B, C, h, w)`
        - output: :math:`(B, C)`

    Example:
        >>> m = torch.tensor([[[[1.0, 5.0], [3.0, -2.0]]]])
        >>> wildcat_pool(m, kmax=2, kmin=1, alpha=0.5)  # (5 + 3) / 2 + 0.5 * (-2)
        tensor([[3.]])
    """
    check_features(maps, name="maps")
    kmax = check_k(kmax, "kmax")
    kmin = kmax if kmin is None else check_k(kmin, "kmin")
    alpha = check_number(alpha, "alpha", low=0.0)
    dropout = check_number(dropout, "dropout", low=0.0, high=1.0, high_inclusive=False)
    b, c, h, w = maps.shape
    n = h * w
    flat = maps.reshape(b, c, n)
    if training and dropout > 0:
        flat = F.dropout(flat, p=dropout, training=True)
    n_pos = resolve_k(kmax, n)
    scores = flat.topk(n_pos, dim=-1, largest=True, sorted=False).values.mean(dim=-1)  # Z+ / n+
    if alpha > 0:
        n_neg = resolve_k(kmin, n)
        scores = scores + alpha * flat.topk(n_neg, dim=-1, largest=False, sorted=False).values.mean(dim=-1)  # α Z-/n-
    return scores


@register_head("wildcat")
class WILDCAT(nn.Module):
    """WILDCAT head: 1×1 conv to ``C·M`` modality maps → class-wise average → :func:`wildcat_pool`.

    Durand et al. (2017), "WILDCAT: weakly supervised learning of deep convnets for image classification, pointwise
    localization and segmentation"; survey eq. 6. The CAMs are the class maps (modality average, before dropout).

    Args:
        in_channels: feature channels K.
        num_classes: classes C.
        modalities: modality maps per class M (survey Table 9 uses 5).
        kmax: highest activations kept (count or fraction of ``h·w``).
        kmin: lowest activations kept; ``None`` uses ``kmax``.
        alpha: weight of the lowest activations.
        dropout: dropout probability on the class maps before the selection (training only).

    Shape:
        - input: :math:`(B, K, h, w)`
        - logits: :math:`(B, C)`; cams: :math:`(B, C, h, w)`; ``aux["modality_maps"]``: :math:`(B, C, M, h, w)`

    Example:
        >>> head = WILDCAT(in_channels=8, num_classes=2, modalities=5, kmax=0.09, kmin=0.09, alpha=0.0, dropout=0.75)
        >>> out = head(torch.randn(3, 8, 7, 7))
        >>> out.logits.shape, out.cams.shape, out.aux["modality_maps"].shape
        (torch.Size([3, 2]), torch.Size([3, 2, 7, 7]), torch.Size([3, 2, 5, 7, 7]))
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        modalities: int = 4,
        kmax: int | float = 0.1,
        kmin: int | float | None = None,
        alpha: float = 0.6,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", low=1)
        self.num_classes = check_int(num_classes, "num_classes", low=1)
        self.modalities = check_int(modalities, "modalities", low=1)
        self.kmax = check_k(kmax, "kmax")
        self.kmin = self.kmax if kmin is None else check_k(kmin, "kmin")
        self.alpha = check_number(alpha, "alpha", low=0.0)
        self.dropout = check_number(dropout, "dropout", low=0.0, high=1.0, high_inclusive=False)
        self.classifier = nn.Conv2d(in_channels, num_classes * modalities, kernel_size=1, bias=True)

    def forward(self, features: torch.Tensor) -> WSOLOutput:
        check_features(features, self.in_channels)
        modality_maps = self.classifier(features)
        cams = class_wise_pool(modality_maps, self.modalities)
        logits = wildcat_pool(cams, self.kmax, self.kmin, self.alpha, self.dropout, self.training)
        b, _, h, w = modality_maps.shape
        aux = {"modality_maps": modality_maps.view(b, self.num_classes, self.modalities, h, w)}
        return WSOLOutput(logits, cams, aux)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, num_classes={self.num_classes}, modalities={self.modalities}, "
            f"kmax={self.kmax}, kmin={self.kmin}, alpha={self.alpha}, dropout={self.dropout}"
        )
