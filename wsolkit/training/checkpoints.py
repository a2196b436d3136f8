"""Checkpoints: what :func:`~wsolkit.training.fit` writes and :func:`load_method` rebuilds a method from.

Checkpoint format (a dict of tensors and plain Python values)::

    {"format": "wsolkit-checkpoint-1", "method": name | None, "num_classes": K, "options": {...},
     "state_dict": ..., "optimizer": ... | None, "scaler": ... | None, "scheduler": ... | None, "epoch": e,
     "history": [per-epoch records], "wsolkit_version": "..."}
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from wsolkit._checks import WSOLValueError
from wsolkit.training._common import _core

__all__ = ["save_checkpoint", "load_checkpoint", "load_method", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "wsolkit-checkpoint-1"


def save_checkpoint(path: str | os.PathLike, method: nn.Module, *, method_name: str | None = None,
                    num_classes: int | None = None, options: dict[str, Any] | None = None, **state: Any) -> Path:
    """Write a checkpoint (see the module docstring); ``state`` adds ``optimizer``, ``scaler``, ``epoch``, ...

    The method's name, class count and plain options default to what :func:`wsolkit.create_method` recorded on it,
    so ``load_method(save_checkpoint(path, wsolkit.create_method(...)))`` rebuilds the same method. Values of
    ``state`` that have a ``state_dict()`` (optimizer, scaler, scheduler) are stored as their state dict.

    Example:
        >>> import tempfile, wsolkit
        >>> m = wsolkit.create_method("gap", 2, backbone="smallcnn")
        >>> p = save_checkpoint(tempfile.mkdtemp() + "/m.pt", m)
        >>> type(load_method(p)).__name__, load_checkpoint(p)["options"]
        ('WSOLModel', {'backbone': 'smallcnn'})
    """
    from wsolkit import __version__

    core = _core(method)
    if num_classes is None:
        num_classes = getattr(core, "method_num_classes", None)
    if options is None:
        options = getattr(core, "method_options", None)
    ckpt = {"format": CHECKPOINT_FORMAT, "method": method_name or getattr(core, "method_name", None),
            "num_classes": num_classes, "options": dict(options or {}),
            "state_dict": {k: v.detach().cpu() for k, v in _core(method).state_dict().items()},
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


def load_method(checkpoint: str | os.PathLike | dict[str, Any], map_location: str | torch.device = "cpu",
                **overrides: Any) -> nn.Module:
    """Rebuild a method from a checkpoint with :func:`wsolkit.create_method` and load its weights (eval mode).

    Args:
        checkpoint: a path or a loaded checkpoint dict (needs ``"method"``, ``"num_classes"``, ``"options"``).
        map_location: where tensors are loaded.
        **overrides: replace stored options (e.g. ``classifier=`` a module for methods over a classifier).
    """
    import wsolkit

    ckpt = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint, map_location)
    if not ckpt.get("method"):
        raise WSOLValueError("the checkpoint does not name its method: pass `method_name=` to fit/save_checkpoint")
    method = wsolkit.create_method(ckpt["method"], ckpt.get("num_classes"), **{**ckpt.get("options", {}), **overrides})
    method.load_state_dict(ckpt["state_dict"])
    return method.eval()
