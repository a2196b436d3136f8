"""The tile grid of a slide at a working resolution, and the torch ``Dataset`` that reads its tiles.

Tiles of ``tile`` working pixels start every ``stride = tile - overlap`` pixels from ``(0, 0)``; the last tile of a
row or column may run past the slide (the outside reads as white and is cropped from the heatmap). With a tissue
mask, tiles whose footprint holds less than ``min_tissue`` tissue are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from wsolkit._checks import WSOLValueError, check_int, check_number
from wsolkit.wsi.readers import Resolution, read_rgb

__all__ = ["TileGrid", "TileDataset", "grid_starts"]


def grid_starts(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets of tiles covering ``[0, length)``: ``0, stride, 2 stride, ...`` until a tile reaches the end.

    Example:
        >>> grid_starts(100, 40, 30)
        [0, 30, 60]
    """
    n = 1 if length <= tile else math.ceil((length - tile) / stride) + 1
    return [i * stride for i in range(n)]


@dataclass(frozen=True)
class TileGrid:
    """Tiles of a slide at a :class:`~wsolkit.wsi.Resolution`.

    Attributes:
        resolution: level, downsample and resize scale of the working resolution.
        size: ``(width, height)`` of the slide at the working resolution.
        tile: tile side (working pixels).
        overlap: overlap of neighbouring tiles (working pixels).
        rows, cols: number of grid rows and columns.
        tiles: ``(N, 2)`` int64 ``(row, col)`` of the kept tiles, row-major.
    """

    resolution: Resolution
    size: tuple[int, int]
    tile: int
    overlap: int
    rows: int
    cols: int
    tiles: np.ndarray

    @property
    def stride(self) -> int:
        return self.tile - self.overlap

    @classmethod
    def build(cls, reader: Any, resolution: Resolution, tile: int = 512, overlap: int = 0,
              tissue: Any = None, min_tissue: float = 0.05) -> TileGrid:
        """Grid over ``reader`` at ``resolution``; ``tissue`` (a :class:`~wsolkit.wsi.tissue.SlideTissue`) filters
        tiles.

        Example:
            >>> from wsolkit.wsi.readers import InMemorySlide, resolve_level
            >>> s = InMemorySlide.from_array(np.zeros((100, 130, 3), np.uint8), 2)
            >>> g = TileGrid.build(s, resolve_level(s, level=0), tile=64, overlap=16)
            >>> g.size, g.rows, g.cols, len(g.tiles)
            ((130, 100), 2, 3, 6)
        """
        check_int(tile, "tile", 1)
        check_int(overlap, "overlap", 0)
        if overlap >= tile:
            raise WSOLValueError(f"`overlap` must be smaller than `tile`, got overlap={overlap}, tile={tile}")
        check_number(min_tissue, "min_tissue", 0.0, 1.0)
        lw, lh = reader.level_dimensions[resolution.level]
        w = max(1, int(math.floor(lw * resolution.scale + 1e-9)))
        h = max(1, int(math.floor(lh * resolution.scale + 1e-9)))
        stride = tile - overlap
        ys, xs = grid_starts(h, tile, stride), grid_starts(w, tile, stride)
        keep = []
        f = resolution.factor
        for r, y in enumerate(ys):
            for c, x in enumerate(xs):
                tw, th = min(tile, w - x), min(tile, h - y)
                if tissue is not None and tissue.fraction(x * f, y * f, tw * f, th * f) < max(min_tissue, 1e-12):
                    continue
                keep.append((r, c))
        tiles = np.asarray(keep, np.int64).reshape(-1, 2)
        return cls(resolution, (w, h), tile, overlap, len(ys), len(xs), tiles)

    def origin(self, index: int) -> tuple[int, int]:
        """Top-left ``(x, y)`` of tile ``index`` in working pixels."""
        r, c = self.tiles[index]
        return int(c) * self.stride, int(r) * self.stride


class TileDataset(Dataset):
    """Tiles of a :class:`TileGrid`, read from a slide: items ``(uint8 (3, tile, tile), index)``.

    Each DataLoader worker reads through its own file handle (file readers open one per process, forked or
    spawned). With a resize
    (``resolution.scale != 1``), ``ceil(tile / scale)`` level pixels are read and resized with ``INTER_AREA``.

    Example:
        >>> from wsolkit.wsi.readers import InMemorySlide, resolve_level
        >>> s = InMemorySlide.from_array(np.zeros((100, 130, 3), np.uint8), 2)
        >>> ds = TileDataset(s, TileGrid.build(s, resolve_level(s, level=1), tile=32))
        >>> x, i = ds[0]
        >>> len(ds), tuple(x.shape)
        (6, (3, 32, 32))
    """

    def __init__(self, reader: Any, grid: TileGrid) -> None:
        self.reader = reader
        self.grid = grid

    def __len__(self) -> int:
        return len(self.grid.tiles)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        g = self.grid
        res = g.resolution
        x, y = g.origin(index)
        loc = (int(round(x * res.factor)), int(round(y * res.factor)))
        if res.scale == 1.0:
            rgb = read_rgb(self.reader, loc, res.level, (g.tile, g.tile))
        else:
            n = int(math.ceil(g.tile / res.scale))
            rgb = cv2.resize(read_rgb(self.reader, loc, res.level, (n, n)), (g.tile, g.tile),
                             interpolation=cv2.INTER_AREA)
        return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1), index
