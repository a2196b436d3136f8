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
from wsolkit.wsi.readers import read_rgb

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
    check_int(tile, "tile", 16)
    if tile % 16:
        raise WSOLValueError(f"`tile` must be a multiple of 16 (TIFF), got {tile}")
    if compression is not None:
        check_choice(compression, "compression", ("jpeg", "deflate", "zlib"))
    if mpp is not None:
        check_number(mpp, "mpp", 0.0, low_inclusive=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    kw: dict[str, Any] = {"tile": (tile, tile), "photometric": "rgb" if a.ndim == 3 else "minisblack",
                          "metadata": None}
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
            res = {} if mpp is None else {"resolution": (1e4 / (mpp * 2**i),) * 2, "resolutionunit": "CENTIMETER"}
            tw.write(level, subfiletype=1 if i else 0, **res, **kw)
    return path


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
    """The slide read whole at the finest level whose longer side is ``<= max_size`` (else the coarsest), as RGB,
    and its level-0 pixels per thumbnail pixel."""
    dims = list(reader.level_dimensions)
    ok = [i for i, d in enumerate(dims) if max(d) <= max_size]
    lv = min(ok) if ok else len(dims) - 1
    rgb = read_rgb(reader, (0, 0), lv, dims[lv])
    return rgb, float(reader.level_downsamples[lv])


def save_overlay_png(path: str | os.PathLike, heatmap: Any, reader: Any, *, alpha: float = 0.5, cmap: str = "jet",
                     max_size: int = 1024) -> Path:
    """Write the heatmap blended over the slide's thumbnail (pixels no tile covered stay as the thumbnail)."""
    check_number(alpha, "alpha", 0.0, 1.0)
    rgb, _ = thumbnail(reader, max_size)
    h = np.asarray(heatmap, np.float32)
    h = cv2.resize(h, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
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
    """Write the heatmap as a float32 ``.npy``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.asarray(heatmap, np.float32))
    return path


def save_heatmap_tiff(path: str | os.PathLike, heatmap: Any, *, cmap: str | None = None, tile: int = 256,
                      mpp: float | None = None) -> Path:
    """The heatmap as a pyramidal TIFF: grey uint8 (``round(255 v)``) or an RGB colormap."""
    v = np.clip(np.nan_to_num(np.asarray(heatmap, np.float64)), 0, 1)
    img = colorize(v, cmap) if cmap else np.rint(v * 255).astype(np.uint8)
    n = max(1, min(6, int(np.log2(max(1, min(img.shape[:2]) // 64))) + 1))
    return write_pyramidal_tiff(path, img, num_levels=n, tile=tile, compression="zlib", mpp=mpp)

