"""Pixel-level localization metrics derived from the fg / bg threshold histograms.

All functions take the two int64 histograms of :func:`wsolkit.metrics.localization_histogram` (length ``T + 1``,
bin ``i`` holds scores in ``[i / T, (i + 1) / T)``, bin ``T`` the scores ``>= 1``). At threshold ``τ_i`` a pixel is
predicted foreground when ``s >= τ_i``, so

- ``TP(τ_i) = Σ_{j >= i} fg_j``, ``FP(τ_i) = Σ_{j >= i} bg_j``, ``FN = P − TP``, ``TN = N − FP``
  with ``P = Σ fg`` and ``N = Σ bg`` pooled over all pixels of all images.

Conventions (documented and tested):

- PxAP (Choe et al. 2020; survey eqs. 14-16): ``AP = 100 · Σ_l precision_l · (recall_l − recall_{l−1})`` over the
  thresholds from ``τ = 1`` down to ``τ = 0`` where ``TP + FP > 0``, starting from recall 0 above the highest
  threshold (the protocol's code has an extra empty top bin that plays this role). No foreground pixel at all
  → NaN and a :class:`RuntimeWarning`.
- TP*, FN*, FP*, TN* (survey eqs. 17-24; keys ``tp_star`` ...): the normalised rates ``TP(τ)/P``, ``FN(τ)/P``,
  ``FP(τ)/N``, ``TN(τ)/N`` integrated over ``τ`` with ``Σ_{l=1..T} rate(τ_l) · (τ_l − τ_{l−1})``, in percent, so
  ``TP* + FN* = 100`` and ``FP* + TN* = 100``. Rates over an empty class (``P = 0`` or ``N = 0``) are NaN.
- Dice / IoU of the foreground and of the background per threshold; ``0 / 0`` (both sets empty) counts as 1.
  ``mIoU = (IoU_fg + IoU_bg) / 2``; the operating threshold is the first ``τ`` maximising mIoU — choose it on a
  validation set and apply it on test with ``threshold=``.
- F1+ / F1− (MaxMin paper; keys ``f1_pos`` / ``f1_neg``) at a fixed threshold (default 0.5): the foreground /
  background Dice of the pooled pixel counts at that threshold (a threshold off the grid ``i / T`` is rounded up to
  the next grid point).

Units and keys: every metric and every curve is in **percent** (thresholds ``τ`` are scores in ``[0, 1]``; counts
are counts); keys are snake_case, and a curve has the name of the scalar it traces over ``τ``.
"""

from __future__ import annotations

import math
import warnings

import torch

from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError, check_number, check_tensor
from wsolkit._deprecation import warn_deprecated
from wsolkit.metrics._base import MetricDict
from wsolkit.metrics.histogram import _histogram_update, _histogram_validate

__all__ = [
    "confusion_curves",
    "pxap_from_histogram",
    "confusion_areas",
    "overlap_curves",
    "threshold_index",
    "histogram_metrics",
    "localization_metrics",
]


def _counts_validate(fg: torch.Tensor, bg: torch.Tensor) -> int:
    """Check a pair of histograms; return ``T``."""
    check_tensor(fg, "fg")
    check_tensor(bg, "bg")
    for x, name in ((fg, "fg"), (bg, "bg")):
        if x.is_floating_point() or x.is_complex():
            raise WSOLTypeError(f"`{name}` must be an integer count tensor, got dtype {x.dtype}")
        if x.ndim != 1 or x.shape[0] < 2:
            raise ShapeError(f"`{name}` must have shape (T + 1,) with T >= 1, got {tuple(x.shape)}")
        if x.numel() and int(x.min()) < 0:
            raise WSOLValueError(f"`{name}` must hold non-negative counts, got minimum {int(x.min())}")
    if fg.shape != bg.shape:
        raise ShapeError(f"`fg` and `bg` must have the same shape, got {tuple(fg.shape)} and {tuple(bg.shape)}")
    return fg.shape[0] - 1


def confusion_curves(fg: torch.Tensor, bg: torch.Tensor) -> dict[str, torch.Tensor]:
    """Pixel counts ``tp, fp, fn, tn`` at every threshold ``τ_i = i / T`` (float64, length ``T + 1``).

    Example:
        >>> c = confusion_curves(torch.tensor([0, 1, 1]), torch.tensor([1, 1, 0]))
        >>> c["tp"].tolist(), c["fp"].tolist(), c["tau"].tolist()
        ([2.0, 2.0, 1.0], [2.0, 1.0, 0.0], [0.0, 0.5, 1.0])
    """
    t = _counts_validate(fg, bg)
    f = fg.detach().cpu().double()
    b = bg.detach().cpu().double()
    tp = f.flip(0).cumsum(0).flip(0)
    fp = b.flip(0).cumsum(0).flip(0)
    pos, neg = f.sum(), b.sum()
    tau = torch.arange(t + 1, dtype=torch.float64) / t
    return {"tau": tau, "tp": tp, "fp": fp, "fn": pos - tp, "tn": neg - fp}


def _warn_no_fg() -> None:
    warnings.warn("PxAP is undefined when there is no foreground pixel; returning NaN", RuntimeWarning, stacklevel=3)


def pxap_from_histogram(fg: torch.Tensor, bg: torch.Tensor) -> float:
    """PxAP in percent (Choe et al. 2020; survey eq. 16) from the fg / bg histograms.

    Example:
        >>> pxap_from_histogram(torch.tensor([0, 0, 2]), torch.tensor([2, 0, 0]))
        100.0
    """
    _counts_validate(fg, bg)
    return _pxap_compute(fg, bg)


def _pxap_compute(fg: torch.Tensor, bg: torch.Tensor) -> float:
    f = fg.detach().cpu().double().flip(0)
    b = bg.detach().cpu().double().flip(0)
    tp = f.cumsum(0)
    fp = b.cumsum(0)
    n_pos = float(tp[-1])
    if n_pos <= 0:
        _warn_no_fg()
        return float("nan")
    recall = torch.cat([tp.new_zeros(1), tp / n_pos])
    denom = tp + fp
    keep = denom > 0
    precision = tp / denom.clamp_min(1)
    return float(100.0 * (precision * recall.diff())[keep].sum())


def _rate(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    return num / den if float(den) > 0 else torch.full_like(num, float("nan"))


def confusion_areas(fg: torch.Tensor, bg: torch.Tensor) -> dict[str, float]:
    """TP*, FN*, FP*, TN* in percent (survey eqs. 21-24): areas under the normalised confusion rates over τ.

    Example:
        >>> a = confusion_areas(torch.tensor([0, 0, 0, 0, 4]), torch.tensor([4, 0, 0, 0, 0]))
        >>> a["tp_star"], a["fn_star"], a["fp_star"], a["tn_star"]
        (100.0, 0.0, 0.0, 100.0)
    """
    _counts_validate(fg, bg)
    return _confusion_areas_compute(confusion_curves(fg, bg))


def _confusion_areas_compute(c: dict[str, torch.Tensor]) -> MetricDict:
    tau = c["tau"]
    dtau = tau.diff()  # τ_l − τ_{l−1}, l = 1..T
    pos = c["tp"][0] + c["fn"][0]
    neg = c["fp"][0] + c["tn"][0]
    out = MetricDict()
    for key, den in (("tp", pos), ("fn", pos), ("fp", neg), ("tn", neg)):
        out[key + "_star"] = float(100.0 * (_rate(c[key], den)[1:] * dtau).sum())
    return out


def _safe_ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    # 0 / 0 (both sets empty) counts as a perfect overlap
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.ones_like(num))


def overlap_curves(fg: torch.Tensor, bg: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-threshold Dice and IoU of the foreground and the background, and their mean IoU (float64, percent).

    Example:
        >>> c = overlap_curves(torch.tensor([0, 0, 2]), torch.tensor([2, 0, 0]))
        >>> c["miou"].tolist()
        [25.0, 100.0, 100.0]
    """
    _counts_validate(fg, bg)
    return {k: 100.0 * v for k, v in _overlap_compute(confusion_curves(fg, bg)).items()}


def _overlap_compute(c: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    tp, fp, fn, tn = c["tp"], c["fp"], c["fn"], c["tn"]
    out = {
        "dice_fg": _safe_ratio(2 * tp, 2 * tp + fp + fn),
        "dice_bg": _safe_ratio(2 * tn, 2 * tn + fp + fn),
        "iou_fg": _safe_ratio(tp, tp + fp + fn),
        "iou_bg": _safe_ratio(tn, tn + fp + fn),
    }
    out["miou"] = (out["iou_fg"] + out["iou_bg"]) / 2
    return out


def threshold_index(threshold: float, num_thresholds: int) -> int:
    """Index of the first grid threshold ``τ_i = i / T`` at or above ``threshold`` (``i = ceil(threshold · T)``).

    A threshold on the grid (up to 1e-9) maps to its own index; another value maps to the next grid point, i.e.
    the predicted set ``{s >= τ_i}`` is the one of the histogram resolution. The returned metrics report the
    threshold actually used.

    Example:
        >>> threshold_index(0.5, 1000), threshold_index(0.5, 1), threshold_index(0.0, 3)
        (500, 1, 0)
    """
    tau = check_number(threshold, "threshold", 0.0, 1.0)
    i = round(tau * num_thresholds)
    if math.isclose(i / num_thresholds, tau, rel_tol=0, abs_tol=1e-9):
        return i
    return min(num_thresholds, math.ceil(tau * num_thresholds))


def _localization_compute(
    fg: torch.Tensor, bg: torch.Tensor, threshold: float | None = None, f1_threshold: float = 0.5
) -> MetricDict:
    t = fg.shape[0] - 1
    c = confusion_curves(fg, bg)
    ov = _overlap_compute(c)
    n_pos = float(c["tp"][0])
    out = MetricDict(pxap=_pxap_compute(fg, bg))
    out.update(_confusion_areas_compute(c))
    best = int(torch.argmax(ov["miou"]))  # first maximum
    i = best if threshold is None else threshold_index(threshold, t)
    out.update(
        {
            "max_miou": float(ov["miou"][best] * 100),
            "best_threshold": best / t,
            "threshold": i / t,
            "miou": float(ov["miou"][i] * 100),
            "iou_fg": float(ov["iou_fg"][i] * 100),
            "iou_bg": float(ov["iou_bg"][i] * 100),
            "dice_fg": float(ov["dice_fg"][i] * 100),
            "dice_bg": float(ov["dice_bg"][i] * 100),
        }
    )
    j = threshold_index(f1_threshold, t)
    out["f1_threshold"] = j / t
    out["f1_pos"] = float(ov["dice_fg"][j] * 100)
    out["f1_neg"] = float(ov["dice_bg"][j] * 100)
    out["n_fg"] = int(n_pos)
    out["n_bg"] = int(c["fp"][0])
    with torch.no_grad():
        prec = torch.where(c["tp"] + c["fp"] > 0, c["tp"] / (c["tp"] + c["fp"]).clamp_min(1), torch.ones_like(c["tp"]))
        rec = c["tp"] / n_pos if n_pos > 0 else torch.full_like(c["tp"], float("nan"))
    pos, neg = c["tp"][0] + c["fn"][0], c["fp"][0] + c["tn"][0]
    curves = {
        "precision": prec,
        "recall": rec,
        "tp": _rate(c["tp"], pos),
        "fn": _rate(c["fn"], pos),
        "fp": _rate(c["fp"], neg),
        "tn": _rate(c["tn"], neg),
        **ov,
    }
    out["curves"] = {"tau": c["tau"], **{k: 100.0 * v for k, v in curves.items()}}
    return out


def histogram_metrics(
    fg: torch.Tensor, bg: torch.Tensor, threshold: float | None = None, f1_threshold: float = 0.5
) -> MetricDict:
    """Every pixel-level metric from the histograms: PxAP, TP*/FN*/FP*/TN*, Dice/IoU/mIoU, F1+/F1−, curves.

    Args:
        fg: foreground counts per bin ``(T + 1,)``.
        bg: background counts per bin ``(T + 1,)``.
        threshold: operating threshold for Dice/IoU/mIoU (``None``: the τ maximising mIoU on these counts — use
            it on validation, then pass the chosen value for test).
        f1_threshold: fixed threshold of F1+ / F1− (MaxMin paper: 0.5).

    Returns:
        A dict of floats in percent (``pxap``, ``tp_star``, ``fn_star``, ``fp_star``, ``tn_star``, ``max_miou``,
        ``miou``, ``iou_fg/bg``, ``dice_fg/bg``, ``f1_pos``, ``f1_neg``), thresholds in ``[0, 1]``
        (``best_threshold``, ``threshold``, ``f1_threshold``), counts (``n_fg``, ``n_bg``) and ``"curves"``: float64
        tensors of length ``T + 1`` in percent (``precision``, ``recall``, the rates ``tp/fn/fp/tn``,
        ``dice_fg/bg``, ``iou_fg/bg``, ``miou``) beside ``tau``.

    Example:
        >>> r = histogram_metrics(torch.tensor([0, 1, 3]), torch.tensor([3, 1, 0]))
        >>> round(r["pxap"], 4), r["best_threshold"], round(r["f1_pos"], 3)
        (95.0, 0.5, 88.889)
    """
    t = _counts_validate(fg, bg)
    if threshold is not None:
        threshold_index(threshold, t)
    threshold_index(f1_threshold, t)
    return _localization_compute(fg, bg, threshold, f1_threshold)


def localization_metrics(
    cams: torch.Tensor,
    masks: torch.Tensor,
    labels: torch.Tensor | int | None = None,
    *,
    num_thresholds: int = 1000,
    ignore_index: int | None = 255,
    normalize: bool = True,
    threshold: float | None = None,
    f1_threshold: float = 0.5,
) -> MetricDict:
    """Every pixel-level metric of a set of maps: the functional twin of :class:`~wsolkit.metrics.LocalizationMeter`.

    Validates once, builds the fg / bg histograms once (:func:`~wsolkit.metrics.localization_histogram`) and
    computes once (:func:`histogram_metrics`, whose keys it returns, plus ``n_images``). Calling it with two
    integer histograms ``(fg, bg)`` (the previous release's form) is deprecated: use :func:`histogram_metrics`.

    Args:
        cams: raw maps (``normalize=True``: select → upsample → per-image min-max) or maps in ``[0, 1]``.
        masks: ground truth with values 0, 1 and ``ignore_index``.
        labels: target class per image when ``cams`` has ``C > 1`` maps.
        num_thresholds: T.
        ignore_index: mask value of pixels left out.
        normalize: the protocol's per-image min-max normalisation.
        threshold: operating threshold of Dice/IoU/mIoU (``None``: the best one).
        f1_threshold: threshold of F1+ / F1−.

    Shape:
        - cams: :math:`(B, h, w)`, :math:`(B, H, W)` or :math:`(B, C, h, w)`
        - masks: :math:`(B, H, W)`

    Example:
        >>> masks = torch.zeros(1, 8, 8, dtype=torch.uint8); masks[0, 2:6, 2:6] = 1
        >>> r = localization_metrics(masks.float()[:, ::2, ::2] * 5.0, masks, num_thresholds=10)
        >>> r["pxap"] > 50, r["n_images"]
        (True, 1)
    """
    if (
        isinstance(cams, torch.Tensor) and isinstance(masks, torch.Tensor) and cams.ndim == 1 and masks.ndim == 1
        and not cams.is_floating_point()
    ):
        warn_deprecated("localization_metrics(fg, bg)", "histogram_metrics(fg, bg)")
        thr = labels if isinstance(labels, float) or labels is None else threshold
        return histogram_metrics(cams, masks, thr, f1_threshold)
    t = _histogram_validate(cams, masks, num_thresholds, ignore_index, labels)
    if threshold is not None:
        threshold_index(threshold, t)
    threshold_index(f1_threshold, t)
    fg, bg = _histogram_update(cams, masks, t, ignore_index, labels, normalize, check_range=True)
    out = _localization_compute(fg, bg, threshold, f1_threshold)
    out["n_images"] = int(cams.shape[0])
    return out
