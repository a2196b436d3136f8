"""Faithfulness metrics: does the map show what the model used? (Average Drop / Increase, Deletion / Insertion, ROAD).

Each takes a ``model`` returning logits ``(B, K)`` or a :class:`~wsolkit.output.WSOLOutput` (its ``.logits`` are
used; any object with ``.logits`` works), ``images (B, C, H, W)``, ``maps (B, H, W)`` in ``[0, 1]`` at the input
size (e.g. :func:`wsolkit.cams.postprocess` of a method's cams) and ``targets`` (``(B,)`` classes, an int, or
``None`` for the class predicted on the clean images). The model is put in eval mode and restored; perturbed inputs
are scored under ``torch.no_grad`` in batches on the images' device. Scores are the softmax probability of the
target class (``score="softmax"``) or its logit (``score="logit"``). Results are in **percent** (means over images;
``reduction="none"`` gives one value per image). Each function has a meter twin (a ``torchmetrics.Metric`` whose
``compute()`` is global under ``torch.distributed``).

- :func:`confidence_change` — Average Drop and Increase in Confidence (Chattopadhay et al. 2018, eqs. 21-22),
  the definition of torchcam's ``ClassificationMetric``: ``drop = relu(Y − O) / (Y + 1e-7)``, ``increase = Y < O``
  with ``Y`` the score of the image and ``O`` the score of ``image × map``.
- :func:`deletion_insertion` — Deletion / Insertion AUC (Petsiuk et al. 2018, RISE) as torchcam's
  ``DeletionInsertionMetric``: pixels ranked by decreasing map value (stable sort), ``ceil(HW / steps)`` pixels per
  step, the baseline (zeros, ``"blur"`` or a tensor) replacing (deletion) or being replaced by (insertion) the ranked
  pixels, the trapezoid rule over the actual perturbed fraction.
- :func:`road` — ROAD (Rong et al. 2022): MoRF / LeRF with noisy linear imputation; see :mod:`wsolkit.metrics._road`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError, check_finite, check_int, check_ndim
from wsolkit._modules import eval_mode, model_logits
from wsolkit.metrics._base import MetricDict, WSOLMetric

__all__ = [
    "confidence_change",
    "deletion_insertion",
    "model_scores",
    "ConfidenceChangeMeter",
    "DeletionInsertionMeter",
]


def _eval_mode(model: Callable) -> Any:
    return eval_mode(model)


def _logits(model: Callable, x: torch.Tensor) -> torch.Tensor:
    logits = model_logits(model(x))
    if logits.shape[0] != x.shape[0]:
        raise WSOLTypeError(f"`model` must return logits (B, K) for B={x.shape[0]} images, got {tuple(logits.shape)}")
    return logits


def _score(logits: torch.Tensor, targets: torch.Tensor, score: str) -> torch.Tensor:
    s = torch.softmax(logits, dim=-1) if score == "softmax" else logits
    return s.gather(1, targets[:, None].to(s.device)).squeeze(1)


def model_scores(
    model: Callable, images: torch.Tensor, targets: torch.Tensor, score: str = "softmax", batch_size: int = 32
) -> torch.Tensor:
    """Score of each image's target class (softmax probability or logit), in batches, under ``no_grad``.

    Example:
        >>> import torch.nn as nn
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
        >>> model_scores(model, torch.rand(3, 3, 2, 2), torch.tensor([0, 1, 1])).shape
        torch.Size([3])
    """
    out = []
    with torch.no_grad():
        for a in range(0, images.shape[0], batch_size):
            out.append(_score(_logits(model, images[a : a + batch_size]), targets[a : a + batch_size], score))
    return torch.cat(out) if out else images.new_zeros(0)


def _validate(
    images: torch.Tensor, maps: torch.Tensor, targets: Any, score: str, reduction: str
) -> tuple[torch.Tensor | None, torch.Tensor]:
    check_ndim(images, "images", 4, "(B, C, H, W)")
    check_ndim(maps, "maps", 3, "(B, H, W)")
    if maps.shape[0] != images.shape[0] or maps.shape[-2:] != images.shape[-2:]:
        raise ShapeError(f"`maps` must have shape (B, H, W) = {(images.shape[0], *images.shape[-2:])} to match "
                         f"`images` {tuple(images.shape)}, got {tuple(maps.shape)}")
    if not maps.is_floating_point():
        raise WSOLTypeError(f"`maps` must be a floating point tensor, got dtype {maps.dtype}")
    check_finite(maps, "maps")
    if maps.numel():
        lo, hi = float(maps.min()), float(maps.max())
        if lo < 0 or hi > 1:
            raise WSOLValueError(f"`maps` must lie in [0, 1] (e.g. wsolkit.cams.postprocess), got values in "
                                 f"[{lo:.6g}, {hi:.6g}]")
    if score not in ("softmax", "logit"):
        raise WSOLValueError(f"`score` must be 'softmax' or 'logit', got {score!r}")
    if reduction not in ("mean", "none"):
        raise WSOLValueError(f"`reduction` must be 'mean' or 'none', got {reduction!r}")
    b = images.shape[0]
    if targets is None:
        return None, maps
    if isinstance(targets, (int,)) and not isinstance(targets, bool):
        return torch.full((b,), int(targets), dtype=torch.long), maps
    t = torch.as_tensor(targets)
    if t.is_floating_point() or t.ndim != 1 or t.shape[0] != b:
        raise WSOLTypeError(f"`targets` must be None, an int or {b} integer classes, got {targets!r}")
    return t.long(), maps


def _reduce(values: dict[str, torch.Tensor], reduction: str) -> MetricDict:
    if reduction == "none":
        return MetricDict({k: 100.0 * v.double().cpu() for k, v in values.items()})
    return MetricDict({k: float(100.0 * v.double().mean()) if v.numel() else float("nan") for k, v in values.items()})


def confidence_change(
    model: Callable,
    images: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor | int | None = None,
    score: str = "softmax",
    batch_size: int = 32,
    reduction: str = "mean",
) -> MetricDict:
    """Average Drop and Increase in Confidence (Chattopadhay et al. 2018), in percent.

    ``avg_drop = 100 · mean(relu(Y − O) / (Y + 1e-7))`` (lower is better) and ``increase = 100 · mean(Y < O)``
    (higher is better), with ``Y`` the target score of the image and ``O`` that of ``image × map`` — torchcam's
    ``ClassificationMetric`` with ``logits_fn=softmax`` (its keys ``avg_drop`` / ``conf_increase``, as fractions).

    Args:
        model: classifier returning logits or a ``WSOLOutput``.
        images: inputs.
        maps: explanation maps in ``[0, 1]`` at the input size.
        targets: explained classes (``None``: predicted on ``images``).
        score: ``"softmax"`` (default, as the paper) or ``"logit"``.
        batch_size: images per forward pass.
        reduction: ``"mean"`` or ``"none"`` (per image).

    Returns:
        ``{"avg_drop", "increase"}``.

    Shape:
        - images: :math:`(B, C, H, W)`; maps: :math:`(B, H, W)`; targets: :math:`(B,)`

    Example:
        >>> import torch.nn as nn
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
        >>> r = confidence_change(model, torch.rand(2, 3, 4, 4), torch.ones(2, 4, 4))
        >>> r["avg_drop"], r["increase"]  # the all-ones map leaves the image unchanged
        (0.0, 0.0)
    """
    tg, maps = _validate(images, maps, targets, score, reduction)
    with _eval_mode(model):
        if tg is None:
            with torch.no_grad():
                tg = torch.cat([_logits(model, images[a : a + batch_size]).argmax(1)
                                for a in range(0, images.shape[0], batch_size)])
        y = model_scores(model, images, tg, score, batch_size)
        o = model_scores(model, images * maps[:, None].to(images), tg, score, batch_size)
    drop = torch.relu(y - o) / (y + 1e-7)
    return _reduce({"avg_drop": drop, "increase": (y < o).double()}, reduction)


def _gaussian_blur(x: torch.Tensor, kernel_size: int = 11, sigma: float = 5.0) -> torch.Tensor:
    r = kernel_size // 2
    k = torch.exp(-((torch.arange(kernel_size, dtype=x.dtype, device=x.device) - r) ** 2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    y = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(y, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _baseline(images: torch.Tensor, baseline: Any) -> torch.Tensor:
    if baseline is None:
        return torch.zeros_like(images)
    if isinstance(baseline, str):
        if baseline != "blur":
            raise WSOLValueError(f"`baseline` must be None, 'blur', a tensor or a callable, got {baseline!r}")
        return _gaussian_blur(images)
    b = baseline(images) if callable(baseline) and not isinstance(baseline, torch.Tensor) else baseline
    if not isinstance(b, torch.Tensor):
        raise WSOLTypeError(f"`baseline` must be None, 'blur', a tensor or a callable returning one, got {b!r}")
    try:
        return torch.broadcast_to(b.to(images), images.shape)
    except RuntimeError:
        raise ShapeError(f"`baseline` {tuple(b.shape)} must broadcast to `images` {tuple(images.shape)}") from None


def deletion_insertion(
    model: Callable,
    images: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor | int | None = None,
    steps: int = 20,
    baseline: torch.Tensor | str | Callable | None = None,
    batch_size: int = 32,
    score: str = "softmax",
    reduction: str = "mean",
) -> MetricDict:
    """Deletion and Insertion AUC (Petsiuk et al. 2018), in percent of the score.

    Pixels are ranked by decreasing map value (stable sort, shared across channels). With ``n = H · W`` and the step
    ``ceil(n / steps)``, the curve points are ``k = 0, step, 2 step, ..., n``; deletion scores the image whose ``k``
    top pixels are replaced by the baseline, insertion the baseline whose ``k`` top pixels are restored from the
    image; each AUC is the trapezoid rule over the fraction ``k / n`` — torchcam's ``DeletionInsertionMetric``
    (keys ``deletion_auc`` / ``insertion_auc``, as fractions). Lower deletion, higher insertion are better.

    Args:
        model: classifier returning logits or a ``WSOLOutput``.
        images: inputs.
        maps: explanation maps in ``[0, 1]`` at the input size.
        targets: explained classes (``None``: predicted on ``images``).
        steps: maximum number of perturbation intervals.
        baseline: ``None`` (zeros), ``"blur"`` (Gaussian, kernel 11, σ 5, as RISE's insertion), a tensor
            broadcastable to ``images`` or a callable ``images -> tensor``.
        batch_size: perturbed inputs per forward pass.
        score: ``"softmax"`` or ``"logit"``.
        reduction: ``"mean"`` or ``"none"``.

    Returns:
        ``{"deletion", "insertion"}`` (with ``reduction="none"`` also the curves ``"deletion_curve"``,
        ``"insertion_curve"`` ``(B, P)`` and ``"fractions"`` ``(P,)``).

    Example:
        >>> import torch.nn as nn
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
        >>> r = deletion_insertion(model, torch.rand(2, 3, 4, 4), torch.rand(2, 4, 4), steps=4)
        >>> sorted(r)
        ['deletion', 'insertion']
    """
    tg, maps = _validate(images, maps, targets, score, reduction)
    steps = check_int(steps, "steps", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1)
    b, c = images.shape[:2]
    n = images.shape[-1] * images.shape[-2]
    step = math.ceil(n / steps)
    counts = [*range(0, n, step), n]
    frac = torch.tensor(counts, dtype=torch.float64) / n
    with _eval_mode(model), torch.no_grad():
        base = _baseline(images, baseline)
        if tg is None:
            tg = torch.cat([_logits(model, images[a : a + batch_size]).argmax(1) for a in range(0, b, batch_size)])
        y = model_scores(model, images, tg, score, batch_size)
        order = torch.argsort(maps.flatten(1), dim=1, descending=True, stable=True)
        rank = torch.argsort(order, dim=1)  # rank of each pixel: 0 = highest map value
        x_flat, b_flat = images.flatten(2), base.flatten(2)
        # jobs: (image, curve 0 = deletion / 1 = insertion, k); k = 0 and k = n are shared between the curves
        jobs = [(i, 0, k) for i in range(b) for k in counts[1:]] + [(i, 1, k) for i in range(b) for k in counts[1:-1]]
        dele = torch.empty(b, len(counts), dtype=torch.float64)
        ins = torch.empty(b, len(counts), dtype=torch.float64)
        dele[:, 0] = y.double().cpu()
        ins[:, -1] = y.double().cpu()
        pos = {k: j for j, k in enumerate(counts)}
        for a in range(0, len(jobs), batch_size):
            chunk = jobs[a : a + batch_size]
            idx = torch.tensor([j[0] for j in chunk], device=images.device)
            ks = torch.tensor([j[2] for j in chunk], device=images.device)
            top = rank[idx] < ks[:, None]  # (J, n) pixels perturbed at this point
            is_del = torch.tensor([j[1] == 0 for j in chunk], device=images.device)[:, None]
            keep_image = torch.where(is_del, ~top, top)[:, None]
            x = torch.where(keep_image, x_flat[idx], b_flat[idx]).view(len(chunk), *images.shape[1:])
            s = _score(_logits(model, x), tg[idx.cpu()].to(images.device), score).double().cpu()
            for (i, curve, k), v in zip(chunk, s.tolist()):
                if curve == 0:
                    dele[i, pos[k]] = v
                    if k == n:
                        ins[i, 0] = v
                else:
                    ins[i, pos[k]] = v
    out = {"deletion": torch.trapezoid(dele, frac, dim=1), "insertion": torch.trapezoid(ins, frac, dim=1)}
    res = _reduce(out, reduction)
    if reduction == "none":
        res.update({"deletion_curve": 100.0 * dele, "insertion_curve": 100.0 * ins, "fractions": frac})
    return res


class _FaithfulnessMeter(WSOLMetric):
    """Sums of per-image values (float64) and the image count (int64); ``compute`` returns the means (percent)."""

    _keys: tuple[str, ...] = ()
    higher_is_better = None

    def __init__(self, model: Callable, **kwargs: Any) -> None:
        metric_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in _METRIC_KWARGS}
        super().__init__(**metric_kwargs)
        self.__dict__["model"] = model  # not a sub-module: the meter's state_dict holds only its sums
        self.options = kwargs
        for k in self._keys:
            self.add_state(k, torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum", persistent=True)
        self._add_int_state("n_images", ())

    def _config(self) -> dict[str, Any]:
        return {k: v for k, v in self.options.items() if isinstance(v, (int, float, str, tuple, type(None)))}

    def _fn(self, images, maps, targets) -> MetricDict:  # pragma: no cover - abstract
        raise NotImplementedError

    def update(self, images: torch.Tensor, maps: torch.Tensor, targets: torch.Tensor | int | None = None) -> None:
        """Add a batch (see the functional twin for the shapes)."""
        r = self._fn(images, maps, targets)
        for k in self._keys:
            setattr(self, k, getattr(self, k) + r[k].sum().to(getattr(self, k)) / 100.0)
        self.n_images += images.shape[0]

    def compute(self) -> MetricDict:
        """Means over every image seen (percent)."""
        n = int(self.n_images)
        return MetricDict({k: float(100.0 * getattr(self, k) / n) if n else float("nan") for k in self._keys},
                          n_images=n)


_METRIC_KWARGS = {"compute_on_cpu", "dist_sync_on_step", "process_group", "dist_sync_fn", "distributed_available_fn",
                  "sync_on_compute", "compute_with_cache"}


class ConfidenceChangeMeter(_FaithfulnessMeter):
    """Streaming :func:`confidence_change` (options: ``score``, ``batch_size``).

    Example:
        >>> import torch.nn as nn
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
        >>> meter = ConfidenceChangeMeter(model)
        >>> meter.update(torch.rand(2, 3, 4, 4), torch.ones(2, 4, 4))
        >>> meter.compute()["avg_drop"]
        0.0
    """

    _keys = ("avg_drop", "increase")

    def _fn(self, images, maps, targets):
        return confidence_change(self.model, images, maps, targets, reduction="none", **self.options)


class DeletionInsertionMeter(_FaithfulnessMeter):
    """Streaming :func:`deletion_insertion` (options: ``steps``, ``baseline``, ``batch_size``, ``score``).

    Example:
        >>> import torch.nn as nn
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
        >>> meter = DeletionInsertionMeter(model, steps=4)
        >>> meter.update(torch.rand(2, 3, 4, 4), torch.rand(2, 4, 4))
        >>> meter.compute()["n_images"]
        2
    """

    _keys = ("deletion", "insertion")

    def _fn(self, images, maps, targets):
        return deletion_insertion(self.model, images, maps, targets, reduction="none", **self.options)


