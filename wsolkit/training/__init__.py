"""The training loop of the method protocol over DataLoaders, with evaluation and checkpoints.

:func:`fit` is ``for step in training_steps(method, x, y): step.total.backward()`` per batch and the method's
life-cycle hooks (``method.on_epoch_end(epoch)`` after each epoch, ``method.on_fit_end(train_loader)`` at the end),
plus what a real run needs: AMP on CUDA (``GradScaler``), gradient accumulation, tqdm bars, a checkpoint each epoch
(loaded with ``torch.load(weights_only=True)``), ``resume=``, B-LOC / B-CL model selection on a validation loader
(:class:`~wsolkit.metrics.ModelSelector`) and per-epoch metrics to a CSV or callbacks. Nothing is forced: the same
loop works anywhere (Lightning, a DDP script) if it calls the two hooks. :func:`fit_tensors` trains on in-memory
tensors. Checkpoints (:mod:`wsolkit.training.checkpoints`) record everything :func:`load_method` rebuilds the
method from.
"""


from __future__ import annotations

import torch

from wsolkit._deprecation import deprecated_names
from wsolkit.data.preprocessing import IMAGENET
from wsolkit.training.checkpoints import (
    CHECKPOINT_FORMAT,
    CheckpointMismatchError,
    load_checkpoint,
    load_method,
    save_checkpoint,
)
from wsolkit.training.evaluation import evaluate, evaluate_maps, predict_maps
from wsolkit.training.loop import fit, training_steps
from wsolkit.training.tensors import fit_tensors, tensor_loader

__all__ = ["training_steps", "fit", "fit_tensors", "tensor_loader", "evaluate", "predict_maps", "save_checkpoint",
           "load_checkpoint", "load_method", "CheckpointMismatchError", "CHECKPOINT_FORMAT", "evaluate_maps"]


def _standardize(images: torch.Tensor) -> torch.Tensor:
    """ImageNet standardisation (deprecated name ``standardize``)."""
    return IMAGENET(images)


__getattr__ = deprecated_names(__name__, {
    "IMAGENET_MEAN": (IMAGENET.mean, "wsolkit.data.preprocessing(model).mean (or wsolkit.data.IMAGENET.mean)"),
    "IMAGENET_STD": (IMAGENET.std, "wsolkit.data.preprocessing(model).std (or wsolkit.data.IMAGENET.std)"),
    "standardize": (_standardize, "wsolkit.data.preprocessing(model)(images)"),
})
