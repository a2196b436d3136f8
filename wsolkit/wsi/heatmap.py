"""Whole-slide CAM heatmaps from any method that returns :class:`~wsolkit.WSOLOutput`.

The slide is cut into overlapping tiles (:class:`~wsolkit.wsi.tiling.TileGrid`), read by DataLoader workers while the
model runs; the target class's **raw** map of every tile is resized to the tile's footprint, weighted by a window
that ramps linearly across the overlaps, and accumulated: ``H = Σ w_t · M_t / Σ w_t``. Only a band of tile rows is
held in memory: rows no later tile touches are written out (to a numpy array, or a zarr array with ``out=``), so
memory does not grow with the slide. The stitched map is normalised **once per slide** (min-max over the covered
pixels; a constant map gives zeros, as in the protocol) or by a fixed calibration ``(lo, hi)`` shared by slides —
never per tile, so tiles stay comparable. Pixels no tile covered (no tissue) are 0 after normalisation.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError, check_int
from wsolkit._modules import num_classes_of
from wsolkit.inference import localize
from wsolkit.wsi.readers import open_slide, resolve_level
from wsolkit.wsi.tiling import TileDataset, TileGrid
from wsolkit.wsi.tissue import NoTissueWarning, slide_tissue

__all__ = ["heatmap", "Heatmap", "resolve_preprocess", "blend_window"]


@dataclass
class Heatmap:
    """A stitched slide heatmap.

    Attributes:
        map: ``(H, W)`` float32 (numpy or zarr array) at the working resolution divided by ``downsample``;
            values in ``[0, 1]`` when normalised, raw (``NaN`` where no tile was read) otherwise.
        logits: ``(N, K)`` logits of the tiles read.
        tiles: ``(N, 4)`` int64 level-0 boxes ``(x, y, width, height)`` of those tiles.
        grid: the tile grid.
        downsample: working pixels per heatmap pixel.
        factor: level-0 pixels per heatmap pixel.
        value_range: ``(lo, hi)`` of the raw stitched map over the covered pixels (the normalisation used).
        target: the class whose maps were stitched.
        mpp: microns per heatmap pixel (``None`` if the slide states none).
    """

    map: Any
    logits: torch.Tensor
    tiles: torch.Tensor
    grid: TileGrid
    downsample: int
    factor: float
    value_range: tuple[float, float]
    target: int | None
    mpp: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        a = np.asarray(self.map[...])
        return a.astype(dtype) if dtype is not None else a

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.map.shape)


def blend_window(size: int, overlap: int) -> np.ndarray:
    """1-D blending weights: a linear ramp ``(i + 0.5) / overlap`` over each overlap, 1 inside (never 0).

    Example:
        >>> blend_window(6, 2).tolist()
        [0.25, 0.75, 1.0, 1.0, 0.75, 0.25]
    """
    i = np.arange(size, dtype=np.float64)
    if overlap <= 0:
        return np.ones(size)
    return np.minimum(1.0, np.minimum((i + 0.5) / overlap, (size - i - 0.5) / overlap))


def resolve_preprocess(model: nn.Module, preprocess: Callable | None = None,
                       mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> Callable:
    """The tile transform: ``uint8 (B, 3, H, W)`` → model input.

    In order: ``preprocess`` (a callable on float tiles in ``[0, 1]``); ``mean`` / ``std``; else
    :func:`wsolkit.data.preprocessing` of the model — the rule (and fallback) training, evaluation and prediction
    use, so tiles reach the model as the training images did.

    Example:
        >>> f = resolve_preprocess(nn.Identity(), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
        >>> f(torch.full((1, 3, 1, 1), 255, dtype=torch.uint8)).flatten().tolist()
        [1.0, 1.0, 1.0]
    """
    from wsolkit.data.preprocessing import Preprocessing, preprocessing  # data/camelyon imports wsi: no cycle

    if preprocess is not None:
        if not callable(preprocess):
            raise WSOLTypeError(f"`preprocess` must be callable, got {type(preprocess).__name__}")
        return lambda x: preprocess(x.float().div_(255.0))
    if (mean is None) != (std is None):
        raise WSOLValueError("pass both `mean` and `std` or neither")
    if mean is not None:
        prep = Preprocessing(mean=mean, std=std, source="mean/std arguments")
        if len(prep.mean) != 3:
            raise WSOLValueError(f"`mean` / `std` must be 3 numbers (std > 0), got {mean} / {std}")
    else:
        prep = preprocessing(model)
    return lambda x: prep(x.float().div_(255.0))


class _Stitcher:
    """Row-band accumulator: tiles arrive in row-major order; finished rows are written to ``out``."""

    def __init__(self, grid: TileGrid, ds: int, out: Any) -> None:
        self.tb, self.sb = grid.tile // ds, grid.stride // ds
        self.w, self.h = out.shape[1], out.shape[0]
        self.out = out
        self.num = np.zeros((self.tb, self.w), np.float64)
        self.den = np.zeros((self.tb, self.w), np.float64)
        ob = grid.overlap // ds
        self.win = np.outer(blend_window(self.tb, ob), blend_window(self.tb, ob))
        self.row, self.rows = 0, grid.rows
        self.lo, self.hi = math.inf, -math.inf

    def _flush(self, n: int) -> None:
        y0 = self.row * self.sb
        n = min(n, self.h - y0)
        if n <= 0:
            return
        with np.errstate(invalid="ignore", divide="ignore"):
            v = np.where(self.den[:n] > 0, self.num[:n] / self.den[:n], np.nan)
        cov = self.den[:n] > 0
        if cov.any():
            self.lo = min(self.lo, float(v[cov].min()))
            self.hi = max(self.hi, float(v[cov].max()))
        self.out[y0 : y0 + n] = v.astype(np.float32)

    def advance_to(self, row: int) -> None:
        while self.row < row:
            self._flush(self.sb)
            self.num[: self.tb - self.sb] = self.num[self.sb :].copy()
            self.den[: self.tb - self.sb] = self.den[self.sb :].copy()
            self.num[self.tb - self.sb :] = 0
            self.den[self.tb - self.sb :] = 0
            self.row += 1

    def add(self, row: int, col: int, m: np.ndarray) -> None:
        self.advance_to(row)
        x0 = col * self.sb
        bw, bh = min(self.tb, self.w - x0), min(self.tb, self.h - row * self.sb)
        win = self.win[:bh, :bw]
        self.num[:bh, x0 : x0 + bw] += win * m[:bh, :bw]
        self.den[:bh, x0 : x0 + bw] += win

    def finish(self) -> None:
        self.advance_to(self.rows - 1)
        self._flush(self.tb)


def _normalize_out(out: Any, lo: float, hi: float, clip: bool, chunk: int) -> None:
    for y in range(0, out.shape[0], chunk):
        v = np.asarray(out[y : y + chunk], np.float64)
        cov = np.isfinite(v)
        n = (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)
        if clip:
            n = np.clip(n, 0.0, 1.0)
        out[y : y + chunk] = np.where(cov, n, 0.0).astype(np.float32)


def _make_out(out: Any, shape: tuple[int, int], chunk: tuple[int, int]) -> Any:
    if out is None:
        return np.zeros(shape, np.float32)
    if hasattr(out, "shape") and hasattr(out, "__setitem__"):
        if tuple(out.shape) != shape:
            raise ShapeError(f"`out` must have shape {shape}, got {tuple(out.shape)}")
        return out
    import zarr  # a path: a zarr array on disk

    return zarr.open_array(str(out), mode="w", shape=shape, chunks=chunk, dtype="float32", fill_value=0.0)


def heatmap(
    slide: Any,
    method: nn.Module,
    *,
    level: int | None = None,
    mpp: float | None = None,
    tile: int = 512,
    overlap: int = 64,
    downsample: int = 1,
    batch_size: int = 16,
    num_workers: int = 2,
    tissue: Any = True,
    min_tissue: float = 0.05,
    target: int | None = None,
    normalize: str | tuple[float, float] | None = "slide",
    preprocess: Callable | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    device: torch.device | str | None = None,
    out: Any = None,
    backend: str = "tiffslide",
) -> Heatmap:
    """Tile, infer, stitch and normalise the CAM heatmap of one slide.

    Args:
        slide: a path (opened with ``backend``) or a :class:`~wsolkit.wsi.SlideReader`.
        method: any module with ``forward(x, labels=None) -> WSOLOutput`` (:func:`wsolkit.create_method` or your
            own); it runs through :func:`wsolkit.localize` (eval mode, grad mode, autocast).
        level: pyramid level to read (default 0), or
        mpp: microns per pixel to read at (picks the level and the resize, :func:`~wsolkit.wsi.resolve_level`).
        tile: tile side in working pixels.
        overlap: overlap of neighbouring tiles (blended linearly).
        downsample: heatmap pixels are ``downsample`` working pixels (must divide ``tile`` and ``tile - overlap``).
        batch_size: tiles per forward.
        num_workers: DataLoader workers reading tiles while the model runs (0: read in this process).
        tissue: ``True`` (Otsu tissue mask at a low level), ``False`` (every tile), or a
            :class:`~wsolkit.wsi.tissue.SlideTissue`.
        min_tissue: tiles with a smaller tissue fraction are skipped.
        target: class whose map is stitched, asked through :func:`wsolkit.localize` (explainers explain it);
            default: class 1 of a binary model, required otherwise.
        normalize: ``"slide"`` (min-max over the slide), ``(lo, hi)`` (a fixed calibration, clipped to
            ``[0, 1]``) or ``None`` (raw values, NaN where no tile was read).
        preprocess, mean, std: tile transform (see :func:`resolve_preprocess`; default:
            :func:`wsolkit.data.preprocessing` of the model, as in training).
        device: where the model runs (default: where its parameters are).
        out: ``None`` (numpy array in memory), a zarr path (streamed to disk, bounded memory) or an array-like
            of the heatmap's shape.
        backend: reader backend for paths (``"tiffslide"`` or ``"openslide"``).

    Returns:
        a :class:`Heatmap`.

    Example:
        >>> import wsolkit
        >>> from wsolkit.wsi import InMemorySlide
        >>> s = InMemorySlide.from_array(np.random.default_rng(0).integers(0, 255, (96, 128, 3), np.uint8), 2)
        >>> m = wsolkit.create_method("gap", 2, backbone="smallcnn")
        >>> h = heatmap(s, m, tile=64, overlap=16, tissue=False, num_workers=0)
        >>> h.shape, tuple(h.logits.shape), round(float(np.asarray(h).max()), 4)
        ((96, 128), (6, 2), 1.0)
    """
    if not isinstance(method, nn.Module):
        raise WSOLTypeError(f"`method` must be an nn.Module returning WSOLOutput, got {type(method).__name__}")
    reader = open_slide(slide, backend)
    ds = check_int(downsample, "downsample", 1)
    check_int(batch_size, "batch_size", 1)
    check_int(num_workers, "num_workers", 0)
    res = resolve_level(reader, level, mpp)
    if isinstance(tissue, bool):
        tissue = slide_tissue(reader, max_size=2048) if tissue else None
    grid = TileGrid.build(reader, res, tile, overlap, tissue, min_tissue)
    no_tissue = tissue is not None and not np.asarray(tissue.mask).any()
    if no_tissue:
        warnings.warn(f"no tissue found on the slide {reader!r} (blank glass?): no tile is run and the heatmap is "
                      f"empty (zeros)", NoTissueWarning, stacklevel=2)
    if tile % ds or grid.stride % ds:
        raise WSOLValueError(f"`downsample`={ds} must divide `tile`={tile} and `tile - overlap`={grid.stride}")
    if not (normalize is None or normalize == "slide" or (isinstance(normalize, tuple) and len(normalize) == 2)):
        raise WSOLValueError(f"`normalize` must be 'slide', a (lo, hi) tuple or None, got {normalize!r}")
    shape = (math.ceil(grid.size[1] / ds), math.ceil(grid.size[0] / ds))
    out = _make_out(out, shape, (max(grid.stride // ds, 1), min(shape[1], 4096)))
    if device is None:
        p = next(iter(method.parameters()), None)
        device = p.device if p is not None else torch.device("cpu")
    device = torch.device(device)
    transform = resolve_preprocess(method, preprocess, mean, std)
    loader = DataLoader(TileDataset(reader, grid), batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=device.type == "cuda", persistent_workers=False)
    st = _Stitcher(grid, ds, out)
    logits_all: list[torch.Tensor] = []
    tb = grid.tile // ds
    if target is None:  # class 1 of a binary model; a model that does not declare K says it on the first batch
        target = 1 if num_classes_of(method) == 2 else None
    for x, idx in loader:
        x = transform(x.to(device, non_blocking=True))
        # raw maps of the target class at the tile's footprint: the slide is normalised once, after stitching
        loc = localize(method, x, "pred" if target is None else int(target), size=(tb, tb), normalize=False)
        if target is None:
            if loc.logits.shape[1] != 2:
                raise WSOLValueError(f"`target` is required for a {loc.logits.shape[1]}-class model (the class "
                                     f"whose map is stitched); the default is class 1 of a binary model")
            target = 1
            loc = localize(method, x, target, size=(tb, tb), normalize=False)
        maps = loc.maps.cpu().double().numpy()
        for j, i in enumerate(idx.tolist()):
            r, c = grid.tiles[i]
            st.add(int(r), int(c), maps[j])
        logits_all.append(loc.logits.cpu())
    st.finish()
    lo, hi = (st.lo, st.hi) if math.isfinite(st.lo) else (0.0, 0.0)
    if normalize == "slide":
        _normalize_out(out, lo, hi, False, max(tb, 256))
    elif isinstance(normalize, tuple):
        lo, hi = float(normalize[0]), float(normalize[1])
        if not hi > lo:
            raise WSOLValueError(f"`normalize`=(lo, hi) needs hi > lo, got {normalize}")
        _normalize_out(out, lo, hi, True, max(tb, 256))
    f = res.factor
    boxes = [(round(x * f), round(y * f), round(tile * f), round(tile * f))
             for x, y in (grid.origin(i) for i in range(len(grid.tiles)))]
    k = logits_all[0].shape[1] if logits_all else 0
    return Heatmap(
        map=out,
        logits=torch.cat(logits_all) if logits_all else torch.zeros(0, k),
        tiles=torch.tensor(boxes, dtype=torch.int64).reshape(-1, 4),
        grid=grid,
        downsample=ds,
        factor=f * ds,
        value_range=(lo, hi),
        target=target,
        mpp=None if res.mpp is None else res.mpp * ds,
        meta={"level": res.level, "scale": res.scale, "tissue_threshold": getattr(tissue, "threshold", None),
              "no_tissue": no_tissue},
    )
