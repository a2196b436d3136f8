"""Pixel average precision (PxAP) of Choe et al. (2020); survey eqs. 14-16."""

from __future__ import annotations

import warnings

import torch

from wsolkit._checks import (
    WSOLValueError,
    check_finite,
    check_floating,
    check_int,
    check_mask_values,
    check_ndim,
    check_same_batch,
    check_same_spatial,
)

__all__ = ["binned_counts", "pxap_from_counts", "pxap"]


def binned_counts(
    cams: torch.Tensor, masks: torch.Tensor, num_thresholds: int = 1000, ignore_index: int = 255
) -> tuple[torch.Tensor, torch.Tensor]:
    """Foreground and background pixel counts per threshold bin.

    With ``T = num_thresholds``, thresholds are ``τ_i = i / T`` for ``i = 0..T``. A score ``s`` falls in bin ``i``
    when ``τ_i <= s < τ_{i+1}`` and in bin ``T`` when ``s >= 1``; scores below 0 fall in bin 0. Pixels whose mask
    equals ``ignore_index`` are not counted.

    Args:
        cams: normalised maps in ``[0, 1]``.
        masks: ground truth with values 0, 1 and ``ignore_index``.
        num_thresholds: T.
        ignore_index: mask value of pixels left out.

    Returns:
        ``(fg_counts, bg_counts)``, two int64 vectors of length ``T + 1``.

    Shape:
        - cams: :math:`(B, H, W)`
        - masks: :math:`(B, H, W)`

    Example:
        >>> fg, bg = binned_counts(torch.tensor([[[0.0, 1.0]]]), torch.tensor([[[0, 1]]]), num_thresholds=4)
        >>> fg.tolist(), bg.tolist()
        ([0, 0, 0, 0, 1], [1, 0, 0, 0, 0])
    """
    check_ndim(cams, "cams", 3, "(B, H, W)")
    check_floating(cams, "cams")
    check_ndim(masks, "masks", 3, "(B, H, W)")
    check_same_batch(cams, "cams", masks, "masks")
    check_same_spatial(cams, "cams", masks, "masks")
    check_finite(cams, "cams")
    check_mask_values(masks, "masks", ignore_index)
    t = check_int(num_thresholds, "num_thresholds", low=1)
    # bin index floor(s * T) computed in float64 so that s = i / T lands in bin i exactly as the comparison
    # τ_i <= s does in float64 (the protocol's numpy histogram).
    idx = torch.floor(cams.double() * t).clamp_(0, t).long()
    m = masks.to(cams.device)
    fg = torch.bincount(idx[m == 1], minlength=t + 1)
    bg = torch.bincount(idx[m == 0], minlength=t + 1)
    return fg, bg


def pxap_from_counts(fg_counts: torch.Tensor, bg_counts: torch.Tensor) -> float:
    """PxAP (in percent) from per-bin foreground / background counts.

    ``tp`` and ``fp`` are reversed cumulative sums of the counts (from ``τ = 1`` down to ``τ = 0``), precision
    ``tp / (tp + fp)``, recall ``tp / (tp + fn)``, and ``AP = 100 · Σ precision_l · (recall_l − recall_{l−1})``
    over the thresholds where ``tp + fp > 0``, starting from recall 0 above the highest threshold (as the protocol's
    extra empty top bin does). With no foreground pixel at all, returns NaN with a warning.

    Example:
        >>> pxap_from_counts(torch.tensor([0, 0, 2]), torch.tensor([2, 0, 0]))
        100.0
    """
    fg = fg_counts.double().flip(0)
    bg = bg_counts.double().flip(0)
    tp = fg.cumsum(0)
    fp = bg.cumsum(0)
    n_pos = tp[-1]
    if n_pos <= 0:
        warnings.warn("PxAP is undefined when there is no foreground pixel; returning NaN", RuntimeWarning,
                      stacklevel=2)
        return float("nan")
    recall = torch.cat([tp.new_zeros(1), tp / n_pos])
    denom = tp + fp
    precision = torch.where(denom > 0, tp / denom.clamp_min(1), torch.zeros_like(tp))
    ap = (precision * recall.diff())[denom > 0].sum()
    return float(100.0 * ap)


def pxap(cams: torch.Tensor, masks: torch.Tensor, num_thresholds: int = 1000, ignore_index: int = 255) -> float:
    """Pixel average precision over a whole set of maps (survey eqs. 14-16, Choe et al. 2020).

    Counts are pooled over all pixels of all images (not averaged per image). A pixel is positive at ``τ`` when
    its score ``s >= τ``; thresholds ``τ_i = i / T``, ``i = 0..T`` (default step 0.001).

    Args:
        cams: normalised maps in ``[0, 1]`` at the mask resolution (see :func:`wsolkit.cams.postprocess`).
        masks: ground truth with values 0, 1 and ``ignore_index``.
        num_thresholds: T.
        ignore_index: mask value of pixels left out.

    Returns:
        PxAP in percent (NaN with a warning when there is no foreground pixel).

    Shape:
        - cams: :math:`(B, H, W)`
        - masks: :math:`(B, H, W)`

    Example:
        >>> masks = torch.tensor([[[0, 1], [0, 1]]])
        >>> pxap(torch.tensor([[[0.1, 0.9], [0.2, 0.8]]]), masks)
        100.0
        >>> round(pxap(torch.zeros(1, 2, 2), masks), 6)  # constant map: the all-ones baseline = fg fraction
        50.0
    """
    if num_thresholds < 1:
        raise WSOLValueError(f"`num_thresholds` must be >= 1, got {num_thresholds}")
    fg, bg = binned_counts(cams, masks, num_thresholds, ignore_index)
    return pxap_from_counts(fg, bg)
