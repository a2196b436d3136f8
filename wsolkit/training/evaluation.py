"""Evaluation over a loader or precomputed maps, and maps for in-memory images."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn as nn

from wsolkit import cams as cam_ops
from wsolkit.data.preprocessing import preprocessing
from wsolkit.metrics import localization_histogram, pxap_from_histogram
from wsolkit.training._common import _device_of, _split_batch

__all__ = ["evaluate", "predict_maps"]


@torch.no_grad()
def _evaluate_loader(method: nn.Module, loader: Iterable, *, device: Any = None, num_thresholds: int = 1000,
                     roi_only: bool = True, amp: bool | None = None, progress: bool = False) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from wsolkit.metrics.meters import ClassificationMeter, LocalizationMeter

    device = torch.device(device) if device is not None else _device_of(method)
    amp = device.type == "cuda" if amp is None else amp
    was = method.training
    method.eval()
    loc = LocalizationMeter(num_thresholds, normalize=True)
    cls: Any = None
    n_loc = 0
    try:
        for batch in tqdm(loader, desc="evaluate", unit="batch", disable=not progress, leave=False):
            x, y, m = _split_batch(batch)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device.type, enabled=amp):
                out = method(x)
            logits = out.logits.float()
            if cls is None:
                cls = ClassificationMeter(logits.shape[1])
            labelled = y >= 0
            if labelled.any():
                cls.update(logits[labelled], y[labelled])
            if m is None:
                continue
            m = m.to(device)
            keep = labelled & ((m == 1).flatten(1).any(1) if roi_only else (m != 255).flatten(1).any(1))
            if keep.any():
                loc.update(out.cams.float()[keep], m[keep], y[keep])
                n_loc += int(keep.sum())
    finally:
        method.train(was)
    acc = cls.compute() if cls is not None else {"accuracy": float("nan")}
    res: dict[str, Any] = {"accuracy": acc["accuracy"], "n_loc": n_loc,
                           "pxap": loc.compute()["pxap"] if n_loc else float("nan")}
    return res


def evaluate(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Accuracy and PxAP of a method over a loader — ``evaluate(method, loader, *, device, num_thresholds,
    roi_only, amp, progress)`` — or of precomputed maps — ``evaluate(logits, maps, labels, masks, roi_only=True)``.

    Loader form: batches ``(images, labels[, masks])`` of model-ready images; maps of the true class go through the
    protocol (upsampling, per-image min-max) inside :class:`~wsolkit.metrics.LocalizationMeter`; localization is
    measured on images with foreground pixels (``roi_only``, as in the survey for CAMELYON16's normal images) or any
    non-ignored pixel; images labelled ``-1`` are skipped. Returns ``{"accuracy", "pxap", "n_loc"}`` (percent).

    Tensor form: ``logits (N, C)``, ``maps (N, H, W)`` normalised, ``labels (N,)``, ``masks (N, H, W)``; returns
    ``{"accuracy", "pxap", "pxap_baseline", "n_loc"}``.

    Example:
        >>> import wsolkit
        >>> m = wsolkit.create_method("gap", 2, backbone="smallcnn")
        >>> masks = torch.zeros(4, 32, 32, dtype=torch.uint8); masks[:, 8:24, 8:24] = 1
        >>> loader = [(torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 0, 1]), masks)]
        >>> sorted(evaluate(m, loader))
        ['accuracy', 'n_loc', 'pxap']
    """
    if args and isinstance(args[0], torch.Tensor):
        return _evaluate_tensors(*args, **kwargs)
    return _evaluate_loader(*args, **kwargs)


def _evaluate_tensors(logits: torch.Tensor, maps: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor,
                      roi_only: bool = True) -> dict[str, float]:
    acc = 100.0 * float((logits.argmax(1) == labels).float().mean())
    keep = (masks == 1).flatten(1).any(1) if roi_only else torch.ones(len(masks), dtype=torch.bool)
    fg, bg = localization_histogram(maps[keep], masks[keep])
    ones_fg, ones_bg = localization_histogram(torch.zeros_like(maps[keep]), masks[keep])
    return {"accuracy": acc, "pxap": pxap_from_histogram(fg, bg),
            "pxap_baseline": pxap_from_histogram(ones_fg, ones_bg),
            "n_loc": int(keep.sum())}


@torch.no_grad()
def predict_maps(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    batch_size: int = 64,
    cam_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor]] | None = None,
    device: str | torch.device = "cpu",
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and protocol-processed maps (target class = ``labels``, else the prediction) at the image size.

    Args:
        model: a method returning :class:`~wsolkit.output.WSOLOutput`.
        images: ``(N, 3, H, W)`` in ``[0, 1]``.
        labels: classes whose maps are taken; ``None`` → predicted class.
        batch_size: inference batch size.
        cam_fn: ``cam_fn(model, x, y) -> (logits, raw maps (B, C, h, w))`` for models that localise differently.
        device: device to run on.
        preprocess: normalisation of the images (default: :func:`wsolkit.data.preprocessing` of ``model``).

    Returns:
        ``(logits (N, C), maps (N, H, W))`` on the CPU.
    """
    preprocess = preprocess if preprocess is not None else preprocessing(model)
    was = model.training
    model.to(device).eval()
    all_logits, all_maps = [], []
    try:
        for i in range(0, images.shape[0], batch_size):
            x = preprocess(images[i : i + batch_size].to(device))
            y = labels[i : i + batch_size].to(device) if labels is not None else None
            if cam_fn is not None:
                logits, raw = cam_fn(model, x, y)
            else:
                out = model(x)
                logits, raw = out.logits, out.cams
            target = y if y is not None else logits.argmax(1)
            all_maps.append(cam_ops.postprocess(raw.float(), target, images.shape[-2:]).cpu())
            all_logits.append(logits.float().cpu())
    finally:
        model.train(was)
    return torch.cat(all_logits), torch.cat(all_maps)
