"""Fused Triton kernel for the fg / bg threshold histograms (CUDA; CPU-testable with ``TRITON_INTERPRET=1``).

One program handles a block of pixels of one image: it reads the map and the mask once, applies the per-image
min-max normalisation with precomputed ``(min, max)`` (correctly rounded division, the same arithmetic as
:func:`wsolkit.cams.normalize`), bins ``floor(s · T)`` in float64 (exact for float32 scores), routes ignored pixels
to a dummy bin, accumulates a block-local histogram (``tl.histogram``) and adds it to the global one with one atomic
add per bin. For large ``T`` it falls back to per-pixel atomic adds. The result equals the torch path bit for bit.
"""

from __future__ import annotations

import os

import torch

__all__ = ["available", "histogram"]

try:  # pragma: no cover - depends on the installation
    import triton
    import triton.language as tl

    _HAS_TRITON = True
except Exception:  # noqa: BLE001 - any import failure disables the kernel
    _HAS_TRITON = False

_LOCAL_MAX_BINS = 4096


def available() -> bool:
    """Triton importable and a CUDA device present (or the interpreter enabled with ``TRITON_INTERPRET=1``)."""
    if not _HAS_TRITON:
        return False
    return torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET", "0") == "1"


if _HAS_TRITON:

    @triton.jit
    def _hist_kernel(
        s_ptr,
        m_ptr,
        lo_ptr,
        hi_ptr,
        out_ptr,
        hw,
        t,
        ignore,
        HAS_NORM: tl.constexpr,
        HAS_IGNORE: tl.constexpr,
        LOCAL: tl.constexpr,
        NBINS: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        img = tl.program_id(0)
        blk = tl.program_id(1)
        offs = blk * BLOCK + tl.arange(0, BLOCK)
        valid = offs < hw
        base = img.to(tl.int64) * hw
        s = tl.load(s_ptr + base + offs, mask=valid, other=0.0)
        m = tl.load(m_ptr + base + offs, mask=valid, other=0).to(tl.int32)
        if HAS_NORM:
            lo = tl.load(lo_ptr + img)
            hi = tl.load(hi_ptr + img)
            rng = hi - lo
            safe = tl.where(rng > 0, rng, 1.0)
            x = tl.math.div_rn(s - lo, safe)
            s = tl.where(rng > 0, x, 0.0)
        tf = t.to(tl.float64)
        idx = tl.floor(s.to(tl.float64) * tf)
        idx = tl.minimum(tl.maximum(idx, 0.0), tf).to(tl.int32)
        dummy = 2 * (t + 1)
        key = idx + m * (t + 1)
        drop = ~valid
        if HAS_IGNORE:
            drop = drop | (m == ignore)
        key = tl.where(drop, dummy, key)
        if LOCAL:
            h = tl.histogram(key, NBINS)
            bins = tl.arange(0, NBINS)
            tl.atomic_add(out_ptr + bins, h.to(tl.int64), mask=(bins < dummy) & (h > 0))
        else:
            tl.atomic_add(out_ptr + key, tl.full([BLOCK], 1, tl.int64), mask=~drop)


def _next_pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()


def histogram(
    scores: torch.Tensor,
    masks: torch.Tensor,
    num_thresholds: int,
    ignore_index: int | None,
    lo: torch.Tensor | None,
    hi: torch.Tensor | None,
    block: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused histogram of float32 maps ``(B, H, W)`` (already selected / upsampled) and masks ``(B, H, W)``.

    ``lo`` / ``hi`` are the per-image min / max for the normalisation (``None``: maps used as they are).
    Returns ``(fg, bg)`` int64 ``(T + 1,)``. Inputs are assumed validated.
    """
    if not _HAS_TRITON:
        raise RuntimeError("Triton is not installed")
    t = num_thresholds
    b = scores.shape[0]
    hw = scores.shape[-1] * scores.shape[-2]
    s = scores.contiguous().float()
    m = masks.contiguous()
    if m.dtype == torch.bool:
        m = m.to(torch.uint8)
    has_ignore = ignore_index is not None
    if has_ignore and (m.dtype == torch.uint8 and not 0 <= ignore_index <= 255):
        has_ignore = False  # an out-of-range ignore value cannot occur in uint8 masks
    if m.dtype not in (torch.uint8, torch.int32):
        m = m.to(torch.int32)
    nbins = _next_pow2(2 * (t + 1) + 1)
    local = nbins <= _LOCAL_MAX_BINS
    out = torch.zeros(max(nbins, 2 * (t + 1) + 1), dtype=torch.int64, device=s.device)
    if b and hw:
        has_norm = lo is not None
        lo_t = lo.contiguous().float() if has_norm else s
        hi_t = hi.contiguous().float() if has_norm else s
        grid = (b, triton.cdiv(hw, block))
        _hist_kernel[grid](
            s, m, lo_t, hi_t, out, hw, t, int(ignore_index) if has_ignore else 0,
            HAS_NORM=has_norm, HAS_IGNORE=has_ignore, LOCAL=local, NBINS=nbins, BLOCK=block,
        )
    return out[t + 1 : 2 * (t + 1)].clone(), out[: t + 1].clone()
