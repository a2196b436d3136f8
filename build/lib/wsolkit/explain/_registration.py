"""Registration of ``cam`` and the nine explainers in the method registry (``needs="classifier"``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn as nn

from wsolkit.explain.ablation import AblationCAM
from wsolkit.explain.cam import CAM
from wsolkit.explain.gradient import GradCAM, GradCAMPlusPlus, LayerCAM, SmoothGradCAMPlusPlus, XGradCAM
from wsolkit.explain.score import ISCAM, SSCAM, ScoreCAM
from wsolkit.method import list_methods, register_method

__all__ = ["register_all"]

EXPLAINER_CLASSES = (GradCAM, GradCAMPlusPlus, SmoothGradCAMPlusPlus, XGradCAM, LayerCAM, ScoreCAM, SSCAM, ISCAM,
                     AblationCAM)


def _factory(cls: type[nn.Module]) -> Callable[..., nn.Module]:
    def build(num_classes: int | None = None, *, classifier: nn.Module, **options: Any) -> nn.Module:
        return cls(classifier, num_classes=num_classes, **options)

    build.__name__ = build.__qualname__ = f"create_{cls.__name__}"
    build.__doc__ = f"Registry factory of :class:`{cls.__name__}`: ``create_method(name, classifier=..., **options)``."
    return build


_FACTORIES = {"cam": (_factory(CAM), "cam"), **{c.name: (_factory(c), "explainer") for c in EXPLAINER_CLASSES}}


def register_all() -> None:
    """Register ``cam`` and the explainers (once; a name already taken is left alone).

    Example:
        >>> register_all()
        >>> "scorecam" in list_methods()
        True
    """
    taken = set(list_methods())
    for name, (factory, family) in _FACTORIES.items():
        if name not in taken:
            register_method(name, needs="classifier", family=family)(factory)
