"""Training on in-memory tensors: :func:`tensor_loader` turns images into a loader, :func:`fit_tensors` fits on it."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn as nn

from wsolkit._checks import check_int, check_ndim, check_same_batch
from wsolkit.data.preprocessing import preprocessing as model_preprocessing

__all__ = ["fit_tensors", "tensor_loader"]


class _TensorLoader:
    """A re-iterable loader over in-memory tensors: a fresh permutation per pass, flips/transposes, normalisation."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, augment: bool, seed: int,
                 preprocess: Callable[[torch.Tensor], torch.Tensor]):
        self.images, self.labels, self.batch_size, self.augment = images, labels, batch_size, augment
        self.preprocess = preprocess
        self.g = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return math.ceil(len(self.images) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        perm = torch.randperm(len(self.images), generator=self.g)  # drawn by iter(), as in wsolkit 0.2
        return (self._batch(perm[i : i + self.batch_size]) for i in range(0, len(perm), self.batch_size))

    def _batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.images[idx]
        if self.augment:  # one draw per batch (histology has no canonical orientation)
            for op in (lambda t: t.flip(-1), lambda t: t.flip(-2), lambda t: t.transpose(-1, -2)):
                if torch.rand((), generator=self.g) < 0.5:
                    x = op(x)
        return self.preprocess(x), self.labels[idx]


def tensor_loader(images: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 32, augment: bool = True,
                  seed: int = 0, preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Any:
    """A loader of ``(preprocess(images[idx]), labels[idx])`` batches in a seeded random order.

    Args:
        images: images in ``[0, 1]``.
        labels: class indices.
        batch_size: images per batch (the last batch may be smaller).
        augment: random flips / transposes, one draw per batch.
        seed: seeds the order and the augmentation.
        preprocess: the normalisation (e.g. ``wsolkit.data.preprocessing(model)``); default: identity.

    Shape:
        - images: :math:`(N, 3, H, W)`; labels: :math:`(N,)`

    Example:
        >>> loader = tensor_loader(torch.rand(10, 3, 8, 8), torch.arange(10) % 2, batch_size=4)
        >>> len(loader), [len(y) for _, y in loader]
        (3, [4, 4, 2])
    """
    check_ndim(images, "images", 4, "(N, 3, H, W)")
    check_ndim(labels, "labels", 1, "(N,)")
    check_same_batch(images, "images", labels, "labels")
    batch_size = check_int(batch_size, "batch_size", low=1)
    return _TensorLoader(images, labels, batch_size, bool(augment), int(seed),
                         preprocess if preprocess is not None else (lambda t: t))


def fit_tensors(method: nn.Module, images: torch.Tensor, labels: torch.Tensor, epochs: int = 10,
                batch_size: int = 32, lr: float = 1e-3, weight_decay: float = 1e-4, seed: int = 0,
                augment: bool = True, progress: bool | None = None, device: str | torch.device = "cpu",
                preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None, **fit_options: Any) -> list[float]:
    """:func:`~wsolkit.training.fit` on in-memory tensors: AdamW with a one-cycle schedule, flips/transposes, the
    model's :func:`~wsolkit.data.preprocessing`; the method's hooks run as in ``fit`` (MaxMin is recalibrated on
    the training images).

    Args:
        method: a trainable method.
        images: images in ``[0, 1]``.
        labels: class indices.
        epochs: passes over the images.
        batch_size: images per step.
        lr: peak learning rate of the one-cycle schedule.
        weight_decay: AdamW weight decay.
        seed: seeds the batch order and the augmentation.
        augment: random flips / transposes.
        progress: tqdm bars (default: when stderr is a terminal).
        device: where to train.
        preprocess: default ``wsolkit.data.preprocessing(method)``.
        **fit_options: passed to ``fit`` (``val_loader``, ``checkpoint_dir``, ``callbacks``, ...).

    Returns:
        The mean training loss of each epoch.

    Shape:
        - images: :math:`(N, 3, H, W)`; labels: :math:`(N,)`

    Example:
        >>> import wsolkit
        >>> m = wsolkit.create_method("gap", 2, backbone="smallcnn")
        >>> len(fit_tensors(m, torch.rand(8, 3, 32, 32), torch.tensor([0, 1] * 4), epochs=2, batch_size=4))
        2
    """
    from wsolkit.training.loop import fit

    preprocess = preprocess if preprocess is not None else model_preprocessing(method)
    loader = tensor_loader(images, labels, batch_size=batch_size, augment=augment, seed=seed, preprocess=preprocess)
    epochs = check_int(epochs, "epochs", low=0)
    method.to(device)
    opt = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(epochs * len(loader), 1),
                                                pct_start=0.15)
    result = fit(method, loader, opt, epochs=epochs, scheduler=sched, device=device, progress=progress,
                 preprocessing=preprocess if hasattr(preprocess, "mean") else None, **fit_options)
    return [rec["loss"] for rec in result["history"]]
