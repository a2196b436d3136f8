"""One way to load a model, for the Python API and every command.

A model is named by a *spec*:

- a path to a wsolkit checkpoint (written by :func:`wsolkit.training.fit` / ``save_checkpoint``): the method it
  records is rebuilt (:func:`wsolkit.training.load_method`);
- ``timm:NAME[:CKPT]`` — a timm classifier, ``CKPT`` an optional ``state_dict`` file;
- ``tv:NAME[:CKPT]`` — a torchvision classifier, same;
- ``hf:NAME`` — a Hugging Face image classifier (``AutoModelForImageClassification.from_pretrained(NAME)``, a hub
  name or a local folder).

Every file is read with ``torch.load(weights_only=True)``: a file that holds Python objects (a pickled module, a
crafted payload) is refused with :class:`UnsafeCheckpointError` before anything in it runs. The number of classes
of a classifier whose ``state_dict`` is given is read from the head's weight, so ``num_classes`` is only a check.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from wsolkit._checks import WSOLValueError
from wsolkit._modules import last_linear, unwrap

__all__ = ["load_model", "load_classifier", "load_method_from", "read_weights", "UnsafeCheckpointError"]

_KINDS = ("timm", "tv", "hf")


class UnsafeCheckpointError(WSOLValueError):
    """A file holds Python objects that ``torch.load(weights_only=True)`` refuses to unpickle."""


def read_weights(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with errors that say what happened and what to do.

    Raises:
        UnsafeCheckpointError: the file needs arbitrary unpickling (a pickled module or a crafted file);
            nothing of it was run.
        WSOLValueError: the file does not exist or is not a torch file.
    """
    p = Path(path)
    if not p.is_file():
        raise WSOLValueError(f"checkpoint {str(p)!r} does not exist")
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()
        why = next((s.strip() for s in first if "Unsupported" in s or "GLOBAL" in s), first[0] if first else "")
        raise UnsafeCheckpointError(
            f"refusing {str(p)!r}: it holds Python objects that torch.load(weights_only=True) does not load "
            f"({why}); save weights with torch.save(model.state_dict(), path) or a wsolkit checkpoint"
        ) from None
    except Exception as exc:  # noqa: BLE001 — a zip/pickle error of any kind: not a torch file
        raise WSOLValueError(f"cannot read checkpoint {str(p)!r}: {type(exc).__name__}: {exc}".splitlines()[0]) \
            from None


def _state_dict(obj: Any, where: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WSOLValueError(f"{where} does not hold a state_dict (a dict of tensors)")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}


def _head_classes(model: nn.Module, state: dict[str, torch.Tensor]) -> int | None:
    """K of the checkpoint's head: the out-features of the weight that the model's last linear layer would load."""
    fc = last_linear(model, strict=False)
    if fc is None:
        return None
    name = next((n for n, m in unwrap(model).named_modules() if m is fc), None)
    w = state.get(f"{name}.weight") if name is not None else None
    return int(w.shape[0]) if isinstance(w, torch.Tensor) and w.ndim == 2 else None


def _build(kind: str, name: str, num_classes: int | None, pretrained: bool) -> nn.Module:
    kw = {} if num_classes is None else {"num_classes": num_classes}
    if kind == "timm":
        import timm

        return timm.create_model(name, pretrained=pretrained, **kw)
    import torchvision

    weights = torchvision.models.get_model_weights(name).DEFAULT if pretrained else None
    model = torchvision.models.get_model(name, weights=weights, **kw)
    if weights is not None:
        from wsolkit.data.preprocessing import preprocessing

        model.preprocessing = preprocessing(weights)  # torchvision models do not remember their weights
    return model


def load_classifier(spec: str, *, num_classes: int | None = None, pretrained: bool = False,
                    state_dict: Any = None, device: str | torch.device = "cpu") -> nn.Module:
    """A classifier from ``timm:NAME[:CKPT]``, ``tv:NAME[:CKPT]`` or ``hf:NAME`` (eval mode).

    Args:
        spec: the classifier (see the module docstring).
        num_classes: classes K; with weights (``CKPT`` or ``state_dict``) K is read from the head and this is a
            check.
        pretrained: the library's pretrained weights (timm / torchvision).
        state_dict: weights to load (a ``state_dict`` or a dict holding one under ``"state_dict"`` / ``"model"``).
        device: where the model goes.

    Example:
        >>> m = load_classifier("timm:test_resnet", num_classes=3)
        >>> m.get_classifier().out_features
        3
    """
    if not isinstance(spec, str) or spec.split(":", 1)[0] not in _KINDS or ":" not in spec:
        raise WSOLValueError(f"a classifier is named timm:NAME[:CKPT], tv:NAME[:CKPT] or hf:NAME, got {spec!r}")
    kind, rest = spec.split(":", 1)
    if kind == "hf":
        return _load_hf(rest, num_classes, device)
    name, _, ckpt = rest.partition(":")
    if not name:
        raise WSOLValueError(f"{spec!r} names no model")
    if ckpt:
        if state_dict is not None:
            raise WSOLValueError(f"{spec!r} names a weights file and `state_dict` was given too")
        state_dict = read_weights(ckpt)
    if state_dict is None:
        return _build(kind, name, num_classes, pretrained).to(device).eval()
    where = repr(ckpt) if ckpt else "`state_dict`"
    state = _state_dict(state_dict, where)
    model = _build(kind, name, None, False)
    k = _head_classes(model, state)
    if k is not None and num_classes is not None and k != num_classes:
        raise WSOLValueError(f"num_classes={num_classes} but the head of {where} has {k} classes")
    k = k if k is not None else num_classes
    if k is not None and last_linear(model, strict=False) is not None and \
            last_linear(model, strict=False).out_features != k:
        model = _build(kind, name, k, False)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise WSOLValueError(f"the weights of {where} do not fit {kind}:{name}: {str(exc).splitlines()[0]}") \
            from None
    return model.to(device).eval()


def _load_hf(name: str, num_classes: int | None, device: str | torch.device) -> nn.Module:
    try:
        from transformers import AutoImageProcessor, AutoModelForImageClassification
    except ImportError:  # pragma: no cover
        raise WSOLValueError("hf:NAME needs the `transformers` package (pip install transformers)") from None
    kw = {} if num_classes is None else {"num_labels": num_classes, "ignore_mismatched_sizes": True}
    try:
        model = AutoModelForImageClassification.from_pretrained(name, use_safetensors=None, **kw)
    except OSError as exc:
        raise WSOLValueError(f"cannot load Hugging Face model {name!r}: {str(exc).splitlines()[0]}") from None
    try:
        from wsolkit.data.preprocessing import preprocessing

        model.preprocessing = preprocessing(processor=AutoImageProcessor.from_pretrained(name))
    except (OSError, ValueError, WSOLValueError):
        pass  # no processor config: preprocessing falls back as for any model that declares none
    return model.to(device).eval()


def load_method_from(checkpoint: str | os.PathLike | dict, *, method: str | None = None,
                     classifier: str | nn.Module | None = None, num_classes: int | None = None,
                     device: str | torch.device = "cpu") -> nn.Module:
    """A method from a wsolkit checkpoint (path or loaded dict), checked against ``method`` when given.

    ``classifier`` rebuilds a method over a classifier whose checkpoint recorded no classifier name.
    """
    from wsolkit.method import method_info
    from wsolkit.training import load_method

    ckpt = checkpoint if isinstance(checkpoint, dict) else read_weights(checkpoint)
    where = "the checkpoint" if isinstance(checkpoint, dict) else repr(str(checkpoint))
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise WSOLValueError(f"{where} is not a wsolkit checkpoint (no 'state_dict' entry)")
    stored = ckpt.get("method")
    if method is not None and stored and method_info(method)["name"] != method_info(stored)["name"]:
        raise WSOLValueError(f"method {method!r} differs from the checkpoint's method {stored!r}")
    if not stored:
        if method is None:
            raise WSOLValueError(f"{where} does not name its method: pass the method name")
        ckpt = {**ckpt, "method": method}
    overrides: dict[str, Any] = {}
    if classifier is not None:
        k = num_classes if num_classes is not None else ckpt.get("num_classes")
        overrides["classifier"] = (load_classifier(classifier, num_classes=k) if isinstance(classifier, str)
                                   else classifier)
    return load_method(ckpt, **overrides).to(device).eval()


def load_model(spec: str | os.PathLike, *, method: str | None = None, num_classes: int | None = None,
               classifier: str | None = None, pretrained: bool = False, options: dict[str, Any] | None = None,
               device: str | torch.device = "cpu") -> nn.Module:
    """A method (eval mode) from a checkpoint path or a classifier spec — what every command loads.

    Args:
        spec: a wsolkit checkpoint path, or ``timm:NAME[:CKPT]`` / ``tv:NAME[:CKPT]`` / ``hf:NAME``.
        method: the method name: checked against a checkpoint; with a classifier spec, the method built over it
            (``None``: the classifier itself is returned).
        num_classes: classes of a classifier (read from its weights when given; a check otherwise).
        classifier: with a checkpoint path: the classifier spec of a method over a classifier when the file holds
            that classifier's ``state_dict`` (not a wsolkit checkpoint).
        pretrained: pretrained weights for a classifier spec.
        options: the method's options (with a classifier spec).
        device: where the model goes.

    Raises:
        UnsafeCheckpointError: a file is not loadable with ``weights_only=True``.

    Example:
        >>> m = load_model("timm:test_resnet", method="gradcam", num_classes=2)
        >>> type(m).__name__, m.num_classes
        ('GradCAM', 2)
    """
    import wsolkit

    s = os.fspath(spec)
    if s.split(":", 1)[0] in _KINDS and ":" in s:
        if classifier is not None:
            raise WSOLValueError(f"give the classifier once: {s!r} or `classifier`={classifier!r}")
        clf = load_classifier(s, num_classes=num_classes, pretrained=pretrained, device=device)
        if method is None:
            return clf
        return wsolkit.create_method(method, classifier=clf, **(options or {})).to(device).eval()
    obj = read_weights(s)
    if isinstance(obj, dict) and "state_dict" in obj and ("method" in obj or "format" in obj):
        return load_method_from(obj, method=method, classifier=classifier, num_classes=num_classes, device=device)
    if classifier is None:
        raise WSOLValueError(f"{s!r} is not a wsolkit checkpoint; for a classifier's state_dict give its "
                             f"architecture (timm:NAME:{s}, or --classifier timm:NAME / tv:NAME)")
    if not isinstance(classifier, str) or classifier.count(":") != 1:
        raise WSOLValueError(f"with a state_dict file the classifier is timm:NAME or tv:NAME, got {classifier!r}")
    clf = load_classifier(classifier, num_classes=num_classes, state_dict=obj, device=device)
    if method is None:
        return clf
    return wsolkit.create_method(method, classifier=clf, **(options or {})).to(device).eval()
