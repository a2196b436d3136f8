"""Tissue of a slide for the protocol: the Otsu mask at a low level, double-checked at level 0.

The detection itself (:func:`otsu_threshold`, :func:`tissue_channel`, :func:`tissue_mask`) is
:mod:`wsolkit.wsi.tissue`'s; this module applies it with the protocol's settings.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from wsolkit._checks import WSOLValueError
from wsolkit.data.camelyon.protocol import PatchProtocol
from wsolkit.wsi.readers import SlideReader
from wsolkit.wsi.readers import to_rgb as _to_rgb
from wsolkit.wsi.tissue import otsu_threshold, tissue_channel, tissue_mask

__all__ = ["otsu_threshold", "tissue_channel", "tissue_mask"]


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
