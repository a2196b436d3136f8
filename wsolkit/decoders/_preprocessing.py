"""The input normalisation a classifier expects, read from the model (for undoing it before the CRF).

A stop-gap for ``wsolkit.data.preprocessing(model)``: F-CAM / NEGEV only need the per-channel ``mean`` / ``std``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn

from wsolkit._checks import WSOLTypeError, WSOLValueError

__all__: list[str] = []

Normalization = tuple[tuple[float, ...], tuple[float, ...]]


def _pair(mean: Any, std: Any, source: str) -> Normalization:
    try:
        m = tuple(float(v) for v in mean)
        s = tuple(float(v) for v in std)
    except TypeError as e:
        raise WSOLTypeError(f"{source}: mean/std must be sequences of numbers, got {mean!r}, {std!r}") from e
    if len(m) != len(s) or not m:
        raise WSOLValueError(f"{source}: mean and std must have the same non-zero length, got {m}, {s}")
    if any(v <= 0 for v in s):
        raise WSOLValueError(f"{source}: std must be > 0, got {s}")
    return m, s


def normalization_from(source: Any) -> Normalization | None:
    """``(mean, std)`` from an explicit source, or ``None`` when it holds none.

    Accepted: a ``(mean, std)`` pair; a mapping with ``mean`` / ``std`` (timm ``pretrained_cfg``, timm
    ``resolve_data_config``) or ``image_mean`` / ``image_std`` (Hugging Face image-processor config); an object with
    ``image_mean`` / ``image_std`` attributes (a Hugging Face image processor); a torchvision weights enum
    (``weights.transforms()`` has ``mean`` / ``std``).
    """
    if source is None:
        return None
    if isinstance(source, Mapping):
        for a, b in (("mean", "std"), ("image_mean", "image_std")):
            if source.get(a) is not None and source.get(b) is not None:
                return _pair(source[a], source[b], "normalisation mapping")
        return None
    if isinstance(source, Sequence) and not isinstance(source, str) and len(source) == 2:
        return _pair(source[0], source[1], "`input_normalization`")
    if getattr(source, "image_mean", None) is not None and getattr(source, "image_std", None) is not None:
        return _pair(source.image_mean, source.image_std, type(source).__name__)
    transforms = getattr(source, "transforms", None)
    if callable(transforms):
        t = transforms()
        if getattr(t, "mean", None) is not None and getattr(t, "std", None) is not None:
            return _pair(t.mean, t.std, f"{source}.transforms()")
    return None


def model_normalization(model: nn.Module) -> Normalization | None:
    """The normalisation declared by ``model`` or one of its sub-modules (timm ``pretrained_cfg`` / ``default_cfg``;
    a Hugging Face model's ``preprocessing`` hint is not part of its config, pass its processor explicitly)."""
    for module in model.modules():
        for attr in ("pretrained_cfg", "default_cfg"):
            cfg = getattr(module, attr, None)
            if isinstance(cfg, Mapping):
                found = normalization_from(cfg)
                if found is not None:
                    return found
    return None


def unnormalize_to_255(x: torch.Tensor, normalization: Normalization | None) -> torch.Tensor:
    """Undo ``(x − mean) / std`` and scale to ``[0, 255]``; ``None``: ``x`` is taken to be in ``[0, 1]``."""
    if normalization is None:
        return x * 255.0
    mean, std = normalization
    if len(mean) != x.shape[1]:
        raise WSOLValueError(f"the input normalisation has {len(mean)} channels but `x` has shape {tuple(x.shape)}")
    m = x.new_tensor(mean).view(1, -1, 1, 1)
    s = x.new_tensor(std).view(1, -1, 1, 1)
    return (x * s + m) * 255.0
