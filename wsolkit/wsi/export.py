"""Exports: pyramidal TIFF (tifffile; opens in QuPath, ASAP, OpenSlide, tiffslide), PNG overlay, ``.npy``.

:func:`write_pyramidal_tiff` writes the generic tiled-TIFF pyramid OpenSlide and tiffslide both read: one tiled
page per level in the main IFD chain (reduced levels marked ``subfiletype=1``), halving each time, with the
resolution tags in pixels per centimetre so readers report the mpp. It also writes the test slides of the suite.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError, check_choice, check_int, check_number
from wsolkit.wsi.readers import read_level

__all__ = ["write_pyramidal_tiff", "colorize", "save_overlay_png", "save_npy", "save_heatmap_tiff", "thumbnail"]

_CMAPS = {"jet": cv2.COLORMAP_JET, "inferno": cv2.COLORMAP_INFERNO, "viridis": cv2.COLORMAP_VIRIDIS,
          "turbo": cv2.COLORMAP_TURBO}


def write_pyramidal_tiff(path: str | os.PathLike, image: np.ndarray, *, num_levels: int = 3, tile: int = 256,
                         compression: str | None = "jpeg", mpp: float | None = None, quality: int = 90) -> Path:
    """Write a tiled pyramidal TIFF of a uint8 ``(H, W)`` or ``(H, W, 3)`` image.

    Args:
        path: output file.
        image: level 0 (grey or RGB uint8).
        num_levels: levels, each half the previous (``INTER_AREA``).
        tile: tile side (a multiple of 16).
        compression: ``"jpeg"``, ``"deflate"``, ``"zlib"`` or ``None``.
        mpp: microns per pixel of level 0, written as the resolution tags (``None``: not stated).
        quality: JPEG quality.

    Example:
        >>> import tempfile
        >>> from wsolkit.wsi import TiffSlideReader
        >>> p = write_pyramidal_tiff(tempfile.mkdtemp() + "/s.tif", np.zeros((64, 96, 3), np.uint8), tile=32,
        ...                          mpp=0.5)
        >>> r = TiffSlideReader(p)
        >>> r.level_dimensions, r.mpp
        ([(96, 64), (48, 32), (24, 16)], 0.5)
    """
    import tifffile

    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise WSOLTypeError(f"`image` must be uint8, got {a.dtype}")
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)):
        raise ShapeError(f"`image` must have shape (H, W) or (H, W, 3), got {a.shape}")
    check_int(num_levels, "num_levels", 1)
    _check_tile(tile)
    if compression is not None:
        check_choice(compression, "compression", ("jpeg", "deflate", "zlib"))
    if mpp is not None:
        check_number(mpp, "mpp", 0.0, low_inclusive=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    kw: dict[str, Any] = _page_options(tile, a.ndim == 3)
    if compression == "jpeg":
        kw["compression"] = "jpeg"
        kw["compressionargs"] = {"level": int(quality)}
    elif compression is not None:
        kw["compression"] = "zlib"
    big = a.nbytes > 2**31
    with tifffile.TiffWriter(path, bigtiff=big) as tw:
        level = a
        for i in range(num_levels):
            if i:
                size = (max(1, level.shape[1] // 2), max(1, level.shape[0] // 2))
                level = cv2.resize(level, size, interpolation=cv2.INTER_AREA)
            tw.write(level, subfiletype=1 if i else 0, **_resolution(mpp, i), **kw)
    return path


def _check_tile(tile: int) -> None:
    check_int(tile, "tile", 16)
    if tile % 16:
        raise WSOLValueError(f"`tile` must be a multiple of 16 (TIFF), got {tile}")


def _page_options(tile: int, rgb: bool) -> dict[str, Any]:
    return {"tile": (tile, tile), "photometric": "rgb" if rgb else "minisblack", "metadata": None}


def _resolution(mpp: float | None, level: int) -> dict[str, Any]:
    """Resolution tags of pyramid level ``level`` (pixels per centimetre), none when the mpp is unknown."""
    return {} if mpp is None else {"resolution": (1e4 / (mpp * 2**level),) * 2, "resolutionunit": "CENTIMETER"}


def colorize(values: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """``[0, 1]`` values ``(H, W)`` → RGB uint8 ``(H, W, 3)`` with an OpenCV colormap.

    Example:
        >>> colorize(np.array([[0.0, 1.0]]), "jet").shape
        (1, 2, 3)
    """
    check_choice(cmap, "cmap", tuple(_CMAPS))
    v = np.clip(np.nan_to_num(np.asarray(values, np.float64)), 0, 1)
    u8 = np.rint(v * 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(u8, _CMAPS[cmap]), cv2.COLOR_BGR2RGB)


def thumbnail(reader: Any, max_size: int = 1024) -> tuple[np.ndarray, float]:
    """The slide read whole at the finest level whose longer side is ``<= max_size`` (else the coarsest, read in row
    bands and shrunk to ``max_size``), as RGB, and its level-0 pixels per thumbnail pixel."""
    dims = list(reader.level_dimensions)
    ok = [i for i, d in enumerate(dims) if max(d) <= max_size]
    lv = min(ok) if ok else len(dims) - 1
    return read_level(reader, lv, max_size)


# heatmaps larger than this (pixels) are exported in row bands, never whole in memory (64 MB of float32)
_IN_MEMORY_PIXELS = 2**24


def _source(heatmap: Any) -> Any:
    """The sliceable ``(H, W)`` array behind a heatmap (a :class:`~wsolkit.wsi.Heatmap`'s numpy or zarr map)."""
    src = getattr(heatmap, "map", heatmap)
    if not (hasattr(src, "shape") and hasattr(src, "__getitem__")):
        src = np.asarray(src)
    if len(src.shape) != 2:
        raise ShapeError(f"`heatmap` must be (H, W), got {tuple(src.shape)}")
    return src


def _band_rows(width: int) -> int:
    """Rows per band so that a float32 band stays near ``_IN_MEMORY_PIXELS / 4`` pixels."""
    return max(1, (_IN_MEMORY_PIXELS // 4) // max(width, 1))


def _rows(src: Any, y0: int, y1: int) -> np.ndarray:
    return np.asarray(src[y0:y1], np.float32)


def _binned_mean(src: Any, out_h: int, out_w: int) -> np.ndarray:
    """Box-filter ``src`` to ``(out_h, out_w)`` reading it in row bands: output pixel ``(i, j)`` is the mean of the
    source pixels with ``floor(y · out_h / H) = i`` and ``floor(x · out_w / W) = j`` (NaN counts as 0)."""
    h, w = src.shape
    ybin = (np.arange(h) * out_h) // h
    xstart = np.searchsorted((np.arange(w) * out_w) // w, np.arange(out_w))
    xcount = np.diff(np.append(xstart, w))
    sums = np.zeros((out_h, out_w), np.float64)
    band = _band_rows(w)
    for y0 in range(0, h, band):
        v = np.nan_to_num(_rows(src, y0, min(y0 + band, h)))
        cols = np.add.reduceat(v, xstart, axis=1, dtype=np.float64)
        ys = ybin[y0 : y0 + len(v)]
        starts = np.flatnonzero(np.r_[True, ys[1:] != ys[:-1]])
        sums[ys[starts]] += np.add.reduceat(cols, starts, axis=0)
    ycount = np.bincount(ybin, minlength=out_h)
    return (sums / (ycount[:, None] * xcount[None, :])).astype(np.float32)


def save_overlay_png(path: str | os.PathLike, heatmap: Any, reader: Any, *, alpha: float = 0.5, cmap: str = "jet",
                     max_size: int = 1024) -> Path:
    """Write the heatmap blended over the slide's thumbnail (pixels no tile covered stay as the thumbnail).

    A heatmap larger than the thumbnail and than ``2**24`` pixels (e.g. streamed to zarr) is box-filtered to the
    thumbnail's size in row bands, so memory stays bounded; a smaller one is resized whole (bilinear).
    """
    check_number(alpha, "alpha", 0.0, 1.0)
    rgb, _ = thumbnail(reader, max_size)
    src = _source(heatmap)
    th, tw = rgb.shape[:2]
    if src.shape[0] * src.shape[1] <= _IN_MEMORY_PIXELS:
        h = cv2.resize(_rows(src, 0, src.shape[0]), (tw, th), interpolation=cv2.INTER_LINEAR)
    else:
        h = _binned_mean(src, min(th, src.shape[0]), min(tw, src.shape[1]))
        if h.shape != (th, tw):
            h = cv2.resize(h, (tw, th), interpolation=cv2.INTER_LINEAR)
    color = colorize(h, cmap).astype(np.float32)
    out = rgb.astype(np.float32)
    on = h > 0
    out[on] = (1 - alpha) * out[on] + alpha * color[on]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(np.rint(out).astype(np.uint8), cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {str(path)!r}")
    return path


def save_npy(path: str | os.PathLike, heatmap: Any) -> Path:
    """Write the heatmap as a float32 ``.npy``, copied in row bands (a zarr heatmap is never whole in memory)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    src = _source(heatmap)
    h, w = src.shape
    if h * w <= _IN_MEMORY_PIXELS:
        np.save(path, _rows(src, 0, h))
        return path
    with open(path, "wb") as fh:  # plain writes: a memmap's dirty pages would count in the resident set
        np.lib.format.write_array_header_2_0(fh, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                                                  "fortran_order": False, "shape": (h, w)})
        band = _band_rows(w)
        for y0 in range(0, h, band):
            fh.write(np.ascontiguousarray(_rows(src, y0, min(y0 + band, h))).tobytes())
    return path


def _to_uint8(v: np.ndarray, cmap: str | None) -> np.ndarray:
    v = np.clip(np.nan_to_num(v.astype(np.float64)), 0, 1)
    return colorize(v, cmap) if cmap else np.rint(v * 255).astype(np.uint8)


def _halve(a: np.ndarray) -> np.ndarray:
    """2 × 2 block means of a uint8 band (a trailing odd row or column dropped), rounded half up."""
    h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
    b = a[:h, :w].astype(np.uint16)
    s = b[0::2, 0::2] + b[1::2, 0::2] + b[0::2, 1::2] + b[1::2, 1::2]
    return ((s + 2) // 4).astype(np.uint8)


def save_heatmap_tiff(path: str | os.PathLike, heatmap: Any, *, cmap: str | None = None, tile: int = 256,
                      mpp: float | None = None) -> Path:
    """The heatmap as a pyramidal TIFF: grey uint8 (``round(255 v)``) or an RGB colormap.

    Up to ``2**24`` pixels the image is built in memory and written by :func:`write_pyramidal_tiff` (levels by
    ``INTER_AREA``). A larger heatmap (e.g. streamed to zarr) is written tile by tile in row bands of ``tile``
    rows: each reduced level is the 2 × 2 block mean of the previous one (a trailing odd row or column dropped),
    kept in a temporary file next to ``path`` while the level above is written, so memory does not grow with the
    slide.
    """
    import tifffile

    src = _source(heatmap)
    h, w = src.shape
    _check_tile(tile)
    n = max(1, min(6, int(np.log2(max(1, min(h, w) // 64))) + 1))
    if h * w <= _IN_MEMORY_PIXELS:
        return write_pyramidal_tiff(path, _to_uint8(_rows(src, 0, h), cmap), num_levels=n, tile=tile,
                                    compression="zlib", mpp=mpp)
    if mpp is not None:
        check_number(mpp, "mpp", 0.0, low_inclusive=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = (3,) if cmap else ()
    samples = 3 if cmap else 1
    tmp_dir = path.parent / f".{path.name}.levels"
    tmp_dir.mkdir(exist_ok=True)
    try:
        kw = {**_page_options(tile, bool(cmap)), "compression": "zlib", "dtype": np.uint8}
        dims = [(h >> i, w >> i) for i in range(n)]
        with tifffile.TiffWriter(path, bigtiff=h * w * samples > 2**31) as tw:
            for i in range(n):
                hi, wi = dims[i]
                row_bytes = wi * samples

                def tiles(i: int = i, hi: int = hi, wi: int = wi, row_bytes: int = row_bytes):
                    # level i read in bands of `tile` rows (level 0 from the map, level i > 0 from the temporary
                    # file the level above wrote); its 2 x 2 block means appended to the next level's file
                    src_fh = open(tmp_dir / f"{i}.raw", "rb") if i else None
                    dst_fh = open(tmp_dir / f"{i + 1}.raw", "wb") if i + 1 < n else None
                    try:
                        for y0 in range(0, hi, tile):
                            rows = min(y0 + tile, hi) - y0
                            if src_fh is not None:  # uint8 rows of a reduced level
                                raw = src_fh.read(rows * row_bytes)
                                band = np.frombuffer(raw, np.uint8).reshape((rows, wi) + channels)
                            else:  # level 0: converted tile by tile into a uint8 band (float64 colour maps stay small)
                                band = np.empty((rows, wi) + channels, np.uint8)
                                for x0 in range(0, wi, tile):
                                    vals = np.asarray(src[y0 : y0 + rows, x0 : x0 + tile], np.float32)
                                    band[:, x0 : x0 + tile] = _to_uint8(vals, cmap)
                            if dst_fh is not None:  # the next level's rows, written before the band's tiles are
                                half = _halve(band)
                                keep = min(len(half), dims[i + 1][0] - y0 // 2)
                                dst_fh.write(np.ascontiguousarray(half[:keep, : dims[i + 1][1]]).tobytes())
                            for x0 in range(0, wi, tile):
                                t = np.zeros((tile, tile) + channels, np.uint8)
                                part = band[:, x0 : x0 + tile]
                                t[: part.shape[0], : part.shape[1]] = part
                                yield t
                    finally:
                        for fh in (src_fh, dst_fh):
                            if fh is not None:
                                fh.close()

                gen = tiles()
                tw.write(gen, shape=(hi, wi) + channels, subfiletype=1 if i else 0, **_resolution(mpp, i), **kw)
                gen.close()  # the writer stops at the last tile: close the files (flushing the next level) now
    finally:
        for f in tmp_dir.glob("*.raw"):
            f.unlink()
        tmp_dir.rmdir()
    return path
