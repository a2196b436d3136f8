"""The refinement family as registry methods: ``create_method(name, num_classes, backbone=..., **options)``.

=========  ===========================================================  ==========================================
name       what is built                                                options (defaults)
=========  ===========================================================  ==========================================
``has``    :class:`HaSModel`: hides grid cells of the input in training  ``grid_size`` (32), ``grid_sizes`` (None),
           mode, GAP head                                                ``drop_rate`` (0.5), ``fill`` (0.0)
``adl``    :class:`~wsolkit.models.WSOLModel` with :class:`ADL` layers   ``positions`` (None: last two stages),
           inserted into the backbone (:func:`insert_adl`), GAP head     ``drop_rate`` (0.75), ``gamma`` (0.9)
``acol``   ``WSOLModel`` with an :class:`ACoL` head                      ``delta`` (0.7), ``mid_channels`` (1024)
``spg``    ``WSOLModel`` with an :class:`SPG` head                       ``mid_channels`` (512), ``guidance``
                                                                         ("reference"), ``thresholds``,
                                                                         ``min_foreground`` (30)
``cutmix`` :class:`CutMixModel`: mixes the batch in ``training_steps``   ``beta`` (1.0), ``prob`` (1.0)
``tscam``  :class:`TSCAM` over a timm ViT / DeiT name or module          ``backbone`` ("deit_small_patch16_224"),
                                                                         ``backbone_options`` (timm kwargs)
=========  ===========================================================  ==========================================

The CNN methods also take ``output_stride`` (8) and ``backbone_options`` (for :func:`wsolkit.create_backbone`);
the stochastic ones take a ``generator`` (a seeded :class:`torch.Generator` makes training reproducible). Every
stochastic layer is identity in ``eval()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn as nn

from wsolkit._checks import WSOLTypeError, WSOLValueError
from wsolkit.erasing.acol import ACoL
from wsolkit.erasing.adl import insert_adl
from wsolkit.erasing.cutmix import CutMix, cutmix_loss
from wsolkit.erasing.has import HideAndSeek
from wsolkit.erasing.spg import SPG
from wsolkit.erasing.tscam import TSCAM, TSCAM_DEFAULT_BACKBONE, _from_name
from wsolkit.heads.gap import GAP
from wsolkit.method import register_method, resolve_backbone
from wsolkit.models import WSOLModel
from wsolkit.output import LossOutput, WSOLOutput

__all__ = ["HaSModel", "CutMixModel", "default_adl_positions"]


class HaSModel(WSOLModel):
    """Hide-and-Seek (Singh & Lee 2017): a backbone + head trained on images with hidden grid cells.

    ``forward`` applies :class:`HideAndSeek` to the input in ``train()`` mode only; in ``eval()`` the model is
    the plain backbone + head, so the maps come from whole images. The objective is the head's (cross-entropy for
    GAP).

    Args:
        backbone: feature extractor with ``out_channels``.
        head: a bottom-up head (GAP in the survey).
        grid_size: cell side in pixels (ignored when ``grid_sizes`` is given).
        drop_rate: probability that a cell is hidden.
        fill: value of hidden pixels (0 = the mean of standardised images).
        grid_sizes: per-image random grid size, e.g. :data:`~wsolkit.erasing.HAS_GRID_SIZES` (the authors' code;
            0 = no hiding for that image).
        generator: random generator of the hiding.

    Example:
        >>> import wsolkit
        >>> m = wsolkit.create_method("has", 2, backbone="smallcnn", grid_sizes=(0, 8, 16))
        >>> x = torch.rand(2, 3, 32, 32)
        >>> torch.equal(m.eval()(x).cams, m(x).cams)  # identity at eval
        True
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        grid_size: int = 32,
        drop_rate: float = 0.5,
        fill: float | Sequence[float] | torch.Tensor = 0.0,
        grid_sizes: Sequence[int] | None = None,
        generator: torch.Generator | None = None,
    ):
        super().__init__(backbone, head)
        self.hide = HideAndSeek(grid_size, drop_rate, fill, generator, grid_sizes)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> WSOLOutput:
        return super().forward(self.hide(x), labels)


class CutMixModel(WSOLModel):
    """CutMix (Yun et al. 2019): a backbone + head trained on batches mixed by :func:`~wsolkit.erasing.cutmix`.

    ``forward`` is the plain model. :meth:`training_steps` mixes the batch (in ``train()`` mode; identity in
    ``eval()``), runs one forward pass on the mixed images and yields ``λ·CE(s, y_a) + (1 - λ)·CE(s, y_b)``.

    Args:
        backbone: feature extractor with ``out_channels``.
        head: a bottom-up head (GAP in the survey).
        beta: Beta(β, β) parameter of λ.
        prob: probability of mixing a batch.
        generator: random generator of λ, the box and the permutation.

    Example:
        >>> import wsolkit
        >>> m = wsolkit.create_method("cutmix", 2, backbone="smallcnn").train()
        >>> [sorted(s.terms) for s in m.training_steps(torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 0, 1]))]
        [['ce_a', 'ce_b', 'lam']]
    """

    def __init__(
        self, backbone: nn.Module, head: nn.Module, beta: float = 1.0, prob: float = 1.0,
        generator: torch.Generator | None = None,
    ):
        super().__init__(backbone, head)
        self.mix = CutMix(beta, prob, generator)

    def training_steps(
        self, x: torch.Tensor, labels: torch.Tensor, *, forward: Callable[..., Any] | None = None
    ) -> Iterator[LossOutput]:
        run = self if forward is None else forward
        mixed = self.mix(x, labels)
        yield cutmix_loss(run(mixed.images), mixed.labels_a, mixed.labels_b, mixed.lam)


def _backbone(backbone, pretrained: bool, output_stride: int, backbone_options: dict | None) -> nn.Module:
    return resolve_backbone(backbone, pretrained, output_stride, **dict(backbone_options or {}))


def default_adl_positions(backbone: nn.Module) -> list[str]:
    """Where :func:`create_method("adl", ...) <wsolkit.create_method>` inserts ADL when ``positions`` is None.

    After the last two stages, as Choe & Shim do: ``["layer3", "layer4"]`` for ResNets; for a VGG-like
    ``features`` sequence (:class:`~wsolkit.backbones.SmallCNN`, VGG) the module before the last max-pooling and
    the last module that is not a pooling.

    Raises:
        WSOLValueError: no rule applies (pass ``positions=`` with module names).

    Example:
        >>> from wsolkit.backbones import create_backbone
        >>> default_adl_positions(create_backbone("smallcnn", output_stride=8, width=8))
        ['body.features.19', 'body.features.26']
    """
    names = [n for n, _ in backbone.named_modules()]
    stages = [next((n for n in names if n == s or n.endswith("." + s)), None) for s in ("layer3", "layer4")]
    if all(stages):
        return stages
    for name, mod in backbone.named_modules():
        if name.split(".")[-1] == "features" and isinstance(mod, nn.Sequential):
            kids = list(mod)
            pools = [i for i, k in enumerate(kids) if isinstance(k, (nn.MaxPool2d, nn.AvgPool2d))]
            last = max(i for i, k in enumerate(kids) if not isinstance(k, (nn.MaxPool2d, nn.AvgPool2d)))
            before = [p - 1 for p in pools if 0 < p - 1 < last]
            if before:
                return [f"{name}.{before[-1]}", f"{name}.{last}"]
    raise WSOLValueError(
        f"no default ADL positions for backbone {type(backbone).__name__}; pass `positions=` with module names "
        f"(see wsolkit.erasing.insert_adl)"
    )


@register_method("has", family="refinement")
def _has(num_classes: int, backbone: str | nn.Module = "resnet18", pretrained: bool = False, output_stride: int = 8,
         backbone_options: dict | None = None, **options: Any) -> HaSModel:
    """Hide-and-Seek: :class:`HaSModel` with a GAP head; ``options`` are :class:`HaSModel`'s."""
    bb = _backbone(backbone, pretrained, output_stride, backbone_options)
    return HaSModel(bb, GAP(bb.out_channels, num_classes), **options)


@register_method("adl", family="refinement")
def _adl(num_classes: int, backbone: str | nn.Module = "resnet18", pretrained: bool = False, output_stride: int = 8,
         backbone_options: dict | None = None, positions: Sequence[str] | None = None, drop_rate: float = 0.75,
         gamma: float = 0.9, generator: torch.Generator | None = None) -> WSOLModel:
    """ADL: ADL layers inserted into the backbone (in place when a module is given), GAP head."""
    bb = _backbone(backbone, pretrained, output_stride, backbone_options)
    insert_adl(bb, list(positions) if positions is not None else default_adl_positions(bb), drop_rate, gamma,
               generator)
    return WSOLModel(bb, GAP(bb.out_channels, num_classes))


@register_method("acol", family="refinement")
def _acol(num_classes: int, backbone: str | nn.Module = "resnet18", pretrained: bool = False, output_stride: int = 8,
          backbone_options: dict | None = None, **options: Any) -> WSOLModel:
    """ACoL: a :class:`ACoL` head; ``options`` are the head's (``delta``, ``mid_channels``)."""
    bb = _backbone(backbone, pretrained, output_stride, backbone_options)
    return WSOLModel(bb, ACoL(bb.out_channels, num_classes, **options))


@register_method("spg", family="refinement")
def _spg(num_classes: int, backbone: str | nn.Module = "resnet18", pretrained: bool = False, output_stride: int = 8,
         backbone_options: dict | None = None, **options: Any) -> WSOLModel:
    """SPG: an :class:`SPG` head compared at the image resolution (``reduction`` = the backbone's)."""
    bb = _backbone(backbone, pretrained, output_stride, backbone_options)
    options.setdefault("reduction", int(getattr(bb, "reduction", 1)))
    return WSOLModel(bb, SPG(bb.out_channels, num_classes, **options))


@register_method("cutmix", family="refinement")
def _cutmix(num_classes: int, backbone: str | nn.Module = "resnet18", pretrained: bool = False,
            output_stride: int = 8, backbone_options: dict | None = None, **options: Any) -> CutMixModel:
    """CutMix: :class:`CutMixModel` with a GAP head; ``options`` are :class:`CutMixModel`'s."""
    bb = _backbone(backbone, pretrained, output_stride, backbone_options)
    return CutMixModel(bb, GAP(bb.out_channels, num_classes), **options)


@register_method("tscam", family="refinement")
def _tscam(num_classes: int, backbone: str | nn.Module = TSCAM_DEFAULT_BACKBONE, pretrained: bool = False,
           backbone_options: dict | None = None) -> TSCAM:
    """TS-CAM over a timm ViT / DeiT name (default DeiT-S/16 as in the paper) or a ``VisionTransformer`` module."""
    if isinstance(backbone, nn.Module):
        if backbone_options:
            raise WSOLValueError("`backbone_options` only apply to a backbone given by name")
        return TSCAM(backbone, num_classes)
    if not isinstance(backbone, str):
        raise WSOLTypeError(f"`backbone` must be a timm ViT name or a VisionTransformer, got {type(backbone).__name__}")
    return _from_name(backbone, num_classes, pretrained, **dict(backbone_options or {}))
