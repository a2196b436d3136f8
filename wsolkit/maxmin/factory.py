"""The ``maxmin`` registry entry: a localizer and a classifier of the same head over one (or two) backbones."""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch.nn as nn

from wsolkit._checks import WSOLTypeError, WSOLValueError, check_int
from wsolkit._deprecation import warn_deprecated
from wsolkit.heads import create_head, list_heads
from wsolkit.maxmin.model import MaxMin
from wsolkit.method import register_method, resolve_backbone
from wsolkit.models import WSOLModel

__all__ = ["WILDCAT_DEFAULTS", "maxmin_method", "build_maxmin"]

#: Head hyper-parameters of the paper (App. B.2): 5 modalities, k⁺ = k⁻ = 0.09, α = 0, dropout 0.75 (GlaS).
WILDCAT_DEFAULTS: dict[str, Any] = {"modalities": 5, "kmax": 0.09, "kmin": 0.09, "alpha": 0.0, "dropout": 0.75}


@register_method("maxmin", needs="backbone", family="localizer-classifier")
def maxmin_method(
    num_classes: int,
    backbone: str | nn.Module = "resnet18",
    pretrained: bool = False,
    output_stride: int = 8,
    backbone_options: dict[str, Any] | None = None,
    head: str | None = None,
    head_options: dict[str, Any] | None = None,
    share_backbone: bool = True,
    classifier_backbone: nn.Module | None = None,
    **options: Any,
) -> MaxMin:
    """A :class:`MaxMin` whose localizer ``M`` and classifier ``C`` are a backbone plus the same registered head.

    Called by ``wsolkit.create_method("maxmin", K, backbone=..., **options)``.

    Args:
        num_classes: classes K.
        backbone: feature extractor of the localizer: a name of :func:`wsolkit.list_backbones` or a module with
            ``out_channels``.
        pretrained: pretrained backbone weights (by name only).
        output_stride: backbone output stride when built by name.
        backbone_options: extra keyword arguments of :func:`wsolkit.create_backbone`.
        head: head name; ``None`` → ``"wildcat"`` with :data:`WILDCAT_DEFAULTS` (the paper's head).
        head_options: head hyper-parameters (default: :data:`WILDCAT_DEFAULTS` for ``"wildcat"``, none otherwise).
        share_backbone: ``M`` and ``C`` use the same backbone module (the paper's setting).
        classifier_backbone: a separate backbone for ``C`` (only with ``share_backbone=False``; default: a deep
            copy of the localizer's). Its width may differ.
        **options: :class:`MaxMin` arguments (``passes``, ``erasing``, ``sigma``, ``omega``, ...).

    Example:
        >>> m = maxmin_method(2, backbone="smallcnn", head="gap", passes=0)
        >>> m(torch.zeros(1, 3, 32, 32)).logits.shape
        torch.Size([1, 2])
    """
    num_classes = check_int(num_classes, "num_classes", low=1)
    opts = dict(backbone_options or {})
    bb = resolve_backbone(backbone, pretrained, output_stride, **opts)
    if head is None:
        if "wildcat" in list_heads():
            head = "wildcat"
        else:  # pragma: no cover - wildcat is always registered in wsolkit
            warnings.warn("the 'wildcat' head is not registered; MaxMin falls back to the 'gap' head", stacklevel=2)
            head = "gap"
    if head_options is None:
        head_options = dict(WILDCAT_DEFAULTS) if str(head).lower() == "wildcat" else {}
    width = _out_channels(bb, "backbone")
    if share_backbone:
        if classifier_backbone is not None and classifier_backbone is not bb:
            raise WSOLValueError("`classifier_backbone` must be None when share_backbone=True")
        cls_backbone = bb
    else:
        cls_backbone = classifier_backbone if classifier_backbone is not None else copy.deepcopy(bb)
        if cls_backbone is bb:
            raise WSOLValueError("`classifier_backbone` is the localizer's backbone; use share_backbone=True")
    cls_width = _out_channels(cls_backbone, "classifier_backbone")
    localizer = WSOLModel(bb, create_head(head, width, num_classes, **head_options))
    classifier = WSOLModel(cls_backbone, create_head(head, cls_width, num_classes, **head_options))
    return MaxMin(localizer, classifier, **options)


def build_maxmin(
    backbone: nn.Module,
    num_classes: int,
    head: str | None = None,
    head_kwargs: dict[str, Any] | None = None,
    share_backbone: bool = True,
    classifier_backbone: nn.Module | None = None,
    **kwargs: Any,
) -> MaxMin:
    """Deprecated: use ``wsolkit.create_method("maxmin", num_classes, backbone=backbone, head=...,
    head_options=...)``."""
    warn_deprecated("wsolkit.maxmin.build_maxmin", "wsolkit.create_method('maxmin', num_classes, backbone=..., "
                    "head=..., head_options=...)")
    return maxmin_method(num_classes, backbone=backbone, head=head, head_options=head_kwargs,
                         share_backbone=share_backbone, classifier_backbone=classifier_backbone, **kwargs)


def _out_channels(backbone: nn.Module, name: str) -> int:
    if not isinstance(backbone, nn.Module):
        raise WSOLTypeError(f"`{name}` must be an nn.Module, got {type(backbone).__name__}")
    width = getattr(backbone, "out_channels", None)
    if not isinstance(width, int):
        raise WSOLTypeError(f"`{name}` must expose an int `out_channels` (see wsolkit.backbones), got {width!r}")
    return width
