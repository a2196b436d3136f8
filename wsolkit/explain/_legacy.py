"""Deprecated entry points of the first release, kept one release: ``create_explainer`` and ``list_explainers``.

They now build the registry methods (:func:`wsolkit.create_method`); ``create_explainer`` wraps the method in an
object with the old call form ``explainer(x, targets) -> (B, H, W)`` maps in ``[0, 1]`` (upsampled and normalised
with :func:`wsolkit.cams.postprocess`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from wsolkit import cams as cam_ops
from wsolkit._deprecation import warn_deprecated
from wsolkit.explain.base import BaseCAM, Targets

__all__ = ["create_explainer", "list_explainers"]

#: the survey's order (gradient family, then confidence family)
EXPLAINERS = ["gradcam", "gradcam++", "smoothgradcam++", "xgradcam", "layercam", "scorecam", "sscam", "iscam",
              "ablationcam"]


class _LegacyExplainer:
    """The old call form over a registry method: ``explainer(x, targets) -> maps`` (deprecated)."""

    def __init__(self, method: BaseCAM, upsample: bool, normalize: bool):
        self.method = method
        self.upsample = bool(upsample)
        self.normalize = bool(normalize)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["method"], name)

    def __enter__(self) -> _LegacyExplainer:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def __call__(self, x: torch.Tensor, targets: Targets = None) -> torch.Tensor:
        out = self.method(x, targets).cams[:, 0]
        if self.upsample:
            out = cam_ops.upsample(out, tuple(x.shape[-2:]))
        return cam_ops.normalize(out) if self.normalize else out


def list_explainers() -> list[str]:
    """Deprecated: use ``wsolkit.list_methods()`` (``wsolkit.method_info(name)["family"] == "explainer"``).

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     list_explainers()[:3]
        ['gradcam', 'gradcam++', 'smoothgradcam++']
    """
    warn_deprecated("wsolkit.list_explainers", "wsolkit.list_methods() (family 'explainer')")
    return list(EXPLAINERS)


def create_explainer(name: str, model: nn.Module, *, upsample: bool = True, normalize: bool = True,
                     **options: Any) -> _LegacyExplainer:
    """Deprecated: use ``wsolkit.create_method(name, classifier=model, **options)`` and ``wsolkit.cams.postprocess``.

    Args:
        name: an explainer name.
        model: the classifier.
        upsample: resize the maps to the input size (old default).
        normalize: min-max normalise per image (old default).
        **options: the explainer's options (``target_layers``, ``batch_size``...).

    Returns:
        An object with the old call form ``explainer(x, targets) -> (B, H, W)`` (a context manager too).

    Example:
        >>> import warnings
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        ...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     create_explainer("gradcam", net, target_layers="1")(torch.rand(2, 3, 8, 8)).shape
        torch.Size([2, 8, 8])
    """
    from wsolkit.method import create_method

    warn_deprecated("wsolkit.create_explainer(name, model)", "wsolkit.create_method(name, classifier=model) "
                    "(forward returns WSOLOutput with raw cams; wsolkit.cams.postprocess makes the maps)")
    return _LegacyExplainer(create_method(name, classifier=model, **options), upsample, normalize)
