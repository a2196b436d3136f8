"""Base class of the top-down explainers: a :class:`~wsolkit.WSOLMethod` over a trained classifier.

An explainer wraps a trained classifier (timm, torchvision, a :class:`~wsolkit.models.WSOLModel`, a Hugging Face
image classifier whose output has ``.logits``, or any ``nn.Module`` returning logits) and explains one class per
image with a map (survey Sec. 2.3, "top-down" methods). It is not trained: ``training_steps`` raises
:class:`~wsolkit.NotTrainableError` — train the classifier, then wrap it.

``forward(x, labels=None)`` returns ``WSOLOutput(logits, cams, {})``: the classifier's logits on ``x`` and the raw
map of the explained class at the target layer's resolution, ``(B, 1, h, w)``, non-negative and unnormalised;
:func:`wsolkit.cams.postprocess` upsamples and normalises it. Hooks, train/eval flags, ``requires_grad`` flags and
the grad mode are left as they were found, also after an exception.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from wsolkit import cams as cam_ops
from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError, check_floating, check_ndim
from wsolkit.explain._hooks import (
    LayerSpec,
    _eval_mode,
    hf_tokens_to_grid,
    model_logits,
    resolve_target_layers,
    unwrap_model,
)
from wsolkit.method import WSOLMethod, classifier_num_classes
from wsolkit.output import WSOLOutput

__all__ = ["BaseCAM", "InferenceModeError", "Targets", "target_indices"]

Targets = None | int | Sequence[int] | np.ndarray | torch.Tensor | Callable[[torch.Tensor], torch.Tensor]


class InferenceModeError(WSOLValueError, RuntimeError):
    """A gradient explainer was called under :func:`torch.inference_mode` (it needs gradients to its target layer)."""


def _as_index_tensor(labels: Any, b: int) -> torch.Tensor:
    """``labels`` (int, numpy integer, list / tuple of ints, numpy or torch integer array) as a tensor."""
    if isinstance(labels, (bool, np.bool_)):
        raise WSOLTypeError("`labels` must be None, an int, a (B,) integer array / list / tensor or a callable, "
                            "got bool")
    if isinstance(labels, (int, np.integer)):
        return torch.full((b,), int(labels), dtype=torch.long)
    if isinstance(labels, (list, tuple)):
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in labels):
            kinds = sorted({type(v).__name__ for v in labels})
            raise WSOLTypeError(f"`labels` given as a list must hold ints, got {kinds}")
        return torch.tensor([int(v) for v in labels], dtype=torch.long)
    if isinstance(labels, np.ndarray):
        if labels.dtype.kind not in "iu":
            raise WSOLTypeError(f"`labels` must be an integer array, got numpy dtype {labels.dtype}")
        return torch.from_numpy(labels.astype(np.int64))
    if isinstance(labels, torch.Tensor):
        if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
            raise WSOLTypeError(f"`labels` must be an integer tensor, got {labels.dtype}")
        return labels
    raise WSOLTypeError(
        "`labels` must be None, an int, a (B,) integer array / list / tensor or a callable, "
        f"got {type(labels).__name__}"
    )


def target_indices(logits: torch.Tensor, labels: Targets) -> torch.Tensor | None:
    """``(B,)`` class indices to explain (``None`` → the predicted class); ``None`` for a callable ``labels``.

    Args:
        logits: the classifier's ``(B, C)`` logits.
        labels: ``None``, an int or numpy integer (same class for the batch), a list of ints, a numpy integer array
            (what ``argmax`` returns), an integer tensor of ``B`` (or one) entries, or a callable
            ``f(logits) -> (B,)`` scores.

    Example:
        >>> import numpy as np
        >>> target_indices(torch.zeros(2, 3), np.array([2, 0])), target_indices(torch.zeros(2, 3), [1, 1])
        (tensor([2, 0]), tensor([1, 1]))
    """
    b, c = logits.shape
    if callable(labels) and not isinstance(labels, torch.Tensor):
        return None
    if labels is None:
        return logits.detach().argmax(1)
    t = _as_index_tensor(labels, b)
    t = t.reshape(-1) if t.ndim == 0 else t
    if t.ndim == 1 and t.numel() == 1 and b != 1:
        t = t.expand(b)
    if t.ndim != 1 or t.shape[0] != b:
        got = tuple(np.shape(labels)) if not isinstance(labels, torch.Tensor) else tuple(labels.shape)
        raise ShapeError(f"`labels` must have shape ({b},) for a batch of {b}, got {got}")
    if b and (int(t.min()) < 0 or int(t.max()) >= c):
        raise WSOLValueError(
            f"`labels` must be class indices in [0, {c - 1}], got values in [{int(t.min())}, {int(t.max())}]"
        )
    return t.to(device=logits.device, dtype=torch.long)


class BaseCAM(WSOLMethod):
    """Base class of the top-down explainers (use a subclass, e.g. :class:`~wsolkit.explain.GradCAM`).

    Subclasses implement ``_layer_maps(x, labels) -> (logits, [raw (B, h, w) map per target layer])``.

    Args:
        classifier: the trained classifier (a registered submodule: ``.to()`` and ``state_dict`` include it).
        target_layers: layer(s) to explain; see :func:`~wsolkit.explain.resolve_target_layers`. Several layers
            are fused by the mean of their raw maps at the largest resolution (LayerCAM overrides the fusion).
        num_classes: classes K; read from the classifier when ``None`` (checked against it when both are known).
        reshape: ``reshape(activation) -> (B, K, h, w)`` for layers with non-spatial outputs. ``None`` handles timm
            and Hugging Face ViT/DeiT tokens (prefix tokens dropped, reshaped to the patch grid), Hugging Face Swin
            tokens and timm Swin's NHWC outputs.
        eval_mode: run the classifier in eval mode during the call (each module's flag is restored afterwards).

    Shape:
        - x: :math:`(B, 3, H, W)`
        - logits: :math:`(B, K)`; cams: :math:`(B, 1, h, w)` at the target layer's resolution
    """

    name = "base"
    trainable = False
    needs_grad = True

    def __init__(
        self,
        classifier: nn.Module,
        target_layers: LayerSpec = None,
        *,
        num_classes: int | None = None,
        reshape: Callable[[torch.Tensor], torch.Tensor] | None = None,
        eval_mode: bool = True,
    ):
        super().__init__()
        if not isinstance(classifier, nn.Module):
            raise WSOLTypeError(f"`classifier` must be a torch.nn.Module, got {type(classifier).__name__}")
        if reshape is not None and not callable(reshape):
            raise WSOLTypeError(f"`reshape` must be callable, got {type(reshape).__name__}")
        self.classifier = classifier
        self.num_classes = _check_num_classes(classifier, num_classes)
        self.target_layers = target_layers
        self.reshape = reshape
        self.eval_mode = bool(eval_mode)
        self._layers: list[nn.Module] | None = None
        if target_layers is not None:
            self._layers = resolve_target_layers(classifier, target_layers)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, eval_mode={self.eval_mode}"

    @property
    def layers(self) -> list[nn.Module]:
        """The resolved target layers (automatic ones are resolved on the first call)."""
        if self._layers is None:
            raise WSOLValueError("target layers are resolved on the first call")
        return self._layers

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return model_logits(self.classifier(x))

    def _target_indices(self, logits: torch.Tensor, labels: Targets) -> torch.Tensor | None:
        return target_indices(logits, labels)

    def _scores(self, logits: torch.Tensor, targets: Targets, idx: torch.Tensor | None) -> torch.Tensor:
        """The ``(B,)`` target scores ``s_c`` (logits of the target class, or ``labels(logits)``)."""
        if idx is None:
            s = targets(logits)  # type: ignore[operator]
            if not isinstance(s, torch.Tensor) or s.shape != (logits.shape[0],):
                got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
                raise ShapeError(f"callable `labels` must return a ({logits.shape[0]},) tensor of scores, got {got}")
            return s
        return logits.gather(1, idx[:, None])[:, 0]

    def _spatial(self, a: torch.Tensor, x: torch.Tensor, layer: nn.Module) -> torch.Tensor:
        """Activation as ``(B, K, h, w)`` (user reshape, timm ViT tokens, Swin NHWC)."""
        inner = unwrap_model(self.classifier)
        if self.reshape is not None:
            out = self.reshape(a)
        elif a.ndim == 3 and hasattr(inner, "patch_embed") and hasattr(inner, "num_prefix_tokens"):
            n_prefix = int(inner.num_prefix_tokens)
            tokens = a[:, n_prefix:]
            n = tokens.shape[1]
            ps = getattr(inner.patch_embed, "patch_size", None)
            gh, gw = (x.shape[-2] // ps[0], x.shape[-1] // ps[1]) if ps is not None else (0, 0)
            if gh * gw != n:
                side = int(round(n**0.5))
                gh, gw = side, n // max(side, 1)
            if gh * gw != n:
                raise ShapeError(
                    f"cannot reshape {n} tokens of target layer {type(layer).__name__} to a grid; pass `reshape`"
                )
            out = tokens.reshape(a.shape[0], gh, gw, a.shape[-1]).permute(0, 3, 1, 2)
        elif a.ndim == 3 and hf_tokens_to_grid(a, x, inner) is not None:  # Hugging Face ViT / DeiT / Swin tokens
            out = hf_tokens_to_grid(a, x, inner)
        elif a.ndim == 4 and getattr(inner, "output_fmt", "NCHW") == "NHWC":
            out = a.permute(0, 3, 1, 2)
        else:
            out = a
        if not isinstance(out, torch.Tensor) or out.ndim != 4:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ShapeError(
                f"target layer {type(layer).__name__} must have a spatial output (B, K, h, w), got {got}; "
                "choose another layer or pass `reshape`"
            )
        return out

    def _fuse(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """Mean of the layers' raw maps at the largest map resolution."""
        if len(maps) == 1:
            return maps[0]
        size = max((m.shape[-2:] for m in maps), key=lambda s: s[0] * s[1])
        return torch.stack([cam_ops.upsample(m, tuple(size)) for m in maps]).mean(0)

    def _layer_maps(self, x: torch.Tensor, labels: Targets) -> tuple[torch.Tensor, list[torch.Tensor]]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, labels: Targets = None) -> WSOLOutput:
        """Explain ``x`` for ``labels``.

        Args:
            x: input images, preprocessed as the classifier expects.
            labels: classes to explain: ``None`` (the predicted class), an int or numpy integer (one class for the
                batch), a list of ints, a numpy integer array, a ``(B,)`` integer tensor, or a callable
                ``f(logits) -> (B,)`` scores (e.g. a margin ``lambda z: z[:, 1] - z[:, 0]``).

        Returns:
            ``WSOLOutput(logits (B, K), cams (B, 1, h, w), {})``: the classifier's logits on ``x`` and the raw map
            (non-negative, unnormalised) at the target layer's resolution.
        """
        check_ndim(x, "x", 4, "(B, C, H, W)")
        check_floating(x, "x")
        if self.needs_grad and torch.is_inference_mode_enabled():
            raise InferenceModeError(
                f"{type(self).__name__} needs gradients to its target layer and cannot run under "
                f"torch.inference_mode(); call it under torch.no_grad() (or no context) instead"
            )
        if self._layers is None:
            self._layers = resolve_target_layers(self.classifier, self.target_layers, x)
        with _eval_mode(self.classifier, self.eval_mode):
            logits, maps = self._layer_maps(x, labels)
        return WSOLOutput(logits, self._fuse(maps)[:, None], {})


def _check_num_classes(classifier: nn.Module, num_classes: int | None) -> int | None:
    inferred = classifier_num_classes(unwrap_model(classifier))
    if num_classes is None:
        return inferred
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise WSOLValueError(f"`num_classes` must be an int >= 1 or None, got {num_classes!r}")
    if inferred is not None and inferred != num_classes:
        raise WSOLValueError(f"`num_classes`={num_classes} but the classifier has {inferred} classes")
    return num_classes


def _masked_softmax(scores: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim restricted to ``valid`` entries (others get exactly 0; all invalid → all 0)."""
    neg = torch.finfo(scores.dtype).min
    z = torch.where(valid, scores, torch.full_like(scores, neg))
    w = torch.softmax(z, dim=-1)
    return torch.where(valid, w, torch.zeros_like(w))

