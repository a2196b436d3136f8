"""Top-down explainers (survey Sec. 2.3): wrap a trained classifier and explain its decision with a map.

Gradient family: :class:`GradCAM`, :class:`GradCAMPlusPlus`, :class:`SmoothGradCAMPlusPlus`, :class:`XGradCAM`,
:class:`LayerCAM`. Confidence family: :class:`ScoreCAM`, :class:`SSCAM`, :class:`ISCAM`, :class:`AblationCAM`.

Example:
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
    ...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))
    >>> with create_explainer("gradcam++", net, target_layers="1") as cam:
    ...     cam(torch.rand(2, 3, 16, 16)).shape
    torch.Size([2, 16, 16])
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from wsolkit._checks import WSOLTypeError, WSOLValueError, close_matches
from wsolkit.explain.ablation import AblationCAM
from wsolkit.explain.base import BaseCAM, resolve_target_layers
from wsolkit.explain.gradient import (
    GradCAM,
    GradCAMPlusPlus,
    LayerCAM,
    SmoothGradCAMPlusPlus,
    XGradCAM,
    gradcam_map,
    gradcampp_map,
    layercam_map,
    xgradcam_map,
)
from wsolkit.explain.score import ISCAM, SSCAM, ScoreCAM

__all__ = [
    "BaseCAM",
    "GradCAM",
    "GradCAMPlusPlus",
    "SmoothGradCAMPlusPlus",
    "XGradCAM",
    "LayerCAM",
    "ScoreCAM",
    "SSCAM",
    "ISCAM",
    "AblationCAM",
    "gradcam_map",
    "gradcampp_map",
    "xgradcam_map",
    "layercam_map",
    "resolve_target_layers",
    "create_explainer",
    "list_explainers",
]

_EXPLAINERS: dict[str, type[BaseCAM]] = {
    cls.name: cls
    for cls in (
        GradCAM,
        GradCAMPlusPlus,
        SmoothGradCAMPlusPlus,
        XGradCAM,
        LayerCAM,
        ScoreCAM,
        SSCAM,
        ISCAM,
        AblationCAM,
    )
}


def list_explainers() -> list[str]:
    """Registered explainer names, in the survey's order (gradient family, then confidence family).

    Example:
        >>> list_explainers()[:3]
        ['gradcam', 'gradcam++', 'smoothgradcam++']
    """
    return list(_EXPLAINERS)


def create_explainer(name: str, model: nn.Module, **kwargs: Any) -> BaseCAM:
    """Build an explainer by name, e.g. ``create_explainer("scorecam", model, batch_size=64)``.

    Args:
        name: one of :func:`list_explainers` (case-insensitive; ``-`` and ``_`` ignored).
        model: the classifier to explain.
        **kwargs: passed to the explainer's constructor (``target_layers``, ``upsample``, ...).

    Returns:
        The explainer (usable as a context manager).
    """
    if not isinstance(name, str):
        raise WSOLTypeError(f"`name` must be a string, got {type(name).__name__}")
    key = name.lower().replace("-", "").replace("_", "").replace("plusplus", "++")
    if key not in _EXPLAINERS:
        hint = close_matches(key, _EXPLAINERS)
        extra = f"; did you mean {hint}?" if hint else f"; choose from {list(_EXPLAINERS)}"
        raise WSOLValueError(f"unknown explainer {name!r}{extra}")
    return _EXPLAINERS[key](model, **kwargs)
