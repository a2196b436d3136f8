"""The histogram core shared by every pixel-level localization metric.

A dataset of CAMs and masks is summarised by two int64 vectors of length ``T + 1``: the number of foreground and
background pixels whose score falls in each threshold bin. With thresholds ``τ_i = i / T`` (``i = 0..T``), a score
``s`` falls in bin ``i`` when ``τ_i <= s < τ_{i+1}``, in bin ``T`` when ``s >= 1`` and in bin ``0`` when ``s < 0``
(so a normalised map's maximum is counted at ``τ = 1``, as in the protocol's code of Choe et al. 2020). Pixels
whose mask equals ``ignore_index`` are not counted. Memory is O(T) whatever the dataset size, the counts are exact
integers, so streaming over any batch split and summing over processes give identical results.

The optional fused front end follows the protocol: select the target class map → upsample to the mask size
(bilinear, ``align_corners=False``) → per-image min-max normalisation (see :mod:`wsolkit.cams`) → histogram.

The bin of a score is ``floor(s · T)`` computed exactly. On the CPU (float32 / float16 / bfloat16 maps, uint8 / bool
masks) it comes from float32 arithmetic plus a correction against precomputed float32 thresholds, in cache-sized
chunks, on a pool of ``torch.get_num_threads()`` workers that pull pixel blocks as they free up (so a core kept busy
by another process slows one worker, not every step); elsewhere from float64 arithmetic (exact for float32 inputs,
corrected against the float64 thresholds ``i / T`` for float64 maps). Counting is a ``bincount`` over
``bin + (T + 1) · mask``. CUDA tensors use the fused Triton kernel of :mod:`wsolkit.metrics._triton` when Triton is
available. Every path gives the same int64 counts.

Maps that are not normalised here (``normalize=False``) must already lie in ``[0, 1]``: other values raise a
:class:`~wsolkit._checks.WSOLValueError` naming the range seen (no silent clamp; ``validate_args=False`` skips the
check and clamps to bins 0 and T).
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F
from torch import nn

from wsolkit import cams as cam_ops
from wsolkit._checks import (
    ShapeError,
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


def _check_unit_range(cams: torch.Tensor) -> None:
    if cams.numel() == 0:
        return
    lo, hi = torch.aminmax(cams)
    lo_f, hi_f = float(lo), float(hi)
    if not (math.isfinite(lo_f) and math.isfinite(hi_f)):
        check_finite(cams, "cams")
    if lo_f < 0 or hi_f > 1:
        raise WSOLValueError(
            f"`cams` must lie in [0, 1] when normalize=False, got values in [{lo_f:.6g}, {hi_f:.6g}]; "
            "pass normalize=True for raw maps (per-image min-max, the protocol) or normalise them first"
        )


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


_CHUNK = 1 << 15  # elements per arithmetic step: one float32 chunk and its int32 bins stay in L2
_BLOCK = 1 << 18  # pixels per task of the CPU thread pool
_FAST_T = 1 << 22  # float32 binning with correction is exact for T <= 2**24; keep a margin
_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = 0
_POOL_LOCK = threading.Lock()


def _pool(n: int) -> ThreadPoolExecutor:
    """A process-wide pool of ``n`` workers whose torch ops run on one thread each (dynamic scheduling)."""
    global _POOL, _POOL_SIZE
    with _POOL_LOCK:
        if _POOL is None or _POOL_SIZE != n:
            if _POOL is not None:
                _POOL.shutdown(wait=False)
            _POOL = ThreadPoolExecutor(n, thread_name_prefix="wsolkit-hist", initializer=torch.set_num_threads,
                                       initargs=(1,))
            _POOL_SIZE = n
        return _POOL


def _run_tasks(fn, tasks: list) -> list:
    """``[fn(t) for t in tasks]`` on ``torch.get_num_threads()`` workers (tasks are pulled as workers free up, so a
    core kept busy by another process slows one worker instead of stalling every step)."""
    n = min(torch.get_num_threads(), len(tasks))
    if n <= 1 or threading.current_thread().name.startswith("wsolkit-hist"):
        return [fn(t) for t in tasks]
    return list(_pool(n).map(fn, tasks))


def _thresholds32(t: int) -> torch.Tensor:
    """``th[i]``: the smallest float32 ``>= i / T``; for a float32 s, ``s >= i / T`` iff ``s >= th[i]``."""
    exact = torch.arange(t + 2, dtype=torch.float64) / t
    th = exact.float()
    return torch.where(th.double() < exact, torch.nextafter(th, torch.tensor(float("inf"))), th)


def _fast_cpu(cams: torch.Tensor, masks: torch.Tensor, t: int, ignore_index: int | None) -> bool:
    return (
        cams.device.type == "cpu"
        and cams.dtype in (torch.float32, torch.float16, torch.bfloat16)
        and t <= _FAST_T
        and masks.dtype in (torch.uint8, torch.bool)
        and (ignore_index is None or 2 <= ignore_index <= 255)
    )


def _cpu_histogram(
    cams: torch.Tensor, masks: torch.Tensor, t: int, ignore_index: int | None, normalize: bool, check_range: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The CPU core: (upsample → min / max per image) then (normalise → bin → count) in pixel blocks on a pool.

    Bins are ``floor(s · T)`` from float32 arithmetic, corrected where the float32 product rounded up onto an
    integer ``k`` (the only case where it can differ from the exact floor): ``s < th[k]`` → ``k − 1``.
    """
    b, hh, ww = masks.shape
    if cams.dtype != torch.float32:
        cams = cams.float()
    cams = cams.contiguous()
    masks = masks.contiguous()
    if masks.dtype == torch.bool:
        masks = masks.view(torch.uint8)
    resize = tuple(cams.shape[-2:]) != (hh, ww)
    need_minmax = normalize or check_range
    check_range = check_range and not normalize

    def prepare(i: int) -> tuple[torch.Tensor, float, float, bool]:
        x = cams[i]
        if x.numel() == 0:
            return x, 0.0, 0.0, False
        lo_f = hi_f = 0.0
        if need_minmax:  # of the map before upsampling: the range check, the constant-map rule
            lo0, hi0 = torch.aminmax(x)
            lo_f, hi_f = float(lo0), float(hi0)
        const = normalize and resize and lo_f == hi_f
        if resize:
            x = F.interpolate(x[None, None], size=(hh, ww), mode="bilinear", align_corners=False)[0, 0]
            if normalize and not const:
                lo1, hi1 = torch.aminmax(x)
                lo_f, hi_f = float(lo1), float(hi1)
        return x, lo_f, hi_f, need_minmax

    if resize or need_minmax:
        prepared = _run_tasks(prepare, list(range(b)))
    else:
        prepared = [(cams[i], 0.0, 0.0, False) for i in range(b)]
    if need_minmax and not all(math.isfinite(p[1]) and math.isfinite(p[2]) for p in prepared if p[3]):
        check_finite(cams, "cams")
    if check_range and prepared:
        lows = [p[1] for p in prepared if p[3]]
        highs = [p[2] for p in prepared if p[3]]
        if lows and (min(lows) < 0 or max(highs) > 1):
            raise WSOLValueError(
                f"`cams` must lie in [0, 1] when normalize=False, got values in [{min(lows):.6g}, "
                f"{max(highs):.6g}]; pass normalize=True for raw maps (per-image min-max, the protocol) or "
                "normalise them first"
            )
    th = _thresholds32(t)
    n_codes = 3
    rows = max(1, _BLOCK // max(1, ww))
    tasks = [(i, r, min(hh, r + rows)) for i in range(b) for r in range(0, hh, rows)]

    def count(task: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        i, r0, r1 = task
        x, lo, hi, has = prepared[i]
        v_all = x[r0:r1].reshape(-1)
        m_all = masks[i, r0:r1].reshape(-1)
        counts = torch.zeros(n_codes * (t + 1), dtype=torch.int64)
        mvals = torch.bincount(m_all, minlength=256)
        scale = None
        if normalize and has:
            # identical arithmetic to wsolkit.cams.normalize: (s - min) / (max - min); a flat map becomes zeros
            lo32 = torch.tensor(lo, dtype=torch.float32)
            hi32 = torch.tensor(hi, dtype=torch.float32)
            rng = hi32 - lo32
            flat = not bool(rng > 4 * torch.finfo(torch.float32).eps * torch.maximum(lo32.abs(), hi32.abs()))
            scale = None if flat else rng
        mc = m_all.clamp(max=2)  # 0 background, 1 foreground, 2 ignored (other values are caught from `mvals`)
        for a in range(0, v_all.numel(), _CHUNK):
            v = v_all[a : a + _CHUNK]
            if normalize:
                v = (v - lo32).div_(scale) if scale is not None else torch.zeros_like(v)
            elif not check_range:
                v = v.clamp(-1.0, 2.0)
            f = v * t
            idx = f.to(torch.int32)
            if not normalize and not check_range:
                idx.clamp_(0, t)
            # the float32 product can only be wrong where it landed on an integer k (rounded up across it)
            whole = f.frac_() == 0  # f is not needed any more: its fraction in place, one pass
            if bool(whole.any()):
                j = whole.nonzero().squeeze(1)
                k = idx[j]
                idx[j] = k - (v[j] < th[k.clamp(0, t + 1).long()]).to(torch.int32)
            counts += torch.bincount(torch.add(idx, mc[a : a + _CHUNK], alpha=t + 1), minlength=n_codes * (t + 1))
        return counts, mvals

    results = _run_tasks(count, tasks)
    counts = torch.zeros(n_codes * (t + 1), dtype=torch.int64)
    mvals = torch.zeros(256, dtype=torch.int64)
    for c, mv in results:
        counts += c
        mvals += mv
    allowed = {0, 1} | ({ignore_index} if ignore_index is not None else set())
    bad = [v for v in torch.nonzero(mvals).flatten().tolist() if v not in allowed]
    if bad:
        allowed_s = "{0, 1" + (f", {ignore_index}" if ignore_index is not None else "") + "}"
        raise WSOLValueError(f"`masks` must only contain values in {allowed_s}, found {bad[:5]}")
    counts = counts.view(n_codes, t + 1)
    return counts[1].clone(), counts[0].clone()


_CHUNK_PIXELS = 1 << 18


def _histogram_update(
    cams: torch.Tensor,
    masks: torch.Tensor,
    num_thresholds: int = 1000,
    ignore_index: int | None = 255,
    labels: torch.Tensor | int | None = None,
    normalize: bool = False,
    backend: str = "auto",
    check_range: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Histogram of one batch. Returns ``(fg, bg)`` int64 ``(T + 1,)`` on ``cams.device``.

    Only the values of uint8 / bool CPU masks (from the counts) and, with ``check_range``, the ``[0, 1]`` range of
    maps that are not normalised are checked here; call :func:`_histogram_validate` for everything else.
    """
    t = num_thresholds
    cams = cams.detach()  # counts have no gradient; maps straight from a method's forward may carry a graph
    if cams.ndim == 4:
        cams = cam_ops.select(cams, labels)
    if not normalize and cams.shape[-2:] != masks.shape[-2:]:
        raise ShapeError(f"`cams` {tuple(cams.shape)} and `masks` {tuple(masks.shape)} differ in size: maps must "
                         f"have the masks' (H, W), or pass normalize=True to upsample them (the protocol)")
    masks = masks.to(cams.device)
    if backend in ("auto", "cpu") and _fast_cpu(cams, masks, t, ignore_index):
        return _cpu_histogram(cams, masks, t, ignore_index, normalize, check_range)
    if check_range:
        check_finite(cams, "cams")
        if not normalize:
            _check_unit_range(cams)
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
    return _histogram_update(cams, masks, t, ignore_index, labels, normalize, check_range=validate_args)


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
