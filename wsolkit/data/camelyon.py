"""The CAMELYON16 patch-sampling protocol of the survey (Rony et al., Appendix B) as a library.

The survey builds a WSOL benchmark from whole-slide images (WSIs): patches of ``512 x 512`` pixels at level 0,
each with an image-level label (normal / metastatic) and a pixel mask of the metastatic pixels. The steps are:

1. **WSI-level split** (:func:`split_slides`): no two patches of one slide end up in different sets.
2. **Tissue** (:func:`otsu_threshold`, :func:`tissue_mask`): Otsu binarisation at a low pyramid level (level 6
   in the paper, "where it is easy for the OTSU binarization method to split the tissue from the background"),
   double-checked at level 0. A patch is kept only if its tissue percentage is ``>= p_t`` at both levels.
3. **Metastatic patches** (tumour slides only): every patch of the non-overlapping level-0 grid with a tumour
   percentage ``p_m >= p_0``. *Category 1*: ``p_0 <= p_m <= p_1`` (all kept). *Category 2*: ``p_m > p_1``
   (abundant, masks full of ones), calibrated by :func:`calibrate_category2`: with ``n`` Category 1 patches,
   ``round(n * p_n)`` Category 2 patches are drawn by picking a histogram bin (width 0.05) uniformly among
   the bins above ``p_1``, then a patch uniformly within the bin.
4. **Normal patches** (normal slides only): with ``n_m`` metastatic patches in the set and ``h`` normal slides,
   ``n_m / h`` patches per normal slide, drawn uniformly without repetition from the non-overlapping grid and
   accepted when they hold enough tissue.

Defaults follow the paper: ``p_t = 10%``, ``p_0 = 20%``, ``p_1 = 50%``, ``p_n = 1%``, bins of 0.05, patch 512.

Slides are read through the small :class:`SlideReader` protocol (``level_dimensions``, ``level_downsamples``,
``read_region``), which ``openslide.OpenSlide`` objects satisfy as they are. :class:`OpenSlideReader` opens a
file (optional extra ``wsi``: ``openslide-python`` and ``openslide-bin``); :class:`InMemorySlide` is a numpy
pyramid for tests and examples. Tumour annotations are level-0 masks given as a reader (for CAMELYON16, the
pyramidal TIFF masks rendered from the XML polygons), a path, or a 2-D array.

Interpretations where the appendix is silent (all documented in ``docs/guides/camelyon16_protocol.md``):
the Otsu threshold is computed once per slide at the low level (saturation channel by default) and the same
threshold is applied at level 0; patches lie on the non-overlapping level-0 grid anchored at ``(0, 0)``;
calibration runs over all the metastatic patches of a set; ``n * p_n`` and ``n_m / h`` are rounded half up,
and the remainder of ``n_m / h`` goes to the first slides in the given order.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import warnings
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from wsolkit._checks import (
    ShapeError,
    WSOLTypeError,
    WSOLValueError,
    check_choice,
    check_int,
    check_number,
    check_probability,
)

__all__ = [
    "SlideReader",
    "InMemorySlide",
    "OpenSlideReader",
    "Slide",
    "PatchProtocol",
    "PatchRecord",
    "split_slides",
    "otsu_threshold",
    "tissue_channel",
    "tissue_mask",
    "calibrate_category2",
    "sample_metastatic_patches",
    "sample_normal_patches",
    "sample_split",
    "write_patches",
    "extract_patches",
    "read_index",
    "CamelyonPatches",
    "synthetic_slide",
    "INDEX_COLUMNS",
]

INDEX_COLUMNS = (
    "split",
    "slide",
    "label",
    "category",
    "x",
    "y",
    "size",
    "tumour_fraction",
    "tissue_fraction",
    "image",
    "mask",
)

_CHANNELS = ("saturation", "gray")


# --------------------------------------------------------------------------------------------- slide readers
@runtime_checkable
class SlideReader(Protocol):
    """What the protocol needs from a slide: the OpenSlide interface, reduced to three members.

    ``level_dimensions[l]`` is ``(width, height)`` of level ``l``; ``level_downsamples[l]`` its downsample factor
    relative to level 0; ``read_region(location, level, size)`` returns the ``size = (width, height)`` region of
    ``level`` whose top-left corner is ``location = (x, y)`` in **level-0** coordinates, as an ``(h, w, 3)`` or
    ``(h, w, 4)`` uint8 RGB(A) array or anything ``np.asarray`` turns into one (OpenSlide returns an RGBA PIL
    image). Fully transparent pixels (outside the scanned area) are treated as white background.
    """

    @property
    def level_dimensions(self) -> Sequence[tuple[int, int]]: ...

    @property
    def level_downsamples(self) -> Sequence[float]: ...

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> Any: ...


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

    def __init__(self, levels: Sequence[np.ndarray]) -> None:
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

    @classmethod
    def from_array(cls, image: np.ndarray, num_levels: int = 3, factor: int = 2, mode: str = "area") -> InMemorySlide:
        """Build a pyramid from the level-0 array by block reduction.

        Args:
            image: level-0 uint8 array ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)``.
            num_levels: number of levels (level ``l`` is downsampled by ``factor ** l``).
            factor: integer downsample factor between consecutive levels.
            mode: ``"area"`` (block mean, rounded; for images), ``"max"`` (conservative, for masks) or
                ``"nearest"``.
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
        return cls(levels)

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
        check_int(level, "level", 0, len(self._levels) - 1)
        w, h = int(size[0]), int(size[1])
        if w < 0 or h < 0:
            raise WSOLValueError(f"`size` must be non-negative, got {tuple(size)}")
        d = self.level_downsamples[level]
        x0, y0 = int(math.floor(location[0] / d)), int(math.floor(location[1] / d))
        a = self._levels[level]
        out = np.zeros((h, w, 4), np.uint8)
        xs, ys = max(x0, 0), max(y0, 0)
        xe, ye = min(x0 + w, a.shape[1]), min(y0 + h, a.shape[0])
        if xe > xs and ye > ys:
            out[ys - y0 : ye - y0, xs - x0 : xe - x0] = a[ys:ye, xs:xe]
        return out

    def close(self) -> None:
        """Nothing to release (present for symmetry with :class:`OpenSlideReader`)."""

    def __repr__(self) -> str:
        return f"InMemorySlide(level_dimensions={self.level_dimensions})"


class OpenSlideReader:
    """A :class:`SlideReader` over a file opened with OpenSlide (``.tif``, ``.svs``, ``.ndpi``, ...).

    Needs the optional extra ``wsi`` (``pip install "wsolkit[wsi]"``: ``openslide-python`` and ``openslide-bin``,
    which ships the native library). ``openslide`` is imported when a reader is created, not with wsolkit.

    Args:
        path: the slide file (CAMELYON16 slides and the pyramidal TIFF tumour masks both open this way).

    Shape:
        ``read_region(location, level, (w, h))`` -> ``(h, w, 4)`` uint8 RGBA numpy array.

    Example:
        >>> try:
        ...     OpenSlideReader("missing.tif")
        ... except (ImportError, FileNotFoundError) as e:
        ...     print(type(e).__name__)
        FileNotFoundError
    """

    def __init__(self, path: str | os.PathLike) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"slide file not found: {str(path)!r}")
        try:
            import openslide
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError(
                "reading slide files needs OpenSlide: install the `wsi` extra, "
                '`pip install "wsolkit[wsi]"` (openslide-python and openslide-bin)'
            ) from e
        self.path = path
        self._slide = openslide.OpenSlide(str(path))

    @property
    def level_dimensions(self) -> list[tuple[int, int]]:
        return [tuple(map(int, d)) for d in self._slide.level_dimensions]

    @property
    def level_downsamples(self) -> list[float]:
        return [float(d) for d in self._slide.level_downsamples]

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        img = self._slide.read_region((int(location[0]), int(location[1])), int(level), (int(size[0]), int(size[1])))
        return np.asarray(img)

    def close(self) -> None:
        """Close the underlying OpenSlide handle."""
        self._slide.close()

    def __enter__(self) -> OpenSlideReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OpenSlideReader({str(self.path)!r}, level_dimensions={self.level_dimensions})"


@dataclass(frozen=True, eq=False)
class Slide:
    """A whole-slide image of the dataset.

    Args:
        name: unique slide name (used in patch file names), e.g. ``"tumor_001"``.
        image: a :class:`SlideReader` or a path opened with :class:`OpenSlideReader` when needed.
        annotation: tumour annotation at level-0 size — a :class:`SlideReader` (e.g. a pyramidal mask TIFF, any
            non-zero value is tumour), a path, or a 2-D array; ``None`` for a normal slide.

    Example:
        >>> Slide("normal_001", InMemorySlide.from_array(np.zeros((8, 8), np.uint8), 1)).metastatic
        False
    """

    name: str
    image: Any
    annotation: Any = None

    @property
    def metastatic(self) -> bool:
        """True when the slide has a tumour annotation."""
        return self.annotation is not None


@contextlib.contextmanager
def _open(obj: Any, name: str, mask: bool = False) -> Iterator[SlideReader]:
    """Yield a reader for ``obj`` (reader, path or, for masks, a 2-D array); close it if opened here."""
    if isinstance(obj, (str, os.PathLike)):
        reader = OpenSlideReader(obj)
        try:
            yield reader
        finally:
            reader.close()
        return
    if mask and isinstance(obj, np.ndarray):
        if obj.ndim != 2:
            raise ShapeError(f"`{name}` as an array must have shape (H, W) at level 0, got {obj.shape}")
        yield InMemorySlide([(obj != 0).astype(np.uint8)])
        return
    if not isinstance(obj, SlideReader):
        raise WSOLTypeError(
            f"`{name}` must be a SlideReader (level_dimensions, level_downsamples, read_region) or a path"
            + (" or a 2-D array" if mask else "")
            + f", got {type(obj).__name__}"
        )
    yield obj


# --------------------------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class PatchProtocol:
    """Hyper-parameters of the protocol; the defaults are the survey's (Appendix B).

    Args:
        patch_size: patch side at level 0 (paper: 512).
        p_t: minimum tissue fraction of a patch, at the low level and at level 0 (paper: 10%).
        p_0: minimum tumour fraction of a metastatic patch (paper: 20%).
        p_1: upper tumour fraction of Category 1; above it is Category 2 (paper: 50%).
        p_n: Category 2 patches drawn per Category 1 patch (paper: 1%).
        bin_width: width of the tumour-fraction histogram bins used by the calibration (paper: 0.05).
        tissue_level: pyramid level of the Otsu tissue mask (paper: 6; the coarsest level if the slide has
            fewer levels).
        tissue_channel: ``"saturation"`` (HSV S channel, tissue = above threshold) or ``"gray"`` (tissue = at or
            below threshold).
        tissue_threshold: fixed 0-255 threshold instead of Otsu (``None``: Otsu per slide).
        scan_level: annotation level used to find the grid cells that may hold tumour before the exact level-0
            count (``None``: the coarsest level with downsample ``<= patch_size / 16``; ``0``: exhaustive).
        seed: seed of every random choice; the same seed gives the same patches.

    Example:
        >>> PatchProtocol().p_t, PatchProtocol().p_0, PatchProtocol().p_1, PatchProtocol().p_n
        (0.1, 0.2, 0.5, 0.01)
        >>> PatchProtocol(p_0=0.6, p_1=0.5)
        Traceback (most recent call last):
        ...
        wsolkit._checks.WSOLValueError: `p_0` must be <= `p_1`, got p_0=0.6 and p_1=0.5
    """

    patch_size: int = 512
    p_t: float = 0.10
    p_0: float = 0.20
    p_1: float = 0.50
    p_n: float = 0.01
    bin_width: float = 0.05
    tissue_level: int = 6
    tissue_channel: str = "saturation"
    tissue_threshold: int | None = None
    scan_level: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check_int(self.patch_size, "patch_size", 1)
        for name in ("p_t", "p_0", "p_1", "p_n"):
            check_probability(getattr(self, name), name)
        if self.p_0 > self.p_1:
            raise WSOLValueError(f"`p_0` must be <= `p_1`, got p_0={self.p_0} and p_1={self.p_1}")
        check_number(self.bin_width, "bin_width", 0.0, 1.0, low_inclusive=False)
        check_int(self.tissue_level, "tissue_level", 0)
        check_choice(self.tissue_channel, "tissue_channel", _CHANNELS)
        if self.tissue_threshold is not None:
            check_int(self.tissue_threshold, "tissue_threshold", 0, 255)
        if self.scan_level is not None:
            check_int(self.scan_level, "scan_level", 0)
        check_int(self.seed, "seed", 0)


@dataclass(frozen=True)
class PatchRecord:
    """One sampled patch (level-0 box ``[x, x + size) x [y, y + size)`` of ``slide``).

    ``label``: 0 normal, 1 metastatic. ``category``: 0 normal, 1 or 2 (metastatic Category 1 / 2).
    """

    split: str
    slide: str
    label: int
    category: int
    x: int
    y: int
    size: int
    tumour_fraction: float
    tissue_fraction: float


# --------------------------------------------------------------------------------------------- split
def split_slides(
    names: Sequence[str],
    metastatic: Sequence[bool],
    fractions: Mapping[str, float] | None = None,
    seed: int = 0,
) -> dict[str, list[str]]:
    """WSI-level split, stratified by slide class (normal / metastatic).

    Within each class the slides are shuffled with ``seed`` and cut by the fractions; counts are rounded by the
    largest remainder so they sum to the class size (ties go to the earlier split).

    Args:
        names: unique slide names.
        metastatic: ``True`` for tumour slides, one per name.
        fractions: split name -> fraction, summing to 1 (default ``{"train": 0.6, "valid": 0.2, "test": 0.2}``).
        seed: shuffling seed.

    Returns:
        split name -> slide names (in the order of ``names``).

    Example:
        >>> names = [f"normal_{i}" for i in range(5)] + [f"tumor_{i}" for i in range(5)]
        >>> splits = split_slides(names, [n.startswith("tumor") for n in names], {"train": 0.6, "test": 0.4})
        >>> {k: len(v) for k, v in splits.items()}
        {'train': 6, 'test': 4}
    """
    fractions = dict(fractions) if fractions is not None else {"train": 0.6, "valid": 0.2, "test": 0.2}
    if len(fractions) == 0:
        raise WSOLValueError("`fractions` must name at least one split")
    for k, v in fractions.items():
        check_probability(v, f"fractions[{k!r}]")
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-6:
        raise WSOLValueError(f"`fractions` must sum to 1, got {total} ({fractions})")
    names = list(names)
    metastatic = [bool(m) for m in metastatic]
    if len(names) != len(metastatic):
        raise ShapeError(f"`names` and `metastatic` must have the same length, got {len(names)} and {len(metastatic)}")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})[:5]
        raise WSOLValueError(f"`names` must be unique, got duplicates {dup}")
    check_int(seed, "seed", 0)
    keys = list(fractions)
    assigned: dict[str, str] = {}
    for cls in (False, True):
        members = [n for n, m in zip(names, metastatic) if m == cls]
        rng = np.random.default_rng([seed, int(cls)])
        order = [members[i] for i in rng.permutation(len(members))]
        quotas = [fractions[k] * len(members) for k in keys]
        counts = [int(math.floor(q + 1e-9)) for q in quotas]
        rest = len(members) - sum(counts)
        by_remainder = sorted(range(len(keys)), key=lambda i: (-(quotas[i] - counts[i]), i))
        for i in by_remainder[:rest]:
            counts[i] += 1
        start = 0
        for k, c in zip(keys, counts):
            for n in order[start : start + c]:
                assigned[n] = k
            start += c
    return {k: [n for n in names if assigned[n] == k] for k in keys}


# --------------------------------------------------------------------------------------------- tissue
def _to_rgb(region: Any, name: str = "region") -> np.ndarray:
    a = np.asarray(region)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ShapeError(f"`{name}` must be an (h, w, 3) or (h, w, 4) uint8 RGB(A) array, got {a.shape} {a.dtype}")
    if a.shape[2] == 4:
        rgb = a[:, :, :3].copy()
        rgb[a[:, :, 3] == 0] = 255  # transparent (outside the scanned area) = white background
        return rgb
    return a


def tissue_channel(rgb: np.ndarray, channel: str = "saturation") -> np.ndarray:
    """The uint8 channel the tissue threshold is applied to.

    Shape:
        ``rgb`` ``(h, w, 3|4)`` uint8 -> ``(h, w)`` uint8.

    Example:
        >>> tissue_channel(np.array([[[255, 255, 255], [230, 150, 200]]], np.uint8)).tolist()
        [[0, 89]]
    """
    check_choice(channel, "channel", _CHANNELS)
    rgb = _to_rgb(rgb, "rgb")
    if channel == "saturation":
        return np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[:, :, 1])
    return np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))


def otsu_threshold(values: np.ndarray) -> int:
    """Otsu's threshold (Otsu, 1979) of uint8 values: the ``t`` maximising the between-class variance of
    ``{v <= t}`` and ``{v > t}``.

    Shape:
        ``values`` any shape, uint8 -> int in [0, 255].

    Example:
        >>> otsu_threshold(np.array([10, 12, 11, 200, 210, 205], np.uint8)) in range(12, 200)
        True
    """
    values = np.asarray(values)
    if values.dtype != np.uint8:
        raise WSOLTypeError(f"`values` must have dtype uint8, got {values.dtype}")
    if values.size == 0:
        raise ShapeError(f"`values` must not be empty, got shape {values.shape}")
    t, _ = cv2.threshold(values.reshape(1, -1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return int(t)


def tissue_mask(rgb: np.ndarray, threshold: int, channel: str = "saturation") -> np.ndarray:
    """Binary tissue mask: saturation ``> threshold`` (``"saturation"``) or grey ``<= threshold`` (``"gray"``).

    Shape:
        ``rgb`` ``(h, w, 3|4)`` uint8 -> ``(h, w)`` bool.

    Example:
        >>> tissue_mask(np.array([[[255, 255, 255], [230, 150, 200]]], np.uint8), 40).tolist()
        [[False, True]]
    """
    check_int(threshold, "threshold", 0, 255)
    c = tissue_channel(rgb, channel)
    return c > threshold if channel == "saturation" else c <= threshold


@dataclass(frozen=True)
class _Tissue:
    threshold: int
    level: int
    downsample: float
    mask: np.ndarray  # bool at `level`


def _slide_tissue(reader: SlideReader, proto: PatchProtocol) -> _Tissue:
    level = min(proto.tissue_level, len(reader.level_dimensions) - 1)
    w, h = reader.level_dimensions[level]
    chan = tissue_channel(_to_rgb(reader.read_region((0, 0), level, (w, h))), proto.tissue_channel)
    thr = otsu_threshold(chan) if proto.tissue_threshold is None else proto.tissue_threshold
    mask = chan > thr if proto.tissue_channel == "saturation" else chan <= thr
    return _Tissue(thr, level, float(reader.level_downsamples[level]), mask)


def _box_fraction(mask: np.ndarray, downsample: float, x: int, y: int, size: int) -> float:
    """Mean of a low-level mask over the footprint of the level-0 box (outer pixel cover)."""
    x0, y0 = int(math.floor(x / downsample)), int(math.floor(y / downsample))
    x1, y1 = int(math.ceil((x + size) / downsample)), int(math.ceil((y + size) / downsample))
    block = mask[max(y0, 0) : max(y1, y0 + 1), max(x0, 0) : max(x1, x0 + 1)]
    return float(block.mean()) if block.size else 0.0


def _grid(reader: SlideReader, proto: PatchProtocol, name: str) -> list[tuple[int, int]]:
    w, h = (int(v) for v in reader.level_dimensions[0])
    s = proto.patch_size
    if s > w or s > h:
        raise WSOLValueError(
            f"`patch_size`={s} is larger than slide {name!r} of level-0 size (width, height)=({w}, {h})"
        )
    return [(x, y) for y in range(0, h - s + 1, s) for x in range(0, w - s + 1, s)]


def _read_tissue_fraction(reader: SlideReader, tissue: _Tissue, proto: PatchProtocol, x: int, y: int) -> float:
    s = proto.patch_size
    rgb = _to_rgb(reader.read_region((x, y), 0, (s, s)))
    return float(tissue_mask(rgb, tissue.threshold, proto.tissue_channel).mean())


def _rng(seed: int, *parts: str | int) -> np.random.Generator:
    keys = [seed] + [zlib.crc32(p.encode()) if isinstance(p, str) else int(p) for p in parts]
    return np.random.default_rng(keys)


# --------------------------------------------------------------------------------------------- sampling
def _check_slide(slide: Any) -> Slide:
    if not isinstance(slide, Slide):
        raise WSOLTypeError(f"`slides` must hold Slide objects, got {type(slide).__name__}")
    return slide


def sample_metastatic_patches(
    slide: Slide, protocol: PatchProtocol | None = None, split: str = ""
) -> list[PatchRecord]:
    """All patches of a tumour slide with enough tissue and ``p_m >= p_0``, before calibration.

    Patches lie on the non-overlapping level-0 grid. A patch is kept when its tissue fraction is ``>= p_t`` at the
    low level and at level 0, and its tumour fraction ``p_m >= p_0``; ``category`` is 1 if ``p_m <= p_1`` else 2.

    Args:
        slide: a :class:`Slide` with an annotation.
        protocol: hyper-parameters (default: the paper's).
        split: split name stored in the records.

    Returns:
        records in row-major grid order.

    Example:
        >>> image, annotation = synthetic_slide(512, 384, metastatic=True, seed=0)
        >>> recs = sample_metastatic_patches(Slide("tumor_0", image, annotation), PatchProtocol(patch_size=64))
        >>> sorted({r.category for r in recs})
        [1, 2]
    """
    proto = protocol if protocol is not None else PatchProtocol()
    slide = _check_slide(slide)
    if not slide.metastatic:
        raise WSOLValueError(f"slide {slide.name!r} has no tumour annotation; metastatic patches need one")
    s = proto.patch_size
    with _open(slide.image, "slide.image") as reader, _open(slide.annotation, "slide.annotation", True) as annot:
        dims, adims = tuple(reader.level_dimensions[0]), tuple(annot.level_dimensions[0])
        if tuple(map(int, dims)) != tuple(map(int, adims)):
            raise ShapeError(
                f"annotation of slide {slide.name!r} must have the level-0 size of the slide (width, height)="
                f"{tuple(dims)}, got {tuple(adims)}"
            )
        grid = _grid(reader, proto, slide.name)
        tissue = _slide_tissue(reader, proto)
        # cells that may hold tumour, from a coarse level of the annotation (conservative: any positive pixel)
        if proto.p_0 == 0:
            candidates = grid
        else:
            if proto.scan_level is None:
                ok = [i for i, d in enumerate(annot.level_downsamples) if d <= max(1.0, s / 16)]
                level = max(ok) if ok else 0
            else:
                level = min(proto.scan_level, len(annot.level_dimensions) - 1)
            aw, ah = annot.level_dimensions[level]
            low = np.asarray(annot.read_region((0, 0), level, (aw, ah)))
            positive = low[:, :, 0] > 0 if low.ndim == 3 else low > 0
            if low.ndim == 3 and low.shape[2] == 4:
                positive &= low[:, :, 3] > 0
            d = float(annot.level_downsamples[level])
            candidates = [(x, y) for x, y in grid if _box_fraction(positive, d, x, y, s) > 0]
        out = []
        for x, y in candidates:
            m = np.asarray(annot.read_region((x, y), 0, (s, s)))
            ym = m[:, :, 0] > 0 if m.ndim == 3 else m > 0
            if m.ndim == 3 and m.shape[2] == 4:
                ym &= m[:, :, 3] > 0
            p_m = float(ym.mean())
            if p_m < proto.p_0:
                continue
            if _box_fraction(tissue.mask, tissue.downsample, x, y, s) < proto.p_t:
                continue
            p_t0 = _read_tissue_fraction(reader, tissue, proto, x, y)
            if p_t0 < proto.p_t:
                continue
            out.append(PatchRecord(split, slide.name, 1, 1 if p_m <= proto.p_1 else 2, x, y, s, p_m, p_t0))
        return out


def _round_half_up(v: float) -> int:
    return int(math.floor(v + 0.5 + 1e-9))


def calibrate_category2(
    tumour_fractions: Sequence[float] | np.ndarray,
    n_category1: int,
    p_1: float = 0.5,
    p_n: float = 0.01,
    bin_width: float = 0.05,
    rng: np.random.Generator | int | None = 0,
) -> np.ndarray:
    """Pick Category 2 patches by the histogram procedure of the survey (Appendix B).

    ``k = round(n_category1 * p_n)`` patches are drawn one at a time: a bin of the tumour-fraction histogram
    (``[0, 1]`` cut every ``bin_width``; the last bin includes 1) is picked uniformly among the non-empty bins
    holding patches with ``p_m > p_1``, then a patch is picked uniformly among that bin's remaining Category 2
    patches (without repetition). A bin left empty is no longer picked; fewer than ``k`` patches are returned
    only when Category 2 runs out.

    Args:
        tumour_fractions: ``p_m`` of every metastatic patch (Category 1 entries are ignored).
        n_category1: ``n``, the number of Category 1 patches.
        p_1: upper tumour fraction of Category 1 (as in :class:`PatchProtocol`).
        p_n: Category 2 patches drawn per Category 1 patch.
        bin_width: histogram bin width.
        rng: a numpy Generator or an integer seed.

    Shape:
        ``tumour_fractions`` ``(N,)`` -> ``(k,)`` int64 indices into it, in drawing order.

    Example:
        >>> fr = [0.3, 0.52, 0.53, 0.97, 1.0, 1.0]
        >>> idx = calibrate_category2(fr, n_category1=200, p_n=0.01, rng=0)
        >>> len(idx), all(fr[i] > 0.5 for i in idx)
        (2, True)
    """
    fr = np.asarray(tumour_fractions, dtype=np.float64).reshape(-1)
    if fr.size and (not np.all(np.isfinite(fr)) or fr.min() < 0 or fr.max() > 1):
        raise WSOLValueError(f"`tumour_fractions` must lie in [0, 1], got values in [{fr.min()}, {fr.max()}]")
    check_int(n_category1, "n_category1", 0)
    check_probability(p_1, "p_1")
    check_probability(p_n, "p_n")
    check_number(bin_width, "bin_width", 0.0, 1.0, low_inclusive=False)
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    k = _round_half_up(n_category1 * p_n)
    n_bins = max(1, int(math.ceil(1.0 / bin_width - 1e-9)))
    bins: dict[int, list[int]] = {}
    for i in np.flatnonzero(fr > p_1):
        b = min(int(math.floor(fr[i] / bin_width + 1e-9)), n_bins - 1)
        bins.setdefault(b, []).append(int(i))
    chosen: list[int] = []
    while len(chosen) < k and bins:
        keys = sorted(bins)
        b = keys[int(gen.integers(len(keys)))]
        members = bins[b]
        chosen.append(members.pop(int(gen.integers(len(members)))))
        if not members:
            del bins[b]
    return np.asarray(chosen, dtype=np.int64)


def sample_normal_patches(
    slide: Slide, n: int, protocol: PatchProtocol | None = None, split: str = ""
) -> list[PatchRecord]:
    """Up to ``n`` patches drawn uniformly without repetition from the non-overlapping grid of a normal slide.

    Grid cells are visited in a random order (seeded by ``protocol.seed`` and the slide name); a cell is accepted
    when its tissue fraction is ``>= p_t`` at the low level and at level 0. Fewer than ``n`` are returned only
    when the slide has fewer acceptable cells.

    Returns:
        records in drawing order.

    Example:
        >>> image, _ = synthetic_slide(512, 384, metastatic=False, seed=1)
        >>> len(sample_normal_patches(Slide("normal_0", image), 5, PatchProtocol(patch_size=64)))
        5
    """
    proto = protocol if protocol is not None else PatchProtocol()
    slide = _check_slide(slide)
    check_int(n, "n", 0)
    s = proto.patch_size
    out: list[PatchRecord] = []
    with _open(slide.image, "slide.image") as reader:
        grid = _grid(reader, proto, slide.name)
        if n == 0:
            return out
        tissue = _slide_tissue(reader, proto)
        rng = _rng(proto.seed, "normal", slide.name)
        for i in rng.permutation(len(grid)):
            x, y = grid[int(i)]
            if _box_fraction(tissue.mask, tissue.downsample, x, y, s) < proto.p_t:
                continue
            p_t0 = _read_tissue_fraction(reader, tissue, proto, x, y)
            if p_t0 < proto.p_t:
                continue
            out.append(PatchRecord(split, slide.name, 0, 0, x, y, s, 0.0, p_t0))
            if len(out) == n:
                break
    return out


def sample_split(
    slides: Sequence[Slide], protocol: PatchProtocol | None = None, split: str = "train"
) -> list[PatchRecord]:
    """The full protocol on the slides of one set: metastatic patches, calibration, then normal patches.

    Category 1 patches of all the tumour slides are kept; Category 2 is calibrated over the whole set
    (:func:`calibrate_category2`); ``n_m`` (Category 1 + calibrated Category 2) normal patches are spread over the
    ``h`` normal slides, ``n_m // h`` each plus one for the first ``n_m % h`` slides.

    Returns:
        metastatic records (Category 1 then calibrated Category 2, in grid order) followed by normal records.

    Example:
        >>> slides = [Slide(f"tumor_{i}", *synthetic_slide(512, 384, True, seed=i)) for i in range(2)]
        >>> slides += [Slide(f"normal_{i}", synthetic_slide(512, 384, False, seed=10 + i)[0]) for i in range(2)]
        >>> recs = sample_split(slides, PatchProtocol(patch_size=64, p_n=0.5))
        >>> n_m = sum(r.label for r in recs)
        >>> n_m == sum(1 - r.label for r in recs)
        True
    """
    proto = protocol if protocol is not None else PatchProtocol()
    if not isinstance(slides, Sequence) or isinstance(slides, (str, bytes)):
        raise WSOLTypeError(f"`slides` must be a sequence of Slide, got {type(slides).__name__}")
    slides = [_check_slide(s) for s in slides]
    names = [s.name for s in slides]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})[:5]
        raise WSOLValueError(f"slide names must be unique, got duplicates {dup}")
    metastatic: list[PatchRecord] = []
    for s in slides:
        if s.metastatic:
            metastatic.extend(sample_metastatic_patches(s, proto, split))
    cat1 = [r for r in metastatic if r.category == 1]
    cat2 = [r for r in metastatic if r.category == 2]
    idx = calibrate_category2(
        [r.tumour_fraction for r in cat2],
        len(cat1),
        proto.p_1,
        proto.p_n,
        proto.bin_width,
        _rng(proto.seed, "calibration", split),
    )
    keep = set(idx.tolist())
    chosen = cat1 + [r for i, r in enumerate(cat2) if i in keep]
    normals = [s for s in slides if not s.metastatic]
    n_m = len(chosen)
    for j, s in enumerate(normals):
        quota = n_m // len(normals) + (1 if j < n_m % len(normals) else 0)
        got = sample_normal_patches(s, quota, proto, split)
        if len(got) < quota:
            warnings.warn(
                f"normal slide {s.name!r} has only {len(got)} patches with tissue >= p_t={proto.p_t}, "
                f"{quota} were requested; the {split!r} set gets fewer normal than metastatic patches",
                stacklevel=2,
            )
        chosen.extend(got)
    return chosen


# --------------------------------------------------------------------------------------------- output
def _patch_stem(r: PatchRecord) -> str:
    return f"{r.slide}_x{r.x}_y{r.y}"


def write_patches(records: Sequence[PatchRecord], slides: Sequence[Slide], root: str | os.PathLike) -> Path:
    """Write each patch as PNG (``images/<split>/``), its mask as PNG (``masks/<split>/``, 0 or 255) and the index.

    Masks of normal patches are all zeros. The index ``root/index.csv`` has the columns :data:`INDEX_COLUMNS`
    (paths relative to ``root``).

    Returns:
        the path of ``index.csv``.

    Example:
        >>> import tempfile
        >>> image, annotation = synthetic_slide(256, 256, True, seed=0)
        >>> slide = Slide("tumor_0", image, annotation)
        >>> recs = sample_metastatic_patches(slide, PatchProtocol(patch_size=64))
        >>> with tempfile.TemporaryDirectory() as d:
        ...     rows = read_index(write_patches(recs, [slide], d))
        >>> len(rows) == len(recs), rows[0]["image"].startswith("images/")
        (True, True)
    """
    by_name = {_check_slide(s).name: s for s in slides}
    root = Path(root)
    rows = []
    groups: dict[str, list[PatchRecord]] = {}
    for r in records:
        if not isinstance(r, PatchRecord):
            raise WSOLTypeError(f"`records` must hold PatchRecord objects, got {type(r).__name__}")
        if r.slide not in by_name:
            raise WSOLValueError(f"record of slide {r.slide!r} has no matching Slide in `slides`")
        groups.setdefault(r.slide, []).append(r)
    for name, recs in groups.items():
        slide = by_name[name]
        ann = slide.annotation if slide.metastatic else None
        with contextlib.ExitStack() as stack:
            reader = stack.enter_context(_open(slide.image, "slide.image"))
            annot = stack.enter_context(_open(ann, "slide.annotation", True)) if ann is not None else None
            for r in recs:
                split = r.split or "all"
                img_rel = Path("images") / split / f"{_patch_stem(r)}.png"
                mask_rel = Path("masks") / split / f"{_patch_stem(r)}.png"
                (root / img_rel).parent.mkdir(parents=True, exist_ok=True)
                (root / mask_rel).parent.mkdir(parents=True, exist_ok=True)
                rgb = _to_rgb(reader.read_region((r.x, r.y), 0, (r.size, r.size)))
                if annot is not None and r.label == 1:
                    m = np.asarray(annot.read_region((r.x, r.y), 0, (r.size, r.size)))
                    mask = (m[:, :, 0] > 0) if m.ndim == 3 else (m > 0)
                else:
                    mask = np.zeros((r.size, r.size), bool)
                if not cv2.imwrite(str(root / img_rel), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
                    raise OSError(f"could not write {root / img_rel}")
                if not cv2.imwrite(str(root / mask_rel), mask.astype(np.uint8) * 255):
                    raise OSError(f"could not write {root / mask_rel}")
                rows.append({**asdict(r), "image": img_rel.as_posix(), "mask": mask_rel.as_posix()})
    root.mkdir(parents=True, exist_ok=True)
    index = root / "index.csv"
    pos = {(r.slide, r.x, r.y, r.split): i for i, r in enumerate(records)}
    rows.sort(key=lambda row: pos[(row["slide"], row["x"], row["y"], row["split"])])
    with open(index, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(INDEX_COLUMNS))
        w.writeheader()
        for row in rows:
            w.writerow({k: row[k] for k in INDEX_COLUMNS})
    return index


def read_index(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read ``index.csv`` back, with numeric columns converted.

    Example:
        >>> INDEX_COLUMNS[:4]
        ('split', 'slide', 'label', 'category')
    """
    ints = {f.name for f in fields(PatchRecord) if f.type in ("int", int)}
    floats = {"tumour_fraction", "tissue_fraction"}
    out = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            for k in ints:
                row[k] = int(row[k])
            for k in floats:
                row[k] = float(row[k])
            out.append(row)
    return out


def extract_patches(
    splits: Mapping[str, Sequence[Slide]], root: str | os.PathLike, protocol: PatchProtocol | None = None
) -> Path:
    """Run :func:`sample_split` on every set and write all patches, masks and one ``index.csv`` under ``root``.

    Args:
        splits: split name -> the slides of that split (e.g. from :func:`split_slides`); a slide may appear in one
            split only.
        root: output folder.
        protocol: hyper-parameters (default: the paper's).

    Returns:
        the path of ``index.csv``.

    Example:
        >>> import tempfile
        >>> t, a = synthetic_slide(256, 256, True, seed=0)
        >>> n, _ = synthetic_slide(256, 256, False, seed=1)
        >>> with tempfile.TemporaryDirectory() as d:
        ...     rows = read_index(extract_patches({"test": [Slide("t", t, a), Slide("n", n)]}, d,
        ...                                       PatchProtocol(patch_size=64, p_n=1.0)))
        >>> sorted({r["split"] for r in rows}), sum(r["label"] for r in rows) == sum(1 - r["label"] for r in rows)
        (['test'], True)
    """
    if not isinstance(splits, Mapping):
        raise WSOLTypeError(f"`splits` must map split names to slides, got {type(splits).__name__}")
    seen: dict[str, str] = {}
    for k, slides in splits.items():
        for s in slides:
            s = _check_slide(s)
            if s.name in seen:
                raise WSOLValueError(f"slide {s.name!r} is in splits {seen[s.name]!r} and {k!r}; split at WSI level")
            seen[s.name] = k
    records: list[PatchRecord] = []
    all_slides: list[Slide] = []
    for k, slides in splits.items():
        records.extend(sample_split(list(slides), protocol, k))
        all_slides.extend(slides)
    return write_patches(records, all_slides, root)


class CamelyonPatches(Dataset):
    """The patches written by :func:`extract_patches` / :func:`write_patches`, as a torch dataset.

    Items follow the contract of :class:`~wsolkit.data.SyntheticHistology`: ``(image, label, mask)``.

    Args:
        root: the folder holding ``index.csv``.
        split: keep the rows of this split (``None``: all rows).

    Shape:
        ``image`` ``(3, size, size)`` float32 in [0, 1]; ``mask`` ``(size, size)`` uint8 in {0, 1}; ``label`` int
        (0 normal, 1 metastatic).

    Example:
        >>> import tempfile
        >>> t, a = synthetic_slide(256, 256, True, seed=0)
        >>> with tempfile.TemporaryDirectory() as d:
        ...     _ = extract_patches({"train": [Slide("t", t, a)]}, d, PatchProtocol(patch_size=64))
        ...     image, label, mask = CamelyonPatches(d, "train")[0]
        >>> tuple(image.shape), label, mask.dtype
        ((3, 64, 64), 1, torch.uint8)
    """

    def __init__(self, root: str | os.PathLike, split: str | None = None) -> None:
        self.root = Path(root)
        index = self.root / "index.csv"
        if not index.is_file():
            raise FileNotFoundError(f"no index.csv under {str(self.root)!r}; write one with extract_patches")
        rows = read_index(index)
        if split is not None:
            splits = sorted({r["split"] for r in rows})
            check_choice(split, "split", splits)
            rows = [r for r in rows if r["split"] == split]
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, torch.Tensor]:
        row = self.rows[index]
        bgr = cv2.imread(str(self.root / row["image"]), cv2.IMREAD_COLOR)
        mask = cv2.imread(str(self.root / row["mask"]), cv2.IMREAD_GRAYSCALE)
        if bgr is None or mask is None:
            raise FileNotFoundError(f"cannot read {row['image']!r} or {row['mask']!r} under {str(self.root)!r}")
        image = torch.from_numpy(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).permute(2, 0, 1).float().div_(255.0)
        return image, int(row["label"]), torch.from_numpy((mask > 0).astype(np.uint8))

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Load every item: ``images (N, 3, H, W)``, ``labels (N,)``, ``masks (N, H, W)``."""
        items = [self[i] for i in range(len(self))]
        if not items:
            raise WSOLValueError(f"no patches to load under {str(self.root)!r}")
        images, labels, masks = zip(*items)
        return torch.stack(images), torch.tensor(labels, dtype=torch.long), torch.stack(masks)


# --------------------------------------------------------------------------------------------- synthetic
def synthetic_slide(
    width: int = 1024, height: int = 768, metastatic: bool = True, seed: int = 0, num_levels: int = 4
) -> tuple[InMemorySlide, InMemorySlide | None]:
    """A small procedural slide: white background, pink tissue blobs, purple tumour regions (tumour slides).

    For examples and tests of the protocol; not a realistic image (see :mod:`wsolkit.data.synthetic` for that).

    Returns:
        ``(image, annotation)`` pyramids (factor 2); ``annotation`` is ``None`` for a normal slide.

    Example:
        >>> image, annotation = synthetic_slide(256, 128, seed=0)
        >>> image.level_dimensions[0], annotation.level_dimensions[0]
        ((256, 128), (256, 128))
    """
    check_int(width, "width", 8)
    check_int(height, "height", 8)
    check_int(seed, "seed", 0)
    rng = np.random.default_rng([seed, 16])
    tissue = np.zeros((height, width), np.uint8)
    for _ in range(3):
        cx, cy = rng.uniform(0.25, 0.75) * width, rng.uniform(0.25, 0.75) * height
        axes = (int(rng.uniform(0.15, 0.35) * width), int(rng.uniform(0.15, 0.35) * height))
        cv2.ellipse(tissue, (int(cx), int(cy)), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    tumour = np.zeros_like(tissue)
    if metastatic:
        ys, xs = np.nonzero(tissue)
        for _ in range(2):
            j = int(rng.integers(len(xs)))
            r = int(rng.uniform(0.06, 0.14) * min(width, height))
            cv2.circle(tumour, (int(xs[j]), int(ys[j])), r, 1, -1)
        tumour &= tissue
    noise = rng.normal(0, 6, (height, width, 1)).astype(np.float32)
    img = np.full((height, width, 3), 245.0, np.float32)
    img[tissue > 0] = (226, 150, 196)
    img[tumour > 0] = (150, 90, 170)
    img = np.clip(img + noise * (tissue[:, :, None] > 0), 0, 255).astype(np.uint8)
    image = InMemorySlide.from_array(img, num_levels, 2, "area")
    annotation = InMemorySlide.from_array(tumour, num_levels, 2, "max") if metastatic else None
    return image, annotation
