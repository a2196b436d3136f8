"""Helpers shared by the loop, the checkpoints and the evaluation: unwrapping, batches, devices."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from wsolkit._checks import WSOLTypeError


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
