"""wsolkit: weakly-supervised object localization (WSOL) for PyTorch.

Bottom-up pooling heads, CAM refinement, top-down explainers, MaxMin, F-CAM/NEGEV and the evaluation protocol
(PxAP and friends), with a synthetic histology-like benchmark.
"""

from wsolkit.method import (
    NotTrainableError,
    WSOLMethod,
    create_method,
    list_methods,
    method_info,
    register_method,
)
from wsolkit.output import LossOutput, WSOLOutput

from wsolkit import backbones, cams, data, decoders, erasing, explain, heads, losses, maxmin, metrics, training, wsi  # noqa: I001  # isort: skip
from wsolkit.backbones import create_backbone, list_backbones, register_backbone
from wsolkit.explain import create_explainer, list_explainers
from wsolkit.heads import create_head, list_heads, register_head
from wsolkit.inference import Localization, localize
from wsolkit.models import WSOLModel

__version__ = "0.2.0"

__all__ = [
    "__version__",
    "WSOLOutput",
    "LossOutput",
    "WSOLMethod",
    "NotTrainableError",
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
    "create_explainer",
    "list_explainers",
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
