"""Helpers shared by the loop, the checkpoints and the evaluation: unwrapping, batches, devices."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from wsolkit._checks import WSOLTypeError, WSOLValueError


def _core(method: nn.Module) -> nn.Module:
    while isinstance(method, nn.parallel.DistributedDataParallel) or hasattr(method, "_orig_mod"):
        method = method.module if isinstance(method, nn.parallel.DistributedDataParallel) else method._orig_mod
    return method


def _split_batch(batch: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    if not isinstance(batch, (list, tuple)) or len(batch) not in (2, 3):
        raise WSOLTypeError("loader batches must be (images, labels) or (images, labels, masks)")
    x, y = batch[0], torch.as_tensor(batch[1])
    return x, y, (batch[2] if len(batch) == 3 else None)


def _num_classes(method: nn.Module) -> int | None:
    from wsolkit.method import classifier_num_classes

    for m in _core(method).modules():
        k = classifier_num_classes(m)
        if k is not None:
            return k
    return None


def _device_of(method: nn.Module) -> torch.device:
    p = next(iter(method.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def _check_batch_labels(y: torch.Tensor, num_classes: int | None) -> None:
    if y.dtype.is_floating_point or y.dtype == torch.bool or y.ndim != 1:
        raise WSOLTypeError(f"loader labels must be a (B,) integer tensor of class indices, got dtype {y.dtype} "
                            f"shape {tuple(y.shape)}")
    if y.numel() == 0:
        return
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or (num_classes is not None and hi >= num_classes):
        raise WSOLValueError(
            f"loader labels must be class indices in [0, {num_classes}) for a method with num_classes={num_classes}, "
            f"got labels in [{lo}, {hi}]: does the dataset have more classes than the method?"
            if num_classes is not None else f"loader labels must be >= 0, got {lo}"
        )


def _write_csv(path: Path, record: dict[str, Any]) -> None:
    new = not path.is_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(record), extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow(record)
