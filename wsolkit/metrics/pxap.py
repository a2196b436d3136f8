"""Pixel average precision (PxAP) of Choe et al. (2020); survey eqs. 14-16 — the one-call functional form.

``pxap`` validates its inputs once, builds the fg / bg histograms once (:mod:`wsolkit.metrics.histogram`) and
computes AP once from them (:mod:`wsolkit.metrics.pixel`). ``binned_counts`` and ``pxap_from_counts`` are deprecated
aliases of :func:`~wsolkit.metrics.localization_histogram` and :func:`~wsolkit.metrics.pxap_from_histogram`.
"""

from __future__ import annotations

import warnings

import torch

from wsolkit._deprecation import warn_deprecated
from wsolkit.metrics.histogram import _histogram_update, _histogram_validate, localization_histogram
from wsolkit.metrics.pixel import _pxap_compute, pxap_from_histogram

__all__ = ["pxap", "binned_counts", "pxap_from_counts"]


def pxap(
    cams: torch.Tensor,
    masks: torch.Tensor,
    num_thresholds: int = 1000,
    ignore_index: int | None = 255,
    labels: torch.Tensor | int | None = None,
    normalize: bool = False,
) -> float:
    """Pixel average precision over a whole set of maps, in percent (survey eqs. 14-16, Choe et al. 2020).

    Counts are pooled over all pixels of all images (not averaged per image). A pixel is positive at ``τ`` when
    its score ``s >= τ``; thresholds ``τ_i = i / T``, ``i = 0..T`` (default step 0.001).

    Args:
        cams: maps in ``[0, 1]`` (e.g. from :func:`wsolkit.cams.postprocess`), or raw maps with ``normalize=True``.
            Maps outside ``[0, 1]`` without ``normalize`` are an error (no silent clamp).
        masks: ground truth with values 0, 1 and ``ignore_index``.
        num_thresholds: T.
        ignore_index: mask value of pixels left out (``None``: masks must be binary).
        labels: target class per image when ``cams`` has ``C > 1`` maps.
        normalize: select → upsample to the mask size → per-image min-max, as the protocol does.

    Returns:
        PxAP in percent (NaN with a warning when there is no foreground pixel).

    Shape:
        - cams: :math:`(B, H, W)`, :math:`(B, h, w)` or :math:`(B, C, h, w)`
        - masks: :math:`(B, H, W)`

    Example:
        >>> masks = torch.tensor([[[0, 1], [0, 1]]])
        >>> pxap(torch.tensor([[[0.1, 0.9], [0.2, 0.8]]]), masks)
        100.0
        >>> round(pxap(torch.zeros(1, 2, 2), masks), 6)  # constant map: the all-ones baseline = fg fraction
        50.0
        >>> pxap(torch.tensor([[[-3.0, 5.0], [1.0, 4.0]]]), masks, normalize=True)
        100.0
    """
    t = _histogram_validate(cams, masks, num_thresholds, ignore_index, labels)
    fg, bg = _histogram_update(cams, masks, t, ignore_index, labels, normalize, check_range=True)
    if ignore_index is not None and int(fg.sum()) == 0 and bool((masks == ignore_index).any()):
        warnings.warn(
            f"PxAP is undefined (NaN): `masks` have no foreground pixel (value 1), only 0 and {ignore_index} = "
            f"`ignore_index` (pixels left out). If your masks are 0/255 images with 255 as the foreground, convert "
            f"them: masks = (masks == 255).to(torch.uint8) (or wsolkit.data.MaskConvention(foreground=255).decode)",
            RuntimeWarning, stacklevel=2)
        return float("nan")
    return _pxap_compute(fg, bg)


def binned_counts(
    cams: torch.Tensor, masks: torch.Tensor, num_thresholds: int = 1000, ignore_index: int | None = 255
) -> tuple[torch.Tensor, torch.Tensor]:
    """Deprecated alias of :func:`wsolkit.metrics.localization_histogram` (removed in the next release).

    Example:
        >>> import warnings; warnings.simplefilter("ignore", DeprecationWarning)
        >>> fg, bg = binned_counts(torch.tensor([[[0.0, 1.0]]]), torch.tensor([[[0, 1]]]), num_thresholds=4)
        >>> fg.tolist(), bg.tolist()
        ([0, 0, 0, 0, 1], [1, 0, 0, 0, 0])
    """
    warn_deprecated("wsolkit.metrics.binned_counts", "wsolkit.metrics.localization_histogram")
    return localization_histogram(cams, masks, num_thresholds, ignore_index)


def pxap_from_counts(fg_counts: torch.Tensor, bg_counts: torch.Tensor) -> float:
    """Deprecated alias of :func:`wsolkit.metrics.pxap_from_histogram` (removed in the next release).

    Example:
        >>> import warnings; warnings.simplefilter("ignore", DeprecationWarning)
        >>> pxap_from_counts(torch.tensor([0, 0, 2]), torch.tensor([2, 0, 0]))
        100.0
    """
    warn_deprecated("wsolkit.metrics.pxap_from_counts", "wsolkit.metrics.pxap_from_histogram")
    return pxap_from_histogram(fg_counts, bg_counts)
