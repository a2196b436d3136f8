"""Checkpoints: what :func:`~wsolkit.training.fit` writes and :func:`load_method` rebuilds a method from.

Checkpoint format (a dict of tensors and plain Python values, read with ``torch.load(weights_only=True)``)::

    {"format": "wsolkit-checkpoint-1", "method": name | None, "num_classes": K, "options": {...},
     "unrecorded": {option: type name}, "backbone": {"name", "output_stride", "options"} | None,
     "preprocessing": {"mean": [...], "std": [...], "size", "interpolation", "crop_pct", "source"} | None,
     "classes": [names] | None, "state_dict": ..., "optimizer": ... | None, "scaler": ... | None,
     "scheduler": ... | None, "epoch": e, "history": [per-epoch records], "wsolkit_version": "..."}

``options`` are the method's options as :func:`wsolkit.create_method` recorded them: plain values, and modules by
what rebuilds them (a wsolkit method or backbone by name and options, a timm model by its architecture — like timm's
``pretrained_cfg``). A module that cannot be recorded (your own ``nn.Module``) is named in ``unrecorded`` and must be
passed again: ``load_method(path, backbone=module)``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from wsolkit._checks import WSOLValueError
from wsolkit.training._common import _core

__all__ = ["save_checkpoint", "load_checkpoint", "load_method", "CheckpointMismatchError", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "wsolkit-checkpoint-1"


class CheckpointMismatchError(WSOLValueError):
    """A checkpoint's weights do not fit the method they are loaded into (another method, other options)."""


def _preprocessing_record(p: Any) -> dict[str, Any] | None:
    if p is None:
        return None
    if isinstance(p, dict):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in p.items()}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(p).items()}


def _declared_preprocessing(core: nn.Module) -> Any:
    from wsolkit.data.preprocessing import preprocessing

    try:
        return preprocessing(core, warn=False)
    except Exception:  # noqa: BLE001 - a model that declares nothing usable: no record
        return None


def save_checkpoint(path: str | os.PathLike, method: nn.Module, *, method_name: str | None = None,
                    num_classes: int | None = None, options: dict[str, Any] | None = None,
                    classes: list[str] | None = None, preprocessing: Any = None, **state: Any) -> Path:
    """Write a checkpoint (see the module docstring); ``state`` adds ``optimizer``, ``scaler``, ``epoch``, ...

    The method's name, class count and options default to what :func:`wsolkit.create_method` recorded on it, so
    ``load_method(save_checkpoint(path, wsolkit.create_method(...)))`` rebuilds the same method; ``preprocessing``
    (a :class:`~wsolkit.data.Preprocessing`) defaults to what the method declares. Values of ``state`` that have a
    ``state_dict()`` (optimizer, scaler, scheduler) are stored as their state dict.

    Raises:
        CheckpointMismatchError: ``method_name`` names another method than the one :func:`wsolkit.create_method`
            built.

    Example:
        >>> import tempfile, wsolkit
        >>> m = wsolkit.create_method("gap", 2, backbone="smallcnn")
        >>> p = save_checkpoint(tempfile.mkdtemp() + "/m.pt", m)
        >>> type(load_method(p)).__name__, load_checkpoint(p)["options"]
        ('WSOLModel', {'backbone': 'smallcnn'})
    """
    from wsolkit import __version__

    core = _core(method)
    built = getattr(core, "method_name", None)
    if method_name is not None and built is not None:
        from wsolkit.registry import normalize_name

        if normalize_name(method_name) != normalize_name(built):
            raise CheckpointMismatchError(f"`method_name`={method_name!r} but the method was built as {built!r}: "
                                          f"a checkpoint must name the method its weights belong to")
    if num_classes is None:
        num_classes = getattr(core, "method_num_classes", None)
    if options is None:
        options = getattr(core, "method_options", None)
    backbone = getattr(getattr(core, "backbone", None), "backbone_cfg", None)
    ckpt = {"format": CHECKPOINT_FORMAT, "method": method_name or built, "num_classes": num_classes,
            "options": dict(options or {}), "unrecorded": dict(getattr(core, "method_unrecorded", None) or {}),
            "backbone": dict(backbone) if isinstance(backbone, dict) else None,
            "preprocessing": _preprocessing_record(preprocessing if preprocessing is not None
                                                   else _declared_preprocessing(core)),
            "classes": list(classes) if classes is not None else None,
            "state_dict": {k: v.detach().cpu() for k, v in core.state_dict().items()},
            "wsolkit_version": __version__}
    for key, value in state.items():
        ckpt[key] = value.state_dict() if callable(getattr(value, "state_dict", None)) else value
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(ckpt, tmp)
    os.replace(tmp, path)  # never a half-written checkpoint
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)`` and check its format."""
    path = Path(path)
    if not path.is_file():
        raise WSOLValueError(f"checkpoint {str(path)!r} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise WSOLValueError(f"cannot read checkpoint {str(path)!r}: {exc}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise WSOLValueError(f"{str(path)!r} is not a wsolkit checkpoint (no 'state_dict' entry)")
    return ckpt


def load_state(module: nn.Module, ckpt: dict[str, Any], where: Any = "the checkpoint") -> None:
    """``module.load_state_dict(ckpt["state_dict"])`` with a :class:`CheckpointMismatchError` that says why."""
    try:
        module.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        own = set(module.state_dict())
        theirs = set(ckpt["state_dict"])
        built = getattr(module, "method_name", None) or type(module).__name__
        detail = (f"{len(own - theirs)} missing keys (e.g. {sorted(own - theirs)[:2]}), {len(theirs - own)} "
                  f"unexpected (e.g. {sorted(theirs - own)[:2]})" if own != theirs else
                  str(exc).splitlines()[-1].strip())
        raise CheckpointMismatchError(
            f"the weights of {where} (method {ckpt.get('method')!r}, options {ckpt.get('options')}) do not fit "
            f"{built!r}: {detail}. The checkpoint's `method`/options must name the method that produced its weights"
        ) from None


def load_method(checkpoint: str | os.PathLike | dict[str, Any], map_location: str | torch.device = "cpu",
                **overrides: Any) -> nn.Module:
    """Rebuild a method from a checkpoint with :func:`wsolkit.create_method` and load its weights (eval mode).

    The rebuilt method has the checkpoint's ``preprocessing`` (so :func:`wsolkit.data.preprocessing` returns the
    training transform) and ``classes``.

    Args:
        checkpoint: a path or a loaded checkpoint dict (needs ``"method"``, ``"num_classes"``, ``"options"``).
        map_location: where tensors are loaded.
        **overrides: replace stored options; required for a module the checkpoint could not record (e.g.
            ``backbone=`` your own ``nn.Module``, of the same architecture — its weights come from the checkpoint).

    Raises:
        WSOLValueError: the checkpoint names no method, or needs a module that is not passed.
        CheckpointMismatchError: the weights do not fit the method the checkpoint names.
    """
    import wsolkit
    from wsolkit.data.preprocessing import Preprocessing
    from wsolkit.method import rebuild_option

    ckpt = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint, map_location)
    if not ckpt.get("method"):
        raise WSOLValueError("the checkpoint does not name its method: pass `method_name=` to fit/save_checkpoint")
    missing = {k: v for k, v in (ckpt.get("unrecorded") or {}).items() if k not in overrides}
    if missing:
        args = ", ".join(f"{k}=<your {v} module>" for k, v in missing.items())
        raise WSOLValueError(
            f"method {ckpt['method']!r} was built over a module given by hand ({', '.join(missing)}: "
            f"{', '.join(missing.values())}) that a checkpoint cannot rebuild: pass it again, "
            f"load_method(checkpoint, {args}) (same architecture; the weights come from the checkpoint)")
    options = {k: rebuild_option(v) for k, v in (ckpt.get("options") or {}).items()}
    method = wsolkit.create_method(ckpt["method"], ckpt.get("num_classes"), **{**options, **overrides})
    load_state(method, ckpt)
    method.to(map_location if not isinstance(map_location, dict) else "cpu")
    if ckpt.get("preprocessing"):
        rec = {k: tuple(v) if isinstance(v, list) else v for k, v in ckpt["preprocessing"].items()}
        method.preprocessing = Preprocessing(**rec)
    if ckpt.get("classes") is not None:
        method.classes = list(ckpt["classes"])
    return method.eval()
