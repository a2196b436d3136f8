"""Preprocessing read from the model: mean / std / input size / interpolation / crop, never library constants.

A pretrained network expects its inputs normalised with the statistics it was trained with; these differ between
families (timm's ``test_resnet`` and many ViTs use 0.5 / 0.5, torchvision's ImageNet weights 0.485... / 0.229...,
CLIP-like models their own). :func:`preprocessing` reads them from where each library declares them:

- timm: ``model.pretrained_cfg`` (``mean``, ``std``, ``input_size``, ``interpolation``, ``crop_pct``) — also kept by
  ``features_only`` models, so a wsolkit method built on a timm backbone finds it on ``method.backbone.body``;
- torchvision: the weights enum (``ResNet18_Weights.DEFAULT``) or its ``weights.transforms()`` object (torchvision
  models do not remember their weights: pass ``weights=``);
- Hugging Face: an image processor (``AutoImageProcessor.from_pretrained(...)``) or its config dict
  (``image_mean``, ``image_std``, ``size``, ``resample``, ``crop_pct``);
- any module with a ``preprocessing`` attribute holding a :class:`Preprocessing` (how a user declares it).

A wsolkit method wrapping one of these is searched through its sub-modules (``.classifier``, ``.backbone.body``,
...), the first declaration found wins; a method rebuilt from a checkpoint declares the transform its training used
(``method.preprocessing``), so it comes first.

**The one rule.** Training (:func:`wsolkit.training.fit`), evaluation, prediction
(:func:`~wsolkit.training.predict_maps`, ``wsolkit predict``) and whole slides (:func:`wsolkit.wsi.heatmap`,
``wsolkit slide``) all call :func:`preprocessing` and nothing else, so the same pixel reaches the same model as the
same number everywhere. When nothing is declared, the fallback is :data:`IMAGENET` — said here and nowhere else —
with a :class:`PreprocessingWarning` naming the model (wsolkit's own :class:`~wsolkit.backbones.SmallCNN`, never
pretrained, uses it by convention without a warning).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn as nn

from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError

__all__ = ["Preprocessing", "PreprocessingWarning", "IMAGENET", "INCEPTION", "preprocessing"]

_PIL_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}


class PreprocessingWarning(UserWarning):
    """The model declares no preprocessing: a named fallback is used."""


@dataclass(frozen=True)
class Preprocessing:
    """Normalisation (and the input geometry) a model expects; calling it normalises images in ``[0, 1]``.

    Args:
        mean: per-channel mean subtracted from images in ``[0, 1]``.
        std: per-channel standard deviation divided by.
        size: ``(H, W)`` input size the model was trained at (information; WSOL maps are computed at any size).
        interpolation: resampling the model was trained with (``"bilinear"``, ``"bicubic"``, ...).
        crop_pct: centre-crop fraction of the evaluation transform (``None``: no crop declared).
        source: where these values were read (shown in warnings and reprs).

    Shape:
        - images: :math:`(B, C, H, W)` or :math:`(C, H, W)`, C = ``len(mean)``

    Example:
        >>> p = Preprocessing(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
        >>> p(torch.ones(1, 3, 2, 2))[0, :, 0, 0].tolist()
        [2.0, 2.0, 2.0]
        >>> torch.allclose(p.invert(p(torch.full((3, 2, 2), 0.3))), torch.full((3, 2, 2), 0.3))
        True
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    size: tuple[int, int] | None = None
    interpolation: str = "bilinear"
    crop_pct: float | None = None
    source: str = "user"

    def __post_init__(self) -> None:
        mean = tuple(float(v) for v in _seq(self.mean, "mean"))
        std = tuple(float(v) for v in _seq(self.std, "std"))
        if len(mean) != len(std):
            raise WSOLValueError(f"`mean` and `std` must have the same length, got {len(mean)} and {len(std)}")
        if any(s <= 0 for s in std):
            raise WSOLValueError(f"`std` must be positive, got {std}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        if self.size is not None:
            size = tuple(int(v) for v in _seq(self.size, "size"))
            if len(size) == 1:
                size = size * 2
            if len(size) != 2 or min(size) < 1:
                raise WSOLValueError(f"`size` must be (H, W) with positive values, got {self.size}")
            object.__setattr__(self, "size", size)

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(x, torch.Tensor):
            raise WSOLTypeError(f"`images` must be a tensor, got {type(x).__name__}")
        c = len(self.mean)
        if x.ndim not in (3, 4) or x.shape[-3] != c:
            raise ShapeError(f"`images` must have shape (B, {c}, H, W) or ({c}, H, W), got {tuple(x.shape)}")
        dtype = x.dtype if x.is_floating_point() else torch.float32
        shape = (c, 1, 1)
        return (torch.tensor(self.mean, dtype=dtype, device=x.device).view(shape),
                torch.tensor(self.std, dtype=dtype, device=x.device).view(shape))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """``(images - mean) / std`` for images in ``[0, 1]`` (integer images are an error: scale them first)."""
        mean, std = self._stats(images)
        if not images.is_floating_point():
            raise WSOLTypeError(f"`images` must be floating point in [0, 1], got dtype {images.dtype}")
        return (images - mean) / std

    def invert(self, images: torch.Tensor) -> torch.Tensor:
        """Back to ``[0, 1]`` images: ``images * std + mean``."""
        mean, std = self._stats(images)
        return images * std + mean

    def with_source(self, source: str) -> Preprocessing:
        """A copy with another ``source`` label."""
        return replace(self, source=source)


def _seq(v: Any, name: str) -> Sequence:
    if isinstance(v, (int, float)):
        return (v,)
    if not isinstance(v, (Sequence, torch.Tensor)) or isinstance(v, str):
        raise WSOLTypeError(f"`{name}` must be a sequence of numbers, got {type(v).__name__}")
    return list(v)


#: ImageNet statistics (torchvision / timm ``IMAGENET_DEFAULT_*``): the fallback of models that declare nothing
IMAGENET = Preprocessing(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), size=(224, 224),
                         interpolation="bilinear", crop_pct=0.875, source="ImageNet default (torchvision/timm)")
#: Inception statistics (timm ``IMAGENET_INCEPTION_*``: 0.5 / 0.5), used by Inception, many ViTs, ``test_resnet``
INCEPTION = Preprocessing(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), size=(299, 299), interpolation="bicubic",
                          crop_pct=0.875, source="Inception default (timm)")
_DEFAULTS = {"imagenet": IMAGENET, "inception": INCEPTION}


def _interp(v: Any) -> str:
    if v is None:
        return "bilinear"
    if isinstance(v, int):
        return _PIL_RESAMPLE.get(v, "bilinear")
    return str(getattr(v, "value", v)).lower()


def _from_timm_cfg(cfg: Mapping[str, Any], where: str) -> Preprocessing:
    size = cfg.get("input_size")
    return Preprocessing(mean=cfg["mean"], std=cfg["std"], size=tuple(size[-2:]) if size else None,
                         interpolation=_interp(cfg.get("interpolation")), crop_pct=cfg.get("crop_pct"),
                         source=f"timm pretrained_cfg of {where}")


def _from_tv_transform(t: Any, where: str) -> Preprocessing:
    crop = list(getattr(t, "crop_size", []) or [])
    resize = list(getattr(t, "resize_size", []) or [])
    size = (crop * 2)[:2] if crop else None
    crop_pct = crop[0] / resize[0] if crop and resize else None
    return Preprocessing(mean=t.mean, std=t.std, size=size, interpolation=_interp(getattr(t, "interpolation", None)),
                         crop_pct=crop_pct, source=where)


def _from_hf(cfg: Any, where: str) -> Preprocessing:
    get = cfg.get if isinstance(cfg, Mapping) else (lambda k, d=None: getattr(cfg, k, d))
    mean, std = get("image_mean"), get("image_std")
    if mean is None or std is None:
        raise WSOLValueError(f"{where} has no `image_mean` / `image_std`")
    size = get("crop_size") or get("size")
    hw = None
    if size is not None and not isinstance(size, int):  # a dict or transformers' SizeDict
        sget = size.get if isinstance(size, Mapping) else (lambda k: getattr(size, k, None))
        if sget("height") and sget("width"):
            hw = (sget("height"), sget("width"))
        elif sget("shortest_edge"):
            hw = (sget("shortest_edge"),) * 2
    elif isinstance(size, int):
        hw = (size, size)
    return Preprocessing(mean=mean, std=std, size=hw, interpolation=_interp(get("resample")),
                         crop_pct=get("crop_pct"), source=where)


def _declared(module: nn.Module) -> Preprocessing | None:
    p = getattr(module, "preprocessing", None)
    if isinstance(p, Preprocessing):
        return p
    cfg = getattr(module, "pretrained_cfg", None)
    if isinstance(cfg, Mapping) and "mean" in cfg and "std" in cfg:
        return _from_timm_cfg(cfg, type(module).__name__)
    return None


def preprocessing(
    model: Any = None,
    *,
    weights: Any = None,
    processor: Any = None,
    default: str | Preprocessing = "imagenet",
    warn: bool = True,
) -> Preprocessing:
    """The preprocessing ``model`` declares (see the module docstring for where it is read).

    Args:
        model: a timm / torchvision / Hugging Face model, a wsolkit method wrapping one, a torchvision weights enum
            or transform, a Hugging Face image processor or its config dict, or a :class:`Preprocessing`.
        weights: torchvision weights (enum member) the model was built with; takes precedence.
        processor: Hugging Face image processor (or its config dict); takes precedence.
        default: fallback when nothing is declared: ``"imagenet"`` (:data:`IMAGENET`), ``"inception"``
            (:data:`INCEPTION`) or a :class:`Preprocessing`.
        warn: emit a :class:`PreprocessingWarning` when the fallback is used.

    Returns:
        A :class:`Preprocessing`; ``source`` says where it was read.

    Example:
        >>> import timm
        >>> p = preprocessing(timm.create_model("test_resnet", num_classes=2))
        >>> p.mean, p.size, p.source
        ((0.5, 0.5, 0.5), (160, 160), 'timm pretrained_cfg of ResNet')
    """
    if weights is not None:
        return preprocessing(weights, default=default, warn=warn)
    if processor is not None:
        return _from_hf(processor, f"Hugging Face image processor {type(processor).__name__}")
    if isinstance(model, Preprocessing):
        return model
    if isinstance(model, Mapping):
        if "image_mean" in model:
            return _from_hf(model, "Hugging Face image processor config")
        if "mean" in model and "std" in model:
            return _from_timm_cfg(model, "a config dict")
        raise WSOLValueError(f"config dict declares no mean/std (keys {sorted(model)[:8]})")
    if hasattr(model, "image_mean") and hasattr(model, "image_std"):
        return _from_hf(model, f"Hugging Face image processor {type(model).__name__}")
    if callable(getattr(model, "transforms", None)) and hasattr(model, "meta"):  # torchvision WeightsEnum member
        return _from_tv_transform(model.transforms(), f"torchvision weights {model}")
    if hasattr(model, "mean") and hasattr(model, "std") and not isinstance(model, nn.Module):
        return _from_tv_transform(model, f"transform {type(model).__name__}")
    if not isinstance(model, nn.Module):
        raise WSOLTypeError(f"`model` must be a model, weights, a transform or a processor, got {type(model).__name__}")
    from wsolkit.backbones import SmallCNN

    fallback = _DEFAULTS.get(default) if isinstance(default, str) else default
    if not isinstance(fallback, Preprocessing):
        raise WSOLValueError(f"`default` must be one of {sorted(_DEFAULTS)} or a Preprocessing, got {default!r}")
    smallcnn = False
    for module in model.modules():
        found = _declared(module)
        if found is not None:
            return found
        smallcnn = smallcnn or isinstance(module, SmallCNN)
    if smallcnn:
        return fallback.with_source(f"{fallback.source}, by convention for wsolkit's SmallCNN")
    if warn:
        hint = ("pass `weights=` (torchvision) or `processor=` (Hugging Face)" if
                type(model).__module__.split(".")[0] in ("torchvision", "transformers") else
                "set `model.preprocessing = wsolkit.data.Preprocessing(...)`")
        warnings.warn(f"{type(model).__name__} declares no preprocessing; using {fallback.source} "
                      f"(mean {fallback.mean}, std {fallback.std}); {hint}", PreprocessingWarning, stacklevel=2)
    return fallback
