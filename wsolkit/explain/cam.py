"""CAM read off a trained classifier's own last linear layer (Zhou et al., 2016; survey eq. 2), no retraining.

For a classifier whose head is global average pooling followed by one linear layer, ``s_c = Σ_k W_ck mean_ij F_kij
+ b_c``, the class activation map is ``M_c(i, j) = Σ_k W_ck F_kij`` (no bias; ``mean_ij M_c + b_c = s_c``). The
method finds ``F`` and ``W`` in the classifier and checks, on every call, that the classifier's pre-logits vector
is exactly the spatial mean of ``F`` and that ``W`` maps it to the logits — so the map is the CAM of this very
classifier, or a typed error says why the classifier is not a GAP network (a VGG-like head that flattens a 7×7 map,
an MLP head, a normalisation after the pooling as in ConvNeXt: use an explainer then).

Where ``F`` and ``W`` come from:

- timm models: ``forward_features`` → ``F``; ``forward_head(F, pre_logits=True)`` is checked against ``mean F``;
  ``get_classifier()`` is ``W`` (an ``nn.Linear``);
- a :class:`~wsolkit.models.WSOLModel`: its own class maps (``out.cams``);
- torchvision and Hugging Face classifiers (output with ``.logits``) and other modules: the last linear layer is
  ``fc`` / ``classifier`` / ``head`` (a ``Linear``, or a ``Sequential`` ending in one after only dropout /
  flatten / identity), or the last ``Linear`` of a plain ``nn.Sequential``; ``F`` is the input of the last
  ``AdaptiveAvgPool2d`` executed (or, for a functional pooling as in DenseNet, the last 4-D module output, possibly
  through a ReLU), captured by hooks during the one forward pass and removed afterwards.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from wsolkit import cams as cam_ops
from wsolkit._checks import WSOLTypeError, check_floating, check_ndim
from wsolkit._modules import NotAGAPNetworkError, last_linear
from wsolkit.explain._hooks import _eval_mode, _first_tensor, model_logits, unwrap_model
from wsolkit.explain.base import Targets, _check_num_classes, target_indices
from wsolkit.method import WSOLMethod
from wsolkit.output import WSOLOutput

__all__ = ["CAM", "NotAGAPNetworkError"]

def _last_linear(model: nn.Module) -> nn.Linear:
    return last_linear(model)  # type: ignore[return-value]


def _is_mean(pooled: torch.Tensor, feats: torch.Tensor) -> bool:
    if feats.ndim != 4 or pooled.ndim != 2 or pooled.shape != feats.shape[:2] or feats.shape[-2:].numel() < 1:
        return False
    with torch.no_grad():
        return _close(pooled, feats.mean((2, 3)))


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """``a ≈ b`` to the precision of the dtype (relative to the larger of 1 and ``max |b|``)."""
    a, b = a.detach(), b.detach().to(a.dtype)
    tol = 1e-10 if a.dtype == torch.float64 else 1e-4
    scale = max(1.0, float(b.abs().max())) if b.numel() else 1.0
    return bool(torch.allclose(a, b, rtol=tol, atol=tol * scale))



class CAM(WSOLMethod):
    """Class activation maps of a trained GAP → linear classifier, read off its own last linear layer.

    ``cams = W_c · F`` (no bias) at the feature resolution for the explained class ``c``; not trained
    (``training_steps`` raises :class:`~wsolkit.NotTrainableError`). Over a :class:`~wsolkit.models.WSOLModel` the
    maps are the head's own ``out.cams`` (for the GAP head ``W_c · F + b_c``, whose mean is the logit): a per-class
    constant apart from Zhou et al.'s map, identical after the protocol's min-max normalisation.

    Args:
        classifier: a trained timm / torchvision / Hugging Face GAP classifier or a
            :class:`~wsolkit.models.WSOLModel` (a registered submodule).
        num_classes: classes K; read from the classifier when ``None``.
        eval_mode: run the classifier in eval mode during the call (each module's flag restored afterwards).

    Shape:
        - x: :math:`(B, 3, H, W)`
        - logits: :math:`(B, K)`; cams: :math:`(B, 1, h, w)` at the feature resolution

    Example:
        >>> import timm
        >>> m = CAM(timm.create_model("test_resnet", num_classes=3))
        >>> out = m(torch.rand(2, 3, 32, 32), labels=[0, 2])
        >>> out.logits.shape, out.cams.shape
        (torch.Size([2, 3]), torch.Size([2, 1, 1, 1]))
    """

    trainable = False

    def __init__(self, classifier: nn.Module, *, num_classes: int | None = None, eval_mode: bool = True):
        super().__init__()
        if not isinstance(classifier, nn.Module):
            raise WSOLTypeError(f"`classifier` must be a torch.nn.Module, got {type(classifier).__name__}")
        from wsolkit.models import WSOLModel

        self.classifier = classifier
        self.num_classes = _check_num_classes(classifier, num_classes)
        self.eval_mode = bool(eval_mode)
        inner = unwrap_model(classifier)
        if isinstance(inner, WSOLModel):
            self._kind = "wsol"
        elif all(callable(getattr(inner, a, None)) for a in ("forward_features", "forward_head", "get_classifier")):
            self._kind = "timm"
            _last_linear(inner)
        else:
            self._kind = "hooks"
            _last_linear(inner)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, source={self._kind!r}"

    def forward(self, x: torch.Tensor, labels: Targets = None) -> WSOLOutput:
        """Logits of the classifier and the CAM of ``labels`` (``None``: the predicted class).

        Args:
            x: input images, preprocessed as the classifier expects.
            labels: an int / numpy integer, a list of ints, a numpy or torch integer array, or ``None``.
        """
        check_ndim(x, "x", 4, "(B, C, H, W)")
        check_floating(x, "x")
        if callable(labels) and not isinstance(labels, torch.Tensor):
            raise WSOLTypeError("`labels` of `cam` must be class indices (a callable score has no linear weights)")
        with _eval_mode(self.classifier, self.eval_mode):
            if self._kind == "wsol":
                out = self.classifier(x)
                idx = target_indices(out.logits, labels)
                if out.cams.shape[1] == 1:
                    return WSOLOutput(out.logits, out.cams, {})
                return WSOLOutput(out.logits, cam_ops.select(out.cams, idx)[:, None], {})
            feats, pooled, logits, linear = self._timm(x) if self._kind == "timm" else self._hooked(x)
        with torch.no_grad():
            consistent = _close(linear(pooled), logits)
        if not consistent:
            raise NotAGAPNetworkError(
                f"the last linear layer of {type(unwrap_model(self.classifier)).__name__} does not produce its logits "
                f"from the pooled features (a layer after it?): CAM does not apply"
            )
        idx = target_indices(logits, labels)
        w = linear.weight[idx].to(feats.dtype)  # (B, D): W_c for each image
        cams = torch.einsum("bd,bdhw->bhw", w, feats)[:, None]
        return WSOLOutput(logits, cams, {})

    def _timm(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, nn.Linear]:
        inner = unwrap_model(self.classifier)
        native = inner.forward_features(x)
        feats = native.permute(0, 3, 1, 2) if getattr(inner, "output_fmt", "NCHW") == "NHWC" else native
        if feats.ndim != 4:
            raise NotAGAPNetworkError(
                f"{type(inner).__name__}.forward_features returns {tuple(native.shape)}, not a (B, D, h, w) map "
                f"(a transformer's tokens?): CAM needs a GAP CNN (use an explainer)"
            )
        pooled = inner.forward_head(native, pre_logits=True)
        logits = inner.forward_head(native)
        if not _is_mean(pooled, feats):
            raise NotAGAPNetworkError(
                f"the pre-logits of {type(inner).__name__} ({tuple(pooled.shape)}) are not the spatial mean of its "
                f"features {tuple(feats.shape)} (another pooling, or a layer after it): CAM does not apply"
            )
        return feats, pooled, logits, _last_linear(inner)

    def _hooked(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, nn.Linear]:
        inner = unwrap_model(self.classifier)
        linear = _last_linear(inner)
        seen: dict[str, Any] = {"pool_in": None, "last4d": None, "pooled": None}

        def on_pool(_m: nn.Module, inp: Any) -> None:
            if inp and isinstance(inp[0], torch.Tensor) and inp[0].ndim == 4:
                seen["pool_in"] = inp[0]

        def on_any(_m: nn.Module, _i: Any, out: Any) -> None:
            t = _first_tensor(out)
            if t is not None and t.ndim == 4 and t.shape[-1] * t.shape[-2] > 1:
                seen["last4d"] = t

        def on_linear(_m: nn.Module, inp: Any) -> None:
            seen["pooled"] = inp[0]

        handles = []
        try:
            for m in inner.modules():
                if isinstance(m, nn.AdaptiveAvgPool2d):
                    handles.append(m.register_forward_pre_hook(on_pool))
                if m is not inner and m is not linear:
                    handles.append(m.register_forward_hook(on_any))
            handles.append(linear.register_forward_pre_hook(on_linear))
            logits = model_logits(self.classifier(x))
        finally:
            for h in handles:
                h.remove()
        pooled = seen["pooled"]
        if pooled is None:
            raise NotAGAPNetworkError(f"the last linear layer of {type(inner).__name__} was not called")
        pooled = pooled.flatten(1)
        candidates = [t for t in (seen["pool_in"], seen["last4d"]) if t is not None]
        candidates += [torch.relu(t) for t in candidates]
        for feats in candidates:
            if _is_mean(pooled, feats):
                return feats, pooled, logits, linear
        got = [tuple(t.shape) for t in candidates[: len(candidates) // 2]]
        raise NotAGAPNetworkError(
            f"the last linear layer of {type(inner).__name__} reads a {tuple(pooled.shape)} vector that is not the "
            f"spatial mean of a feature map (seen {got}; a VGG-like head flattens a 7×7 map): CAM does not apply "
            f"(use an explainer)"
        )
