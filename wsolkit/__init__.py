"""wsolkit: weakly-supervised object localization (WSOL) for PyTorch.

Bottom-up pooling heads, CAM refinement, top-down explainers, MaxMin, F-CAM/NEGEV and the evaluation protocol
(PxAP and friends), with a synthetic histology-like benchmark.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the lazy attributes below resolve to
    from wsolkit import (  # noqa: F401
        backbones,
        cams,
        data,
        decoders,
        erasing,
        explain,
        heads,
        losses,
        maxmin,
        metrics,
        training,
        wsi,
    )
    from wsolkit.backbones import create_backbone, list_backbones, register_backbone  # noqa: F401
    from wsolkit.explain import create_explainer, list_explainers  # noqa: F401
    from wsolkit.heads import create_head, list_heads, register_head  # noqa: F401
    from wsolkit.inference import Localization, localize  # noqa: F401
    from wsolkit.method import (  # noqa: F401
        LifecycleWarning,
        NotTrainableError,
        WSOLMethod,
        create_method,
        list_methods,
        method_info,
        register_method,
    )
    from wsolkit.models import WSOLModel  # noqa: F401
    from wsolkit.output import LossOutput, WSOLOutput  # noqa: F401

__version__ = "0.3.0"

__all__ = [
    "__version__",
    "WSOLOutput",
    "LossOutput",
    "WSOLMethod",
    "NotTrainableError",
    "LifecycleWarning",
    "create_method",
    "list_methods",
    "method_info",
    "register_method",
    "WSOLModel",
    "localize",
    "Localization",
    "create_backbone",
    "list_backbones",
    "register_backbone",
    "create_head",
    "list_heads",
    "register_head",
    "backbones",
    "cams",
    "data",
    "heads",
    "metrics",
    "erasing",
    "losses",
    "maxmin",
    "decoders",
    "explain",
    "wsi",
    "training",
]

# `import wsolkit` is lazy (PEP 562): a name is imported on first use, so `wsolkit --help` does not import torch
_SUBPACKAGES = {"backbones", "cams", "data", "decoders", "erasing", "explain", "heads", "losses", "maxmin", "metrics",
                "training", "wsi", "inference", "loading", "recipes"}
_ATTRIBUTES = {
    "WSOLOutput": "wsolkit.output", "LossOutput": "wsolkit.output", "WSOLMethod": "wsolkit.method",
    "NotTrainableError": "wsolkit.method", "LifecycleWarning": "wsolkit.method", "create_method": "wsolkit.method",
    "list_methods": "wsolkit.method", "method_info": "wsolkit.method", "register_method": "wsolkit.method",
    "WSOLModel": "wsolkit.models", "create_backbone": "wsolkit.backbones", "list_backbones": "wsolkit.backbones",
    "register_backbone": "wsolkit.backbones", "create_head": "wsolkit.heads", "list_heads": "wsolkit.heads",
    "register_head": "wsolkit.heads", "localize": "wsolkit.inference", "Localization": "wsolkit.inference",
    "create_explainer": "wsolkit.explain", "list_explainers": "wsolkit.explain",
}


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"wsolkit.{name}")
    if name in _ATTRIBUTES:
        value = getattr(importlib.import_module(_ATTRIBUTES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'wsolkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
