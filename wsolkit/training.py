"""Small training / evaluation loops used by the demo, the examples and the tests.

These are conveniences for the synthetic benchmark, not a framework: wsolkit's methods are designed to be used
in your own training loop.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

import torch
import torch.nn as nn

from wsolkit import cams as cam_ops
from wsolkit._checks import WSOLTypeError
from wsolkit.metrics.pxap import binned_counts, pxap_from_counts
from wsolkit.output import LossOutput

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "standardize", "training_steps", "fit", "predict_maps", "evaluate"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def standardize(images: torch.Tensor) -> torch.Tensor:
    """ImageNet mean/std standardisation of ``(B, 3, H, W)`` images in ``[0, 1]``."""
    mean = images.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images - mean) / std


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random flips and 90° rotations (histology has no canonical orientation)."""
    if torch.rand((), generator=g) < 0.5:
        x = x.flip(-1)
    if torch.rand((), generator=g) < 0.5:
        x = x.flip(-2)
    if torch.rand((), generator=g) < 0.5:
        x = x.transpose(-1, -2)
    return x


def training_steps(method: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> Iterator[LossOutput]:
    """The losses of one batch for ``method`` or a :class:`~torch.nn.parallel.DistributedDataParallel` wrapper of it.

    Equivalent to ``method.training_steps(x, labels)``; with a DDP (or ``torch.compile``) wrapper the forward
    passes go through the wrapper, so gradients are synchronised.

    Example:
        >>> import wsolkit
        >>> m = wsolkit.create_method("gap", 2, backbone="smallcnn")
        >>> [sorted(s.terms) for s in training_steps(m, torch.rand(2, 3, 32, 32), torch.tensor([0, 1]))]
        [['ce']]
    """
    core = method
    while isinstance(core, nn.parallel.DistributedDataParallel) or hasattr(core, "_orig_mod"):
        core = core.module if isinstance(core, nn.parallel.DistributedDataParallel) else core._orig_mod
    steps = getattr(core, "training_steps", None)
    if not callable(steps):
        raise WSOLTypeError(
            f"{type(core).__name__} has no `training_steps`: build methods with wsolkit.create_method or subclass "
            f"wsolkit.WSOLMethod"
        )
    return steps(x, labels, forward=None if core is method else method)


def fit(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    epochs: int = 10,
    batch_size: int = 32,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
    augment: bool = True,
    progress: bool = False,
    device: str | torch.device = "cpu",
) -> list[float]:
    """Train any trainable method with AdamW and a one-cycle schedule: the protocol's loop over in-memory tensors.

    Each batch runs ``for step in training_steps(model, x, y): step.total.backward()`` then one optimizer step.

    Args:
        model: a method (:func:`wsolkit.create_method`); its ``forward`` gets standardised images.
        images: ``(N, 3, H, W)`` images in ``[0, 1]``.
        labels: ``(N,)`` class indices.
        epochs: passes over the data.
        batch_size: mini-batch size.
        lr: peak learning rate.
        weight_decay: AdamW weight decay.
        seed: seeds the shuffling and augmentation.
        augment: random flips / transposes.
        progress: show a tqdm progress bar.
        device: device to train on.

    Returns:
        The mean training loss of each epoch (sum of the steps' totals per batch).

    A model with a ``recalibrate_statistics(images, batch_size)`` method (e.g. :class:`wsolkit.maxmin.MaxMin`) has
    it called once on the standardised training images at the end.
    """
    from tqdm.auto import tqdm

    g = torch.Generator().manual_seed(seed)
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    n = images.shape[0]
    steps_per_epoch = max(math.ceil(n / batch_size), 1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch,
                                                pct_start=0.15)
    history = []
    bar = tqdm(total=epochs * steps_per_epoch, disable=not progress, desc="train", unit="step")
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        total, count = 0.0, 0
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            x = images[idx]
            if augment:
                x = _augment(x, g)
            x = standardize(x).to(device)
            y = labels[idx].to(device)
            opt.zero_grad(set_to_none=True)
            loss = 0.0
            for step in training_steps(model, x, y):
                step.total.backward()
                loss += float(step.total.detach())
            opt.step()
            sched.step()
            total += loss * len(idx)
            count += len(idx)
            bar.update(1)
            bar.set_postfix(loss=f"{total / count:.3f}")
        history.append(total / max(count, 1))
    bar.close()
    # models whose batch-norm statistics must be recomputed with the final weights (e.g. MaxMin) expose a hook
    recalibrate = getattr(model, "recalibrate_statistics", None)
    if callable(recalibrate):
        with torch.no_grad():
            recalibrate(standardize(images).to(device), batch_size=batch_size)
    model.eval()
    return history


@torch.no_grad()
def predict_maps(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    batch_size: int = 64,
    cam_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor]] | None = None,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and protocol-processed maps (target class = ``labels``, else the prediction) at the image size.

    Args:
        model: a model returning :class:`~wsolkit.output.WSOLOutput`.
        images: ``(N, 3, H, W)`` in ``[0, 1]``.
        labels: classes whose maps are taken; ``None`` → predicted class.
        batch_size: inference batch size.
        cam_fn: ``cam_fn(model, x, y) -> (logits, raw maps (B, C, h, w))`` for models that localise differently.
        device: device to run on.

    Returns:
        ``(logits (N, C), maps (N, H, W))`` on the CPU.
    """
    was = model.training
    model.to(device).eval()
    all_logits, all_maps = [], []
    try:
        for i in range(0, images.shape[0], batch_size):
            x = standardize(images[i : i + batch_size]).to(device)
            y = labels[i : i + batch_size].to(device) if labels is not None else None
            if cam_fn is not None:
                logits, raw = cam_fn(model, x, y)
            else:
                out = model(x)
                logits, raw = out[0], out[1]
            target = y if y is not None else logits.argmax(1)
            maps = cam_ops.postprocess(raw.float(), target, images.shape[-2:])
            all_logits.append(logits.float().cpu())
            all_maps.append(maps.cpu())
    finally:
        model.train(was)
    return torch.cat(all_logits), torch.cat(all_maps)


def evaluate(
    logits: torch.Tensor, maps: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor, roi_only: bool = True
) -> dict[str, float]:
    """Classification accuracy, PxAP and the all-ones baseline PxAP.

    Args:
        logits: ``(N, C)``.
        maps: ``(N, H, W)`` normalised maps.
        labels: ``(N,)``.
        masks: ``(N, H, W)``.
        roi_only: localisation is measured on the images that contain ROI pixels (for ``camelyon``: the metastatic
            images; a normal image has nothing to localise).

    Returns:
        ``{"accuracy", "pxap", "pxap_baseline", "n_loc"}`` (percentages).
    """
    acc = 100.0 * float((logits.argmax(1) == labels).float().mean())
    keep = (masks == 1).flatten(1).any(1) if roi_only else torch.ones(len(masks), dtype=torch.bool)
    fg, bg = binned_counts(maps[keep], masks[keep])
    ones_fg, ones_bg = binned_counts(torch.zeros_like(maps[keep]), masks[keep])
    return {
        "accuracy": acc,
        "pxap": pxap_from_counts(fg, bg),
        "pxap_baseline": pxap_from_counts(ones_fg, ones_bg),
        "n_loc": int(keep.sum()),
    }


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    """Run ``fn`` and return its result with the wall time in seconds."""
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t
