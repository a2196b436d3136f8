"""The training loop of the method protocol, over DataLoaders (or in-memory tensors), with evaluation and checkpoints.

:func:`fit` is ``for step in training_steps(method, x, y): step.total.backward()`` per batch, plus what a real run
needs: AMP on CUDA (``GradScaler``), gradient accumulation, a tqdm bar, a checkpoint each epoch (loaded with
``torch.load(weights_only=True)``), ``resume=``, B-LOC / B-CL model selection on a validation loader
(:class:`~wsolkit.metrics.ModelSelector`) and per-epoch metrics to a CSV or callbacks. Nothing is forced: the same
three lines work in any loop (Lightning, a DDP script).

Checkpoint format (a dict of tensors and plain Python values)::

    {"format": "wsolkit-checkpoint-1", "method": name | None, "num_classes": K, "options": {...},
     "state_dict": ..., "optimizer": ... | None, "scaler": ... | None, "scheduler": ... | None, "epoch": e,
     "history": [per-epoch records], "wsolkit_version": "..."}

:func:`load_method` rebuilds the method with ``wsolkit.create_method(method, num_classes, **options)``.
"""


from __future__ import annotations

import warnings
from typing import Any

import torch

from wsolkit.data.preprocessing import IMAGENET
from wsolkit.training.checkpoints import CHECKPOINT_FORMAT, load_checkpoint, load_method, save_checkpoint
from wsolkit.training.evaluation import evaluate, evaluate_maps, predict_maps
from wsolkit.training.loop import fit, training_steps

__all__ = ["training_steps", "fit", "evaluate", "predict_maps", "save_checkpoint", "load_checkpoint", "load_method",
           "CHECKPOINT_FORMAT", "standardize", "evaluate_maps"]

_DEPRECATED = {"IMAGENET_MEAN": IMAGENET.mean, "IMAGENET_STD": IMAGENET.std}


def __getattr__(name: str) -> Any:
    if name in _DEPRECATED:
        warnings.warn(f"wsolkit.training.{name} is deprecated: use wsolkit.data.preprocessing(model) (or "
                      f"wsolkit.data.IMAGENET.{name.split('_')[1].lower()})", DeprecationWarning, stacklevel=2)
        return _DEPRECATED[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def standardize(images: torch.Tensor) -> torch.Tensor:
    """Deprecated: ImageNet standardisation; use ``wsolkit.data.preprocessing(model)(images)``."""
    warnings.warn("wsolkit.training.standardize is deprecated: use wsolkit.data.preprocessing(model)(images)",
                  DeprecationWarning, stacklevel=2)
    return IMAGENET(images)
