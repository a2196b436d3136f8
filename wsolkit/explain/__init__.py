"""Methods over a trained classifier: Zhou et al.'s ``cam`` and the top-down explainers (survey Sec. 2.3).

Every name is a registry method (``needs="classifier"``): ``wsolkit.create_method(name, classifier=model,
**options)`` returns an ``nn.Module`` whose ``forward(x, labels=None)`` gives the classifier's logits and the raw map
of the explained class, ``(B, 1, h, w)``. None of them is trained: train the classifier, then wrap it.

- ``cam`` (:class:`CAM`): ``W_c · F`` off a GAP classifier's own last linear layer (family ``"cam"``).
- Gradient family: :class:`GradCAM`, :class:`GradCAMPlusPlus`, :class:`SmoothGradCAMPlusPlus`, :class:`XGradCAM`,
  :class:`LayerCAM`. Confidence family: :class:`ScoreCAM`, :class:`SSCAM`, :class:`ISCAM`, :class:`AblationCAM`
  (family ``"explainer"``).

Example:
    >>> import timm, wsolkit
    >>> clf = timm.create_model("test_resnet", num_classes=3).eval()
    >>> m = wsolkit.create_method("gradcam++", classifier=clf)
    >>> out = m(torch.rand(2, 3, 64, 64))
    >>> wsolkit.cams.postprocess(out.cams, None, (64, 64)).shape
    torch.Size([2, 64, 64])
"""

from __future__ import annotations

from wsolkit.explain._hooks import resolve_target_layers
from wsolkit.explain._legacy import (  # deprecated (wsolkit._deprecation): out of __all__
    create_explainer as create_explainer,
)
from wsolkit.explain._legacy import list_explainers as list_explainers
from wsolkit.explain._registration import register_all
from wsolkit.explain.ablation import AblationCAM
from wsolkit.explain.base import BaseCAM, InferenceModeError, target_indices
from wsolkit.explain.cam import CAM, NotAGAPNetworkError
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
    "CAM",
    "GradCAM",
    "GradCAMPlusPlus",
    "SmoothGradCAMPlusPlus",
    "XGradCAM",
    "LayerCAM",
    "ScoreCAM",
    "SSCAM",
    "ISCAM",
    "AblationCAM",
    "InferenceModeError",
    "NotAGAPNetworkError",
    "gradcam_map",
    "gradcampp_map",
    "xgradcam_map",
    "layercam_map",
    "resolve_target_layers",
    "target_indices",
]

register_all()
