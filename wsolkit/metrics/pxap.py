"""Pixel average precision (PxAP) of Choe et al. (2020); survey eqs. 14-16."""

from __future__ import annotations

import torch

from wsolkit._checks import check_ndim, check_same_spatial
from wsolkit.metrics.histogram import _histogram_update, _histogram_validate
from wsolkit.metrics.pixel import _counts_validate, _pxap_compute

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
    check_ndim(masks, "masks", 3, "(B, H, W)")
    check_same_spatial(cams, "cams", masks, "masks")
    t = _histogram_validate(cams, masks, num_thresholds, ignore_index)
    return _histogram_update(cams, masks, t, ignore_index)


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
    _counts_validate(fg_counts, bg_counts)
    return _pxap_compute(fg_counts, bg_counts)


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
    fg, bg = binned_counts(cams, masks, num_thresholds, ignore_index)
    return pxap_from_counts(fg, bg)
