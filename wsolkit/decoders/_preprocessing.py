"""The input normalisation a classifier expects, read from the model (for undoing it before the CRF).

F-CAM / NEGEV only need the per-channel ``mean`` / ``std`` of :func:`wsolkit.data.preprocessing`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

from wsolkit._checks import WSOLValueError
from wsolkit.data.preprocessing import Preprocessing, preprocessing

__all__: list[str] = []

Normalization = tuple[tuple[float, ...], tuple[float, ...]]


def input_normalization_of(classifier: nn.Module, explicit: Any = None) -> Normalization:
    """``(mean, std)`` the classifier's inputs were standardised with — the one preprocessing rule.

    ``explicit`` (a ``(mean, std)`` pair, a Hugging Face image processor or its config, torchvision weights or a
    :class:`~wsolkit.data.Preprocessing`) wins; otherwise :func:`wsolkit.data.preprocessing` reads the classifier
    (timm ``pretrained_cfg``, wsolkit's own backbones, a checkpoint's recorded transform — the statistics
    :func:`wsolkit.training.fit` used), with its one fallback (ImageNet, and a ``PreprocessingWarning``) for a
    classifier that declares nothing: the CRF sees the image the classifier was fed.
    """
    if explicit is not None:
        if isinstance(explicit, Sequence) and not isinstance(explicit, str) and len(explicit) == 2:
            prep = Preprocessing(mean=explicit[0], std=explicit[1], source="`input_normalization`")
        else:
            try:
                prep = preprocessing(explicit, warn=False)
            except (TypeError, ValueError) as e:
                raise WSOLValueError(
                    f"`input_normalization`: no mean/std found in {type(explicit).__name__}; pass (mean, std), a "
                    f"Hugging Face image processor, torchvision weights or a mapping with mean/std ({e})"
                ) from None
        return prep.mean, prep.std
    prep = preprocessing(classifier)
    return prep.mean, prep.std


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
