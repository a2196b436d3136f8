"""The one way from a method to maps: :func:`localize`.

Every consumer of maps in wsolkit — :func:`wsolkit.training.evaluate`, :func:`~wsolkit.training.predict_maps`,
``wsolkit predict``, ``wsolkit evaluate --faithfulness``, :func:`wsolkit.wsi.heatmap`, ``wsolkit slide``, the
benchmarks, :meth:`wsolkit.WSOLModel.localize` — calls it, so a map is always the map of the class that was asked
for: the target reaches ``forward(x, labels=target)`` (explainers explain it, ACoL erases for it) and then selects
that class's map.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn as nn

from wsolkit import cams as cam_ops
from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError, check_ndim
from wsolkit._modules import eval_mode, unwrap

__all__ = ["localize", "Localization", "resolve_target", "grad_context"]

Target = str | int | torch.Tensor


class Localization(NamedTuple):
    """What :func:`localize` returns.

    Attributes:
        logits: ``(B, K)`` float32 logits, detached.
        maps: ``(B, H, W)`` maps of ``target`` at the input size (or ``size``): in ``[0, 1]`` after the protocol's
            per-image min-max, or raw (selected and upsampled only) with ``normalize=False``; detached.
        target: ``(B,)`` long, the class of each map.
    """

    logits: torch.Tensor
    maps: torch.Tensor
    target: torch.Tensor


def grad_context(method: nn.Module) -> contextlib.AbstractContextManager:
    """``torch.enable_grad()`` for a method that declares ``needs_grad = True`` (gradient explainers), else
    ``torch.no_grad()``."""
    return torch.enable_grad() if getattr(unwrap(method), "needs_grad", False) else torch.no_grad()


def resolve_target(target: Target, b: int, device: torch.device, labels: Any = None) -> torch.Tensor | None:
    """The ``(B,)`` classes asked for, or ``None`` for ``"pred"`` (known after the forward).

    Args:
        target: ``"pred"``, ``"label"`` (then ``labels`` is used), a class index or a ``(B,)`` integer tensor.
        b: batch size.
        device: device of the result.
        labels: ``(B,)`` class indices for ``target="label"``.
    """
    if isinstance(target, str):
        if target == "pred":
            return None
        if target != "label":
            raise WSOLValueError(f"`target` must be 'pred', 'label', a class index or a (B,) tensor, got {target!r}")
        if labels is None:
            raise WSOLValueError("`target`='label' needs `labels=` (the (B,) class of each image)")
        target = labels
    if isinstance(target, bool):
        raise WSOLTypeError("`target` must be 'pred', 'label', a class index or a (B,) tensor, got a bool")
    if isinstance(target, int):
        return torch.full((b,), target, dtype=torch.long, device=device)
    t = torch.as_tensor(target)
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise WSOLTypeError(f"`target` / `labels` must hold class indices (integers), got dtype {t.dtype}")
    if t.ndim == 0:
        t = t.expand(b)
    if t.shape != (b,):
        raise ShapeError(f"`target` / `labels` must have shape ({b},) for a batch of {b}, got {tuple(t.shape)}")
    return t.to(device=device, dtype=torch.long)


def localize(
    method: nn.Module,
    x: torch.Tensor,
    target: Target = "pred",
    *,
    labels: torch.Tensor | None = None,
    size: int | Sequence[int] | None = None,
    normalize: bool = True,
    amp: bool | None = None,
) -> Localization:
    """Logits and the map of the asked class for a batch — the one inference path of wsolkit.

    The method runs in eval mode (each sub-module's flag restored afterwards), under ``torch.enable_grad()`` when it
    declares ``needs_grad = True`` (gradient explainers) and ``torch.no_grad()`` otherwise, and under CUDA autocast
    when ``amp`` (default: on for CUDA inputs). ``forward(x, labels=target)`` is called — ``labels=None`` for
    ``"pred"``, which the protocol defines as the predicted class — then the target's map is selected, upsampled
    to the input size and min-max normalised (:func:`wsolkit.cams.postprocess`).

    Args:
        method: a module with ``forward(x, labels=None) -> WSOLOutput`` (:func:`wsolkit.create_method`, a
            ``DistributedDataParallel`` / compiled wrapper of one, or your own).
        x: ``(B, C, H, W)`` model-ready images (normalised as the model expects).
        target: ``"pred"`` (the argmax of the logits), ``"label"`` (``labels``), a class index, or a ``(B,)``
            integer tensor.
        labels: ``(B,)`` class indices, for ``target="label"``.
        size: output ``(H, W)`` (default: the input's).
        normalize: per-image min-max to ``[0, 1]``; ``False`` returns the selected, upsampled raw maps (what whole
            slides stitch before normalising once per slide, and what streaming meters normalise themselves).
        amp: autocast (CUDA); ``None``: on when ``x`` is on a CUDA device.

    Returns:
        :class:`Localization` ``(logits (B, K), maps (B, H, W), target (B,))``.

    Example:
        >>> import wsolkit
        >>> m = wsolkit.create_method("gradcam", classifier=wsolkit.create_method("gap", 3, backbone="smallcnn"))
        >>> loc = wsolkit.localize(m, torch.rand(2, 3, 32, 32), target=torch.tensor([2, 0]))
        >>> loc.maps.shape, loc.target.tolist(), float(loc.maps.max())
        (torch.Size([2, 32, 32]), [2, 0], 1.0)
    """
    if not isinstance(method, nn.Module):
        raise WSOLTypeError(f"`method` must be an nn.Module returning WSOLOutput, got {type(method).__name__}")
    if not isinstance(x, torch.Tensor):
        raise WSOLTypeError(f"`x` must be a tensor, got {type(x).__name__}")
    check_ndim(x, "x", 4, "(B, C, H, W)")
    if not x.is_floating_point():
        raise WSOLTypeError(f"`x` must be floating point (model-ready images), got dtype {x.dtype}")
    b = x.shape[0]
    asked = resolve_target(target, b, x.device, labels)
    amp = x.device.type == "cuda" if amp is None else bool(amp)
    out_size = tuple(x.shape[-2:]) if size is None else size
    with eval_mode(method), grad_context(method), torch.autocast(x.device.type, enabled=amp):
        out = method(x, asked) if asked is not None else method(x)
    logits, cams = getattr(out, "logits", None), getattr(out, "cams", None)
    if logits is None and isinstance(out, (tuple, list)) and len(out) >= 2:
        logits, cams = out[0], out[1]
    if not isinstance(logits, torch.Tensor) or not isinstance(cams, torch.Tensor):
        raise WSOLTypeError(f"{type(method).__name__} must return a WSOLOutput (logits, cams, aux), got "
                            f"{type(out).__name__}")
    logits = logits.detach().float()
    if logits.ndim != 2 or logits.shape[0] != b:
        raise ShapeError(f"the method's logits must have shape ({b}, K), got {tuple(logits.shape)}")
    k = logits.shape[1]
    if asked is None:
        asked = logits.argmax(1)
    elif b and (int(asked.min()) < 0 or int(asked.max()) >= k):
        raise WSOLValueError(f"`target` must be class indices in [0, {k - 1}], got values in "
                             f"[{int(asked.min())}, {int(asked.max())}]")
    cams = cams.detach().float()
    if normalize:
        maps = cam_ops.postprocess(cams, asked, out_size)
    else:
        maps = cam_ops.upsample(cam_ops.select(cams, asked), out_size)
    return Localization(logits, maps, asked)
