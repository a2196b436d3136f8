"""Slide readers: one protocol, three implementations, and the level / mpp resolution.

A reader has the OpenSlide interface reduced to three members (``level_dimensions``, ``level_downsamples``,
``read_region``) plus an optional ``mpp`` (microns per pixel at level 0, ``None`` when the file does not say).
``openslide.OpenSlide`` and ``tiffslide.TiffSlide`` objects satisfy it as they are; the classes here add
bounds handling (pixels outside a level are transparent), typed errors and pickling (DataLoader workers reopen
the file):

- :class:`TiffSlideReader` — the default (pure Python: ``tiffslide`` over ``tifffile`` / ``imagecodecs`` / ``zarr``);
- :class:`OpenSlideReader` — OpenSlide (``openslide-python`` + ``openslide-bin``);
- :class:`InMemorySlide` — a numpy pyramid, for tests, examples and small images.

:func:`open_slide` picks one; :func:`resolve_level` turns ``level=`` or ``mpp=`` into the level to read and the
resize factor.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError, check_choice, check_int, check_number
from wsolkit.wsi.errors import CorruptTileError, MissingLevelError, UnknownMPPError, UnsupportedSlideError

__all__ = [
    "SlideReader",
    "InMemorySlide",
    "TiffSlideReader",
    "OpenSlideReader",
    "open_slide",
    "read_rgb",
    "read_level",
    "to_rgb",
    "slide_mpp",
    "Resolution",
    "resolve_level",
    "BACKENDS",
]

#: reader backends of :func:`open_slide`
BACKENDS = ("tiffslide", "openslide")


@runtime_checkable
class SlideReader(Protocol):
    """What wsolkit needs from a slide.

    ``level_dimensions[l]`` is ``(width, height)`` of level ``l``; ``level_downsamples[l]`` its downsample factor
    relative to level 0; ``read_region(location, level, size)`` returns the ``size = (width, height)`` region of
    ``level`` whose top-left corner is ``location = (x, y)`` in **level-0** coordinates, as an ``(h, w, 3)`` or
    ``(h, w, 4)`` uint8 RGB(A) array or anything ``np.asarray`` turns into one. Fully transparent pixels (outside
    the scanned area) are white background for wsolkit.
    """

    @property
    def level_dimensions(self) -> Sequence[tuple[int, int]]: ...

    @property
    def level_downsamples(self) -> Sequence[float]: ...

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> Any: ...


def _check_level(reader: Any, level: Any) -> int:
    n = len(reader.level_dimensions)
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)):
        raise WSOLTypeError(f"`level` must be an int, got {type(level).__name__}")
    if not 0 <= int(level) < n:
        raise MissingLevelError(f"`level`={level} does not exist: the slide has levels 0..{n - 1} "
                                f"(dimensions {list(reader.level_dimensions)})")
    return int(level)


def _paste(location: tuple[int, int], level: int, size: tuple[int, int], downsample: float, dims: tuple[int, int],
           read: Any) -> np.ndarray:
    """RGBA ``(h, w, 4)``: ``read(x, y, w, h)`` (level pixels, inside the level) pasted, transparent elsewhere."""
    w, h = int(size[0]), int(size[1])
    if w < 0 or h < 0:
        raise WSOLValueError(f"`size` must be non-negative, got {tuple(size)}")
    x0, y0 = int(math.floor(location[0] / downsample)), int(math.floor(location[1] / downsample))
    out = np.zeros((h, w, 4), np.uint8)
    xs, ys = max(x0, 0), max(y0, 0)
    xe, ye = min(x0 + w, dims[0]), min(y0 + h, dims[1])
    if xe > xs and ye > ys:
        a = np.asarray(read(xs, ys, xe - xs, ye - ys))
        if a.ndim == 2:
            a = a[:, :, None]
        if a.shape[2] < 3:  # grey (+ alpha): replicate to RGB
            a = np.concatenate([np.repeat(a[:, :, :1], 3, axis=2), a[:, :, 1:]], axis=2)
        out[ys - y0 : ye - y0, xs - x0 : xe - x0, : a.shape[2]] = a[:, :, :4]
        if a.shape[2] == 3:
            out[ys - y0 : ye - y0, xs - x0 : xe - x0, 3] = 255
    return out


def _block_reduce(a: np.ndarray, factor: int, mode: str) -> np.ndarray:
    h, w = a.shape[0] // factor, a.shape[1] // factor
    a = a[: h * factor, : w * factor]
    if mode == "nearest":
        return a[::factor, ::factor].copy()
    blocks = a.reshape(h, factor, w, factor, *a.shape[2:])
    if mode == "max":
        return blocks.max(axis=(1, 3))
    n = factor * factor
    return ((blocks.sum(axis=(1, 3), dtype=np.uint32) + n // 2) // n).astype(a.dtype)  # mean, rounded half up


class InMemorySlide:
    """A slide pyramid held as numpy arrays, with the :class:`SlideReader` interface.

    Args:
        levels: one uint8 array per level, ``(H_l, W_l, 3)`` RGB, ``(H_l, W_l, 4)`` RGBA or ``(H_l, W_l)`` (a
            mask, read back as grey RGBA), largest first.
        mpp: microns per pixel at level 0 (``None``: unknown).

    Shape:
        ``read_region(location, level, (w, h))`` -> ``(h, w, 4)`` uint8 RGBA; pixels outside the level are
        transparent black, as in OpenSlide.

    Example:
        >>> slide = InMemorySlide.from_array(np.full((64, 96, 3), 255, np.uint8), num_levels=3)
        >>> slide.level_dimensions, slide.level_downsamples
        ([(96, 64), (48, 32), (24, 16)], [1.0, 2.0, 4.0])
        >>> slide.read_region((90, 0), 0, (8, 2))[0, :, 3].tolist()
        [255, 255, 255, 255, 255, 255, 0, 0]
    """

    def __init__(self, levels: Sequence[np.ndarray], mpp: float | None = None) -> None:
        if not isinstance(levels, Sequence) or len(levels) == 0:
            raise WSOLTypeError(f"`levels` must be a non-empty sequence of arrays, got {type(levels).__name__}")
        out = []
        for i, a in enumerate(levels):
            if not isinstance(a, np.ndarray):
                raise WSOLTypeError(f"`levels[{i}]` must be a numpy array, got {type(a).__name__}")
            if a.dtype != np.uint8:
                raise WSOLTypeError(f"`levels[{i}]` must have dtype uint8, got {a.dtype}")
            if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))) or a.shape[0] == 0 or a.shape[1] == 0:
                raise ShapeError(f"`levels[{i}]` must have shape (H, W), (H, W, 3) or (H, W, 4), got {a.shape}")
            if a.ndim == 2:
                a = np.repeat(a[:, :, None], 3, axis=2)
            if a.shape[2] == 3:
                a = np.concatenate([a, np.full(a.shape[:2] + (1,), 255, np.uint8)], axis=2)
            out.append(np.ascontiguousarray(a))
        self._levels = out
        self.mpp = None if mpp is None else check_number(mpp, "mpp", 0.0, low_inclusive=False)

    @classmethod
    def from_array(cls, image: np.ndarray, num_levels: int = 3, factor: int = 2, mode: str = "area",
                   mpp: float | None = None) -> InMemorySlide:
        """Build a pyramid from the level-0 array by block reduction.

        Args:
            image: level-0 uint8 array ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)``.
            num_levels: number of levels (level ``l`` is downsampled by ``factor ** l``).
            factor: integer downsample factor between consecutive levels.
            mode: ``"area"`` (block mean, rounded; for images), ``"max"`` (conservative, for masks) or
                ``"nearest"``.
            mpp: microns per pixel at level 0.
        """
        check_int(num_levels, "num_levels", 1)
        check_int(factor, "factor", 2)
        check_choice(mode, "mode", ("area", "max", "nearest"))
        if not isinstance(image, np.ndarray):
            raise WSOLTypeError(f"`image` must be a numpy array, got {type(image).__name__}")
        levels = [image]
        for _ in range(1, num_levels):
            nxt = _block_reduce(levels[-1], factor, mode)
            if nxt.shape[0] == 0 or nxt.shape[1] == 0:
                raise WSOLValueError(
                    f"`num_levels`={num_levels} is too many for an image of shape {image.shape} with factor {factor}"
                )
            levels.append(nxt)
        return cls(levels, mpp)

    @property
    def level_count(self) -> int:
        return len(self._levels)

    @property
    def level_dimensions(self) -> list[tuple[int, int]]:
        return [(a.shape[1], a.shape[0]) for a in self._levels]

    @property
    def level_downsamples(self) -> list[float]:
        w0, h0 = self.level_dimensions[0]
        return [(w0 / w + h0 / h) / 2.0 for w, h in self.level_dimensions]

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        level = _check_level(self, level)
        a = self._levels[level]
        return _paste(location, level, size, self.level_downsamples[level], self.level_dimensions[level],
                      lambda x, y, w, h: a[y : y + h, x : x + w])

    def close(self) -> None:
        """Nothing to release (present for symmetry with the file readers)."""

    def __repr__(self) -> str:
        return f"InMemorySlide(level_dimensions={self.level_dimensions}, mpp={self.mpp})"


class _FileReader:
    """Shared shell of the file readers: a lazy handle per process, bounds, typed errors.

    The handle is keyed by the process id: a DataLoader worker started by ``fork`` inherits the parent's reader
    object, and with it a file descriptor whose offset is shared with the parent and the other workers; reading
    through it interleaves ``seek`` / ``read`` across processes and returns another tile's bytes (a JPEG with two
    SOF markers, or silently wrong pixels). A reader used in a process other than the one that opened its handle
    therefore opens its own (the inherited one is left to the parent). A pickled copy (``spawn`` workers) has no
    handle and opens one on first read.
    """

    _backend = ""

    def __init__(self, path: str | os.PathLike) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"slide file not found: {str(path)!r}")
        self.path = path
        self._handle: Any = None
        self._pid = os.getpid()
        h = self._slide
        self._dims = [tuple(int(v) for v in d) for d in h.level_dimensions]
        self._downs = [float(d) for d in h.level_downsamples]
        self.mpp = self._read_mpp(h.properties)

    def _open(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def _slide(self) -> Any:
        pid = os.getpid()
        if self._handle is None or self._pid != pid:
            # an inherited handle is dropped, not closed: its descriptor (and offset) is shared with the parent
            self._handle, self._pid = self._open(), pid
        return self._handle

    def _read_mpp(self, props: Any) -> float | None:
        vals = []
        for axis in ("x", "y"):
            v = props.get(f"{self._backend}.mpp-{axis}")
            try:
                v = float(v) if v is not None else None
            except (TypeError, ValueError):
                v = None
            if v is None or not math.isfinite(v) or v <= 0:
                return None
            vals.append(v)
        return (vals[0] + vals[1]) / 2.0

    @property
    def level_dimensions(self) -> list[tuple[int, int]]:
        return list(self._dims)

    @property
    def level_downsamples(self) -> list[float]:
        return list(self._downs)

    def _read(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        level = _check_level(self, level)
        d = self._downs[level]

        def read(x: int, y: int, w: int, h: int) -> np.ndarray:
            loc = (int(round(x * d)), int(round(y * d)))
            try:
                return self._read(loc, level, (w, h))
            except (MemoryError, KeyboardInterrupt):  # pragma: no cover
                raise
            except Exception as e:  # noqa: BLE001 - any decoder failure is a corrupt tile for the user
                raise CorruptTileError(
                    f"cannot decode the region at level-0 location {tuple(location)}, level {level}, size "
                    f"{tuple(size)} of {str(self.path)!r}: {type(e).__name__}: {e}"
                ) from e

        return _paste(location, level, size, d, self._dims[level], read)

    def close(self) -> None:
        """Close the file handle (it is reopened on the next read)."""
        if self._handle is not None and self._pid == os.getpid():
            self._handle.close()
        self._handle = None

    def __enter__(self) -> _FileReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_handle"] = None
        return state

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, level_dimensions={self._dims}, mpp={self.mpp})"


class _ZarrTaskNoise(logging.Filter):
    """Drops asyncio's reports of zarr's own read tasks (``Task exception was never retrieved`` / ``Task was destroyed
    but it is pending``): when one tile of a region fails to decode, zarr's concurrent reads of the other tiles are
    abandoned and asyncio logs each of them (hundreds of stderr lines) around the one :class:`CorruptTileError`
    wsolkit raises. Other asyncio records pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - never fail logging
            return True
        noise = msg.startswith(("Task exception was never retrieved", "Task was destroyed but it is pending"))
        return not (noise and "zarr" in msg)


_ZARR_FILTER = _ZarrTaskNoise()


def _settle_zarr_tasks(timeout: float = 10.0) -> None:
    """After a failed read, cancel and await zarr's abandoned tile reads on its I/O loop, so that none is left
    pending (reported at exit as ``coroutine ... was never awaited`` / ``Event loop is closed``) or unretrieved."""
    import asyncio

    try:
        from zarr.core import sync as zsync  # zarr >= 3: one background event loop
        loop = zsync.loop[0]
    except (ImportError, AttributeError, IndexError, TypeError):
        return
    if loop is None or not loop.is_running() or loop.is_closed():
        return

    async def drain() -> None:
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    try:
        asyncio.run_coroutine_threadsafe(drain(), loop).result(timeout)
    except Exception:  # noqa: BLE001 - best effort: the read error is what matters
        pass


def _quiet_zarr_tasks() -> None:
    log = logging.getLogger("asyncio")
    if _ZARR_FILTER not in log.filters:
        log.addFilter(_ZARR_FILTER)


class TiffSlideReader(_FileReader):
    """A :class:`SlideReader` over a file read with tiffslide (TIFF, SVS, NDPI, ... — the default backend).

    Needs the optional extra ``wsi`` (``tiffslide``, ``tifffile``, ``imagecodecs``, ``zarr``), imported when a
    reader is created, not with wsolkit. Picklable: a copy (e.g. in a DataLoader worker) reopens the file. Opening
    one adds a filter to the ``asyncio`` logger that drops only the reports of zarr's abandoned read tasks after a
    tile fails to decode (see :class:`CorruptTileError`).

    Args:
        path: the slide file.

    Shape:
        ``read_region(location, level, (w, h))`` -> ``(h, w, 4)`` uint8 RGBA (transparent outside the level).

    Example:
        >>> try:
        ...     TiffSlideReader("missing.tif")
        ... except FileNotFoundError as e:
        ...     print(type(e).__name__)
        FileNotFoundError
    """

    _backend = "tiffslide"

    def _open(self) -> Any:
        try:
            import tiffslide
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError('reading slide files needs tiffslide: `pip install "wsolkit[wsi]"`') from e
        _quiet_zarr_tasks()
        try:
            return tiffslide.TiffSlide(str(self.path))
        except Exception as e:  # noqa: BLE001
            if "not a tiff" in str(e).lower() or type(e).__name__ == "UnsupportedFormatError":
                raise UnsupportedSlideError(f"{str(self.path)!r} is not a format tiffslide reads: {e}") from e
            raise CorruptTileError(f"cannot open {str(self.path)!r} as a slide: {type(e).__name__}: {e}") from e

    def _read(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        try:
            return self._slide.read_region(location, level, size, as_array=True)
        except Exception:
            _settle_zarr_tasks()
            raise


class OpenSlideReader(_FileReader):
    """A :class:`SlideReader` over a file opened with OpenSlide (``.tif``, ``.svs``, ``.ndpi``, ``.mrxs``, ...).

    Needs ``openslide-python`` and ``openslide-bin`` (the native library), imported when a reader is created.

    Args:
        path: the slide file.

    Shape:
        ``read_region(location, level, (w, h))`` -> ``(h, w, 4)`` uint8 RGBA numpy array.

    Example:
        >>> try:
        ...     OpenSlideReader("missing.tif")
        ... except (ImportError, FileNotFoundError) as e:
        ...     print(type(e).__name__)
        FileNotFoundError
    """

    _backend = "openslide"

    def _open(self) -> Any:
        try:
            import openslide
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError(
                "reading slide files with OpenSlide needs `pip install openslide-python openslide-bin`; the default "
                'backend "tiffslide" needs no native library'
            ) from e
        try:
            return openslide.OpenSlide(str(self.path))
        except Exception as e:  # noqa: BLE001
            unsupported = getattr(openslide, "OpenSlideUnsupportedFormatError", None)
            if unsupported is not None and isinstance(e, unsupported):
                raise UnsupportedSlideError(f"{str(self.path)!r} is not a format OpenSlide reads: {e}") from e
            raise CorruptTileError(f"cannot open {str(self.path)!r} as a slide: {type(e).__name__}: {e}") from e

    def _read(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        return np.asarray(self._slide.read_region(location, level, size))


def open_slide(slide: Any, backend: str = "tiffslide") -> Any:
    """A reader for ``slide``: a path is opened with ``backend``; a reader is returned as it is.

    Example:
        >>> open_slide(InMemorySlide.from_array(np.zeros((8, 8), np.uint8), 1)).level_dimensions
        [(8, 8)]
    """
    check_choice(backend, "backend", BACKENDS)
    if isinstance(slide, (str, os.PathLike)):
        return TiffSlideReader(slide) if backend == "tiffslide" else OpenSlideReader(slide)
    if not isinstance(slide, SlideReader):
        raise WSOLTypeError(f"`slide` must be a path or a SlideReader (level_dimensions, level_downsamples, "
                            f"read_region), got {type(slide).__name__}")
    return slide


def to_rgb(region: Any, name: str = "region") -> np.ndarray:
    """``(h, w, 3)`` uint8 RGB from an RGB(A) region; fully transparent pixels become white.

    Example:
        >>> to_rgb(np.zeros((1, 2, 4), np.uint8))[0, 0].tolist()
        [255, 255, 255]
    """
    a = np.asarray(region)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ShapeError(f"`{name}` must be an (h, w, 3) or (h, w, 4) uint8 RGB(A) array, got {a.shape} {a.dtype}")
    if a.shape[2] == 4:
        rgb = a[:, :, :3].copy()
        rgb[a[:, :, 3] == 0] = 255
        return rgb
    return a


def read_rgb(reader: Any, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
    """``read_region`` as ``(h, w, 3)`` uint8 RGB with white outside the slide."""
    return to_rgb(reader.read_region(location, level, size))


def read_level(reader: Any, level: int, max_size: int | None = None) -> tuple[np.ndarray, float]:
    """Level ``level`` read whole as RGB, shrunk (``INTER_AREA``) to a longer side of ``max_size`` when larger,
    reading row bands of about 16 MB so memory stays bounded; returns the image and its level-0 pixels per pixel.

    Example:
        >>> s = InMemorySlide.from_array(np.zeros((300, 400, 3), np.uint8), 1)
        >>> rgb, f = read_level(s, 0, max_size=100)
        >>> rgb.shape, f
        ((75, 100, 3), 4.0)
    """
    import cv2

    level = _check_level(reader, level)
    w, h = (int(v) for v in reader.level_dimensions[level])
    d = float(reader.level_downsamples[level])
    if max_size is None or max(w, h) <= max_size:
        return read_rgb(reader, (0, 0), level, (w, h)), d
    check_int(max_size, "max_size", 1)
    s = max(w, h) / max_size
    ow, oh = max(1, int(round(w / s))), max(1, int(round(h / s)))
    band = max(1, 2**22 // max(w, 1))
    out = np.zeros((oh, ow, 3), np.uint8)
    for y in range(0, h, band):
        n = min(band, h - y)
        y0, y1 = int(round(y / h * oh)), int(round((y + n) / h * oh))
        if y1 > y0:
            rgb = read_rgb(reader, (0, int(round(y * d))), level, (w, n))
            out[y0:y1] = cv2.resize(rgb, (ow, y1 - y0), interpolation=cv2.INTER_AREA)
    return out, d * w / ow


def slide_mpp(reader: Any) -> float | None:
    """Microns per pixel at level 0 of a reader (its ``mpp``, else OpenSlide's properties), ``None`` if unknown."""
    mpp = getattr(reader, "mpp", None)
    if mpp is None:
        props = getattr(reader, "properties", None) or {}
        try:
            mpp = (float(props["openslide.mpp-x"]) + float(props["openslide.mpp-y"])) / 2.0
        except (KeyError, TypeError, ValueError):
            return None
    return float(mpp) if mpp and math.isfinite(float(mpp)) and float(mpp) > 0 else None


@dataclass(frozen=True)
class Resolution:
    """Where tiles are read: pyramid ``level`` (its ``downsample`` from level 0) and the resize ``scale``.

    A pixel of the working resolution covers ``downsample / scale`` level-0 pixels; ``scale = 1`` means the level
    is used as it is, ``scale < 1`` that it is shrunk to reach the requested mpp. ``mpp`` is the working mpp
    (``None`` when the slide does not state one).
    """

    level: int
    downsample: float
    scale: float = 1.0
    mpp: float | None = None

    @property
    def factor(self) -> float:
        """Level-0 pixels per working pixel."""
        return self.downsample / self.scale


def resolve_level(reader: Any, level: int | None = None, mpp: float | None = None,
                  tolerance: float = 0.1) -> Resolution:
    """The level to read for ``level=`` or ``mpp=`` (one of them; neither: level 0).

    For ``mpp``, the coarsest level whose mpp is at most ``mpp * (1 + tolerance)`` is read; when its mpp differs
    from ``mpp`` by more than ``tolerance`` (relative), tiles are resized by ``scale = level_mpp / mpp``.

    Raises:
        MissingLevelError: ``level`` is not in the slide, or ``mpp`` is finer than level 0 allows.
        UnknownMPPError: ``mpp`` is asked of a slide with no mpp metadata.

    Example:
        >>> s = InMemorySlide.from_array(np.zeros((64, 64), np.uint8), 3, mpp=0.25)
        >>> resolve_level(s, mpp=0.5), resolve_level(s, mpp=0.75).scale
        (Resolution(level=1, downsample=2.0, scale=1.0, mpp=0.5), 0.6666666666666666)
    """
    if level is not None and mpp is not None:
        raise WSOLValueError(f"pass `level` or `mpp`, not both (got level={level}, mpp={mpp})")
    base = slide_mpp(reader)
    downs = [float(d) for d in reader.level_downsamples]
    if mpp is None:
        lv = _check_level(reader, 0 if level is None else level)
        return Resolution(lv, downs[lv], 1.0, None if base is None else base * downs[lv])
    mpp = check_number(mpp, "mpp", 0.0, low_inclusive=False)
    check_number(tolerance, "tolerance", 0.0, 1.0)
    if base is None:
        raise UnknownMPPError(f"`mpp`={mpp} was asked but the slide states no microns per pixel ({reader!r}); pass "
                              f"`level=` instead or give the reader an mpp")
    fits = [i for i, d in enumerate(downs) if base * d <= mpp * (1 + tolerance)]
    if not fits:
        raise MissingLevelError(f"`mpp`={mpp} is finer than level 0 of the slide (mpp {base:.4g}); no level "
                                f"can be read at that resolution")
    lv = max(fits, key=lambda i: downs[i])
    level_mpp = base * downs[lv]
    scale = 1.0 if abs(level_mpp - mpp) <= tolerance * mpp else level_mpp / mpp
    return Resolution(lv, downs[lv], scale, mpp if scale != 1.0 else level_mpp)
