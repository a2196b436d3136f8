"""What every part of wsolkit needs to know about a user's model, said once.

- :func:`unwrap` — the module inside ``DataParallel`` / ``DistributedDataParallel`` / ``torch.compile`` wrappers;
- :func:`eval_mode` — eval mode for a block, each sub-module's own flag restored afterwards (also after an error);
- :func:`model_logits` — the ``(B, K)`` logits of a classifier's output (a tensor, a tuple, a
  :class:`~wsolkit.output.WSOLOutput`, a Hugging Face output with ``.logits``);
- :func:`last_linear` — the linear layer that maps pooled features to the logits;
- :func:`resolve_classifier` / :func:`classifier_num_classes` — a classifier from a module or a name, and the number
  of classes it says it has.

The explainers, the faithfulness metrics, the decoders, the training loop, :func:`wsolkit.localize` and the CLIs
use these functions; none has its own copy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn as nn

from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError

__all__ = ["unwrap", "eval_mode", "model_logits", "last_linear", "NotAGAPNetworkError", "resolve_classifier",
           "classifier_num_classes", "num_classes_of"]

_PASS_THROUGH = (nn.Dropout, nn.Flatten, nn.Identity)


def unwrap(model: Any) -> Any:
    """The module wrapped by ``DataParallel`` / ``DistributedDataParallel`` / ``torch.compile`` (any nesting).

    Example:
        >>> net = nn.Linear(2, 2)
        >>> unwrap(nn.DataParallel(net)) is net
        True
    """
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif isinstance(model, nn.Module) and isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


@contextlib.contextmanager
def eval_mode(model: Any, enabled: bool = True) -> Iterator[None]:
    """Put every sub-module of ``model`` in eval mode; restore each module's own flag afterwards.

    Objects that are not modules (a plain function) and ``enabled=False`` leave everything as it is.

    Example:
        >>> net = nn.Sequential(nn.Dropout(), nn.Linear(2, 2)); net[1].eval()  # doctest: +ELLIPSIS
        Linear(...)
        >>> with eval_mode(net):
        ...     net[0].training
        False
        >>> net.training, net[0].training, net[1].training
        (True, True, False)
    """
    if not enabled or not isinstance(model, nn.Module):
        yield
        return
    flags = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        yield
    finally:
        for m, f in flags:
            m.training = f


def model_logits(output: Any) -> torch.Tensor:
    """The logits of a classifier's output.

    Accepted: the logits tensor, a tuple whose first element is the logits, a
    :class:`~wsolkit.output.WSOLOutput`, or a Hugging Face output with a ``.logits`` attribute.

    Example:
        >>> model_logits((torch.zeros(2, 3), "anything")).shape
        torch.Size([2, 3])
    """
    hf = getattr(output, "logits", None)
    if isinstance(hf, torch.Tensor) and not isinstance(output, torch.Tensor):
        output = hf
    elif isinstance(output, (tuple, list)) and len(output) > 0:
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise WSOLTypeError(
            f"the classifier must return logits, a tuple whose first element is the logits, a WSOLOutput or an "
            f"output with `.logits`; got {type(output).__name__}"
        )
    if output.ndim != 2:
        raise ShapeError(f"the classifier's logits must have shape (B, C), got {tuple(output.shape)}")
    return output


class NotAGAPNetworkError(WSOLValueError):
    """The classifier's head is not global average pooling followed by one linear layer."""


def last_linear(model: nn.Module, *, strict: bool = True) -> nn.Linear | None:
    """The linear layer that maps the pooled features of a classifier to its logits.

    Looked for in ``get_classifier()`` (timm), then ``fc`` / ``classifier`` / ``head`` (torchvision, Hugging Face), a
    ``Sequential`` head whose only non-trivial layer is linear, and a ``Sequential`` model ending in one.

    Args:
        model: the classifier (wrappers are removed with :func:`unwrap`).
        strict: raise :class:`NotAGAPNetworkError` when no such layer is found or the head holds more than one
            layer (what CAM needs); ``False`` falls back to the model's last ``nn.Linear`` (``None`` if it has none).

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
        >>> last_linear(net) is net[3]
        True
    """
    model = unwrap(model)
    getter = getattr(model, "get_classifier", None)
    candidates = [getter()] if callable(getter) else []
    candidates += [getattr(model, a, None) for a in ("fc", "classifier", "head")]
    for c in candidates:
        if isinstance(c, nn.Linear):
            return c
        if isinstance(c, nn.Sequential) and len(c) > 0:
            last = [m for m in c if not isinstance(m, _PASS_THROUGH)]
            if len(last) == 1 and isinstance(last[0], nn.Linear) and isinstance(c[-1], (nn.Linear, *_PASS_THROUGH)):
                return last[0]
            if not strict:
                break
            raise NotAGAPNetworkError(
                f"the head of {type(model).__name__} is {type(c).__name__}({', '.join(type(m).__name__ for m in c)}),"
                f" not global average pooling followed by one linear layer: CAM does not apply (use an explainer, "
                f"e.g. create_method('gradcam', classifier=...))"
            )
    if isinstance(model, nn.Sequential):  # a plain Sequential ending in ... → pooling → (flatten) → Linear
        tail = [m for m in model if not isinstance(m, _PASS_THROUGH)]
        if tail and isinstance(tail[-1], nn.Linear):
            return tail[-1]
    if not strict:
        found = [m for m in model.modules() if isinstance(m, nn.Linear)]
        return found[-1] if found else None
    raise NotAGAPNetworkError(
        f"cannot find the last linear layer of {type(model).__name__} (looked at get_classifier(), `fc`, "
        f"`classifier`, `head`): CAM needs a GAP → linear classifier (use an explainer otherwise)"
    )


def classifier_num_classes(classifier: nn.Module) -> int | None:
    """Number of classes of a classifier when it says so (``num_classes``, HF ``config.num_labels``), else None."""
    classifier = unwrap(classifier)
    for obj, attr in ((classifier, "num_classes"), (getattr(classifier, "config", None), "num_labels")):
        v = getattr(obj, attr, None) if obj is not None else None
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return None


def num_classes_of(model: nn.Module) -> int | None:
    """The first number of classes declared by ``model`` or one of its sub-modules (None if none does)."""
    for m in unwrap(model).modules():
        k = classifier_num_classes(m)
        if k is not None:
            return k
    return None


def resolve_classifier(classifier: nn.Module | str, num_classes: int | None = None,
                       pretrained: bool = False) -> nn.Module:
    """A classifier module from a module or a name (``"timm:<name>"``, ``"tv:<name>"``, ``"hf:<name>"`` or a bare
    timm name); names are built by :func:`wsolkit.loading.load_classifier` (``timm:NAME:CKPT`` loads weights)."""
    if isinstance(classifier, nn.Module):
        return classifier
    if not isinstance(classifier, str):
        raise WSOLTypeError(f"`classifier` must be an nn.Module or a model name, got {type(classifier).__name__}")
    from wsolkit.loading import load_classifier

    spec = classifier if classifier.split(":", 1)[0] in ("timm", "tv", "hf") else f"timm:{classifier}"
    return load_classifier(spec, num_classes=num_classes, pretrained=pretrained)
