"""The histogram core shared by every pixel-level localization metric.

A dataset of CAMs and masks is summarised by two int64 vectors of length ``T + 1``: the number of foreground and
background pixels whose score falls in each threshold bin. With thresholds ``τ_i = i / T`` (``i = 0..T``), a score
``s`` falls in bin ``i`` when ``τ_i <= s < τ_{i+1}``, in bin ``T`` when ``s >= 1`` and in bin ``0`` when ``s < 0``
(so a normalised map's maximum is counted at ``τ = 1``, as in the protocol's code of Choe et al. 2020). Pixels
whose mask equals ``ignore_index`` are not counted. Memory is O(T) whatever the dataset size, the counts are exact
integers, so streaming over any batch split and summing over processes give identical results.

The optional fused front end follows the protocol: select the target class map → upsample to the mask size
(bilinear, ``align_corners=False``) → per-image min-max normalisation (see :mod:`wsolkit.cams`) → histogram.

The bin of a score is ``floor(s · T)`` computed exactly: for float32/float16/bfloat16 maps the float64 product
``s · T`` is exact (for ``T < 2**29``), for float64 maps the result is corrected against the float64 thresholds
``i / T``. Counting is one vectorised ``bincount`` over ``bin + (T + 1) · mask`` — no Python loop over images.
CUDA tensors use the fused Triton kernel of :mod:`wsolkit.metrics._triton` when Triton is available.
"""

from __future__ import annotations

import torch
from torch import nn

from wsolkit import cams as cam_ops
from wsolkit._checks import (
    WSOLTypeError,
    WSOLValueError,
    check_finite,
    check_floating,
    check_int,
    check_mask_values,
    check_ndim,
    check_same_batch,
    check_same_spatial,
)

__all__ = ["localization_histogram", "LocalizationHistogram", "bin_index"]

_MAX_T = 2**28


def _histogram_validate(
    cams: torch.Tensor,
    masks: torch.Tensor,
    num_thresholds: int,
    ignore_index: int | None,
    labels: torch.Tensor | int | None = None,
) -> int:
    """Check the inputs of :func:`localization_histogram`; return ``T``."""
    t = check_int(num_thresholds, "num_thresholds", low=1, high=_MAX_T)
    check_ndim(cams, "cams", (3, 4), "(B, h, w) or (B, C, h, w)")
    check_floating(cams, "cams")
    check_ndim(masks, "masks", 3, "(B, H, W)")
    if masks.is_floating_point() or masks.is_complex():
        raise WSOLTypeError(f"`masks` must be an integer or bool tensor, got dtype {masks.dtype}")
    check_same_batch(cams, "cams", masks, "masks")
    check_finite(cams, "cams")
    if not _fast_masks(masks, ignore_index, t):
        check_mask_values(masks, "masks", ignore_index)
    if cams.ndim == 4 and cams.shape[1] > 1 and labels is None:
        raise WSOLTypeError(
            f"`labels` is required to select among C={cams.shape[1]} class maps of `cams` {tuple(cams.shape)}"
        )
    return t


def bin_index(scores: torch.Tensor, num_thresholds: int) -> torch.Tensor:
    """Threshold bin of each score: ``i`` such that ``i / T <= s < (i + 1) / T``, clamped to ``[0, T]``.

    Args:
        scores: floating point scores (any shape).
        num_thresholds: T.

    Returns:
        int64 bin indices, same shape as ``scores``.

    Example:
        >>> bin_index(torch.tensor([0.0, 0.0015, 0.999, 1.0, 1.5, -0.2]), 1000).tolist()
        [0, 1, 999, 1000, 1000, 0]
    """
    return _bin_index(scores, num_thresholds).long()


def _bin_index(scores: torch.Tensor, t: int, unit: bool = False) -> torch.Tensor:
    """Bins as int32 (int64 for float64 scores); ``unit=True`` promises float32 scores already in ``[0, 1]``."""
    if scores.dtype == torch.float64:
        s = scores
        idx = torch.floor(s * t)
        # s * T may round; correct against the float64 thresholds i / T (exact comparison rule)
        idx -= (s < idx / t).double()
        idx += (s >= (idx + 1) / t).double()
        return idx.clamp_(0, t).long()
    # float32 (float16 / bfloat16 are widened exactly): the float64 product s * T is exact, and the conversion to an
    # integer truncates, i.e. floors for s >= 0; negative scores and scores >= 1 are clamped to bins 0 and T. The
    # clamp of s to [-1, 2] first keeps every bin and avoids integer overflow.
    if unit:  # min-max normalised maps: 0 <= s <= 1, so 0 <= s * T <= T
        return scores.double().mul_(t).to(torch.int32)
    x = scores.float().clamp(-1.0, 2.0)
    return x.double().mul_(t).to(torch.int32).clamp_(0, t)


def _fast_masks(masks: torch.Tensor, ignore_index: int | None, t: int) -> bool:
    """uint8 / bool masks on the CPU: values are checked from the counts of the single bincount."""
    return (
        t <= 16383
        and masks.device.type == "cpu"
        and masks.dtype in (torch.uint8, torch.bool)
        and (ignore_index is None or 0 <= ignore_index <= 255)
    )


def _prepare_scores(
    cams: torch.Tensor,
    masks: torch.Tensor,
    labels: torch.Tensor | int | None,
    normalize: bool,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Select → upsample → (min, max) of the protocol. Returns maps at mask size and per-image min / max or None."""
    if cams.ndim == 4:
        cams = cam_ops.select(cams, labels)
    if cams.dtype in (torch.float16, torch.bfloat16):
        cams = cams.float()
    const = None
    if cams.shape[-2:] != masks.shape[-2:]:
        if normalize and cams.shape[0] and cams[0].numel():
            lo_r, hi_r = torch.aminmax(cams.flatten(1), dim=1)
            const = lo_r == hi_r
        cams = cam_ops.upsample(cams, tuple(masks.shape[-2:]))
    check_same_spatial(cams, "cams", masks, "masks")
    if not normalize or cams.shape[0] == 0 or cams[0].numel() == 0:
        return cams, None, None
    lo, hi = torch.aminmax(cams.flatten(1), dim=1)
    if const is not None:
        # a constant low-resolution map is constant after (exact) bilinear interpolation: it becomes zeros even
        # where float rounding of the interpolation weights leaves ulp-level ripples
        hi = torch.where(const, lo, hi)
    return cams, lo, hi


def _normalize_with(cams: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    # identical arithmetic to wsolkit.cams.normalize: (s - min) / (max - min), constant map -> 0
    rng = hi - lo
    flat = rng > 4 * torch.finfo(cams.dtype).eps * torch.maximum(lo.abs(), hi.abs())
    safe = torch.where(flat, rng, torch.ones_like(rng))
    out = cams - lo[:, None, None]
    out.div_(safe[:, None, None])
    if not bool(flat.all()):
        out[~flat] = 0
    return out


_CHUNK_PIXELS = 1 << 18


def _histogram_update(
    cams: torch.Tensor,
    masks: torch.Tensor,
    num_thresholds: int = 1000,
    ignore_index: int | None = 255,
    labels: torch.Tensor | int | None = None,
    normalize: bool = False,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Histogram of one batch. Returns ``(fg, bg)`` int64 ``(T + 1,)`` on ``cams.device``.

    Only the values of uint8 / bool CPU masks are checked here (from the counts); call
    :func:`_histogram_validate` for everything else. On the CPU the batch is processed in blocks of images of about
    ``2**18`` pixels so that the intermediate maps stay in cache (each block is fully vectorised).
    """
    t = num_thresholds
    if cams.ndim == 4:
        cams = cam_ops.select(cams, labels)
    masks = masks.to(cams.device)
    use_triton = backend == "triton" or (backend == "auto" and cams.is_cuda)
    if use_triton and cams.dtype != torch.float64:
        from wsolkit.metrics import _triton

        if _triton.available():
            scores, lo, hi = _prepare_scores(cams, masks, None, normalize)
            return _triton.histogram(scores, masks, t, ignore_index, lo, hi)
        if backend == "triton":
            raise WSOLValueError("`backend`='triton' was requested but Triton is not available")
    fast = _fast_masks(masks, ignore_index, t)
    n_codes = 256 if fast else 3
    itype = torch.int64 if n_codes * (t + 1) >= 2**31 or cams.dtype == torch.float64 else torch.int32
    counts = torch.zeros(n_codes * (t + 1), dtype=torch.int64, device=cams.device)
    b = cams.shape[0]
    hw = masks.shape[-1] * masks.shape[-2]
    step = b if cams.is_cuda else max(1, _CHUNK_PIXELS // max(1, hw))
    for start in range(0, b, step):
        m = masks[start : start + step]
        scores, lo, hi = _prepare_scores(cams[start : start + step], m, None, normalize)
        if lo is not None:
            scores = _normalize_with(scores, lo, hi)
        idx = _bin_index(scores, t, unit=lo is not None and scores.dtype == torch.float32).to(itype)
        if not fast and ignore_index is not None:
            m = torch.where(m == ignore_index, torch.full_like(m, 2), m)
        # key = bin + (T + 1) * mask code: background, foreground and ignored pixels in one bincount (the valid
        # keys stay in the first 2 (T + 1) counters, which keeps the scatter in cache)
        key = idx.add_(m.to(itype).mul_(t + 1)).flatten()
        counts += torch.bincount(key, minlength=n_codes * (t + 1))
    counts = counts.view(n_codes, t + 1)
    if fast:
        # the counts of byte values other than 0, 1 and ignore_index reveal invalid masks without a separate pass
        allowed = {0, 1} | ({ignore_index} if ignore_index is not None else set())
        bad = [v for v in torch.nonzero(counts.sum(1)).flatten().tolist() if v not in allowed]
        if bad:
            allowed_s = "{0, 1" + (f", {ignore_index}" if ignore_index is not None else "") + "}"
            raise WSOLValueError(f"`masks` must only contain values in {allowed_s}, found {bad[:5]}")
    return counts[1].clone(), counts[0].clone()


def localization_histogram(
    cams: torch.Tensor,
    masks: torch.Tensor,
    num_thresholds: int = 1000,
    ignore_index: int | None = 255,
    labels: torch.Tensor | int | None = None,
    normalize: bool = False,
    validate_args: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Foreground / background pixel counts per threshold bin, with the protocol's optional fused front end.

    Maps with a class dimension are reduced to the map of ``labels`` (:func:`wsolkit.cams.select`); maps at a lower
    resolution than the masks are upsampled bilinearly; with ``normalize=True`` each map is min-max normalised
    (a constant map becomes zeros; a map constant before upsampling too, even if interpolation rounding leaves
    ulp-level ripples). Scores are then binned with ``τ_i = i / T``: bin ``i`` when
    ``τ_i <= s < τ_{i+1}``, bin ``T`` when ``s >= 1``, bin 0 when ``s < 0``.

    Args:
        cams: raw or normalised maps.
        masks: ground truth with values 0, 1 and ``ignore_index``.
        num_thresholds: T (``>= 1``).
        ignore_index: mask value of pixels left out (``None``: masks must be binary).
        labels: target class per image when ``cams`` has ``C > 1`` maps.
        normalize: per-image min-max normalisation after upsampling.
        validate_args: check the inputs (set ``False`` on hot paths).

    Returns:
        ``(fg, bg)``: two int64 vectors of length ``T + 1`` on the device of ``cams``.

    Shape:
        - cams: :math:`(B, h, w)`, :math:`(B, H, W)` or :math:`(B, C, h, w)`
        - masks: :math:`(B, H, W)`
        - labels: :math:`(B,)` or int

    Example:
        >>> raw = torch.tensor([[[1.0, 3.0], [5.0, 2.0]]])
        >>> fg, bg = localization_histogram(raw, torch.tensor([[[0, 1], [1, 255]]]), 4, normalize=True)
        >>> fg.tolist(), bg.tolist()
        ([0, 0, 1, 0, 1], [1, 0, 0, 0, 0])
    """
    t = _histogram_validate(cams, masks, num_thresholds, ignore_index, labels) if validate_args else num_thresholds
    return _histogram_update(cams, masks, t, ignore_index, labels, normalize)


class LocalizationHistogram(nn.Module):
    """Module form of :func:`localization_histogram` (holds ``T``, ``ignore_index`` and ``normalize``).

    Example:
        >>> hist = LocalizationHistogram(num_thresholds=10, normalize=True)
        >>> fg, bg = hist(torch.rand(2, 7, 7), torch.randint(0, 2, (2, 32, 32)))
        >>> int(fg.sum() + bg.sum())
        2048
    """

    def __init__(self, num_thresholds: int = 1000, ignore_index: int | None = 255, normalize: bool = False) -> None:
        super().__init__()
        self.num_thresholds = check_int(num_thresholds, "num_thresholds", low=1, high=_MAX_T)
        self.ignore_index = ignore_index
        self.normalize = bool(normalize)

    def forward(
        self, cams: torch.Tensor, masks: torch.Tensor, labels: torch.Tensor | int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return localization_histogram(cams, masks, self.num_thresholds, self.ignore_index, labels, self.normalize)

    def extra_repr(self) -> str:
        return f"num_thresholds={self.num_thresholds}, ignore_index={self.ignore_index}, normalize={self.normalize}"
