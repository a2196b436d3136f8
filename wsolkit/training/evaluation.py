"""Evaluation over a loader (:func:`evaluate`) or of precomputed maps (:func:`evaluate_maps`), and maps of in-memory
images (:func:`predict_maps`); every map comes from :func:`wsolkit.localize`."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn as nn

from wsolkit import cams as cam_ops
from wsolkit._checks import WSOLTypeError
from wsolkit._modules import eval_mode
from wsolkit.data.preprocessing import preprocessing
from wsolkit.inference import Target, grad_context, localize, resolve_target
from wsolkit.metrics import localization_histogram, pxap_from_histogram
from wsolkit.training._common import _device_of, _split_batch

__all__ = ["evaluate", "evaluate_maps", "predict_maps"]


def evaluate(method: nn.Module, loader: Iterable, *args: Any, target: Target = "label", device: Any = None,
             num_thresholds: int = 1000, roi_only: bool = True, amp: bool | None = None,
             progress: bool = False, **kwargs: Any) -> dict[str, Any]:
    """Accuracy and PxAP of a method over a loader; maps come from :func:`wsolkit.localize`.

    Batches are ``(images, labels[, masks])`` of model-ready images; images labelled ``-1`` are skipped. The map of
    ``target`` (default ``"label"``: the true class, reaching the method as ``labels`` so explainers explain it and
    ACoL erases for it) goes through the protocol (upsampling, per-image min-max) inside
    :class:`~wsolkit.metrics.LocalizationMeter`; localization is measured on images with foreground pixels
    (``roi_only``, as in the survey for CAMELYON16's normal images) or any non-ignored pixel.

    Args:
        method: a method (``forward(x, labels=None) -> WSOLOutput``).
        loader: an iterable of batches.
        target: ``"label"``, ``"pred"`` or a class index (see :func:`wsolkit.localize`).
        device: where the method runs (default: where its parameters are).
        num_thresholds: T of the PxAP histogram.
        roi_only: localize only images with foreground pixels.
        amp: CUDA autocast (default: on for CUDA).
        progress: a tqdm bar.

    Returns:
        ``{"accuracy", "pxap", "n_loc"}`` (percent).

    Example:
        >>> import wsolkit
        >>> m = wsolkit.create_method("gap", 2, backbone="smallcnn")
        >>> masks = torch.zeros(4, 32, 32, dtype=torch.uint8); masks[:, 8:24, 8:24] = 1
        >>> loader = [(torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 0, 1]), masks)]
        >>> sorted(evaluate(m, loader))
        ['accuracy', 'n_loc', 'pxap']
    """
    if isinstance(method, torch.Tensor):  # the former tensor form
        warnings.warn("evaluate(logits, maps, labels, masks) is deprecated: use wsolkit.training.evaluate_maps",
                      DeprecationWarning, stacklevel=2)
        return evaluate_maps(method, loader, *args, **kwargs)
    if args or kwargs:
        raise WSOLTypeError(f"evaluate(method, loader, *, target, device, num_thresholds, roi_only, amp, progress) "
                            f"got unexpected arguments {list(kwargs) or args}")
    from tqdm.auto import tqdm

    from wsolkit.metrics.meters import ClassificationMeter, LocalizationMeter

    device = torch.device(device) if device is not None else _device_of(method)
    loc = LocalizationMeter(num_thresholds, normalize=True)
    cls: Any = None
    n_loc = 0
    for batch in tqdm(loader, desc="evaluate", unit="batch", disable=not progress, leave=False):
        x, y, m = _split_batch(batch)
        labelled = y >= 0
        if not labelled.any():
            continue
        x, y = x[labelled].to(device, non_blocking=True), y[labelled].to(device, non_blocking=True)
        size = tuple(m.shape[-2:]) if m is not None else None
        # raw maps at the mask size; the meter normalises them (one min-max, as for any method's cams)
        out = localize(method, x, target, labels=y, size=size, normalize=False, amp=amp)
        if cls is None:
            cls = ClassificationMeter(out.logits.shape[1])
        cls.update(out.logits, y)
        if m is None:
            continue
        m = m[labelled.to(m.device)].to(device)
        keep = (m == 1).flatten(1).any(1) if roi_only else (m != 255).flatten(1).any(1)
        if keep.any():
            loc.update(out.maps[keep], m[keep])
            n_loc += int(keep.sum())
    acc = cls.compute() if cls is not None else {"accuracy": float("nan")}
    return {"accuracy": acc["accuracy"], "n_loc": n_loc,
            "pxap": loc.compute()["pxap"] if n_loc else float("nan")}


#: the loader form, under the name the training loop imports
_evaluate_loader = evaluate


def evaluate_maps(logits: torch.Tensor, maps: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor,
                  roi_only: bool = True) -> dict[str, float]:
    """Accuracy and PxAP of precomputed maps (e.g. from :func:`predict_maps`).

    Args:
        logits: ``(N, K)``.
        maps: ``(N, H, W)`` normalised maps.
        labels: ``(N,)`` classes.
        masks: ``(N, H, W)`` 0 / 1 / 255 (ignored).
        roi_only: localize only images with foreground pixels.

    Returns:
        ``{"accuracy", "pxap", "pxap_baseline", "n_loc"}`` (percent; the baseline is the all-zeros map).

    Example:
        >>> masks = torch.zeros(2, 8, 8, dtype=torch.uint8); masks[:, 2:6, 2:6] = 1
        >>> evaluate_maps(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), masks.float(), torch.tensor([0, 1]), masks)["pxap"]
        100.0
    """
    acc = 100.0 * float((logits.argmax(1) == labels).float().mean())
    keep = (masks == 1).flatten(1).any(1) if roi_only else torch.ones(len(masks), dtype=torch.bool)
    fg, bg = localization_histogram(maps[keep], masks[keep])
    ones_fg, ones_bg = localization_histogram(torch.zeros_like(maps[keep]), masks[keep])
    return {"accuracy": acc, "pxap": pxap_from_histogram(fg, bg),
            "pxap_baseline": pxap_from_histogram(ones_fg, ones_bg),
            "n_loc": int(keep.sum())}


def predict_maps(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    batch_size: int = 64,
    cam_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor]] | None = None,
    device: str | torch.device = "cpu",
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
    target: Target | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and protocol-processed maps of in-memory images at the image size, through :func:`wsolkit.localize`.

    Args:
        model: a method returning :class:`~wsolkit.output.WSOLOutput`.
        images: ``(N, 3, H, W)`` in ``[0, 1]``.
        labels: ``(N,)`` classes (for ``target="label"``).
        batch_size: inference batch size.
        cam_fn: ``cam_fn(model, x, y) -> (logits, raw maps (B, C, h, w))`` for maps that are not the method's
            ``cams`` (e.g. MaxMin's mask); it runs with the same eval and grad modes, ``y`` the asked classes.
        device: device to run on.
        preprocess: normalisation of the images (default: :func:`wsolkit.data.preprocessing` of ``model``).
        target: class whose map is returned (see :func:`wsolkit.localize`); default ``"label"`` when ``labels``
            are given, else ``"pred"``.

    Returns:
        ``(logits (N, C), maps (N, H, W))`` on the CPU.
    """
    preprocess = preprocess if preprocess is not None else preprocessing(model)
    target = target if target is not None else ("label" if labels is not None else "pred")
    model.to(device)
    all_logits, all_maps = [], []
    for i in range(0, images.shape[0], batch_size):
        x = preprocess(images[i : i + batch_size].to(device))
        y = labels[i : i + batch_size].to(device) if labels is not None else None
        tgt = target[i : i + batch_size] if isinstance(target, torch.Tensor) and target.ndim == 1 else target
        if cam_fn is None:
            out = localize(model, x, tgt, labels=y)
            logits, maps = out.logits, out.maps
        else:
            asked = resolve_target(tgt, x.shape[0], x.device, y)
            with eval_mode(model), grad_context(model):
                logits, raw = cam_fn(model, x, asked)
            logits = logits.detach().float()
            asked = asked if asked is not None else logits.argmax(1)
            maps = cam_ops.postprocess(raw.detach().float(), asked, images.shape[-2:])
        all_maps.append(maps.cpu())
        all_logits.append(logits.cpu())
    return torch.cat(all_logits), torch.cat(all_maps)
