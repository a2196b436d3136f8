"""Lesion detections from a slide heatmap, and the CAMELYON16 ``prob,x,y`` CSV.

The rule (:func:`detections`): the heatmap is thresholded at ``threshold`` (``>=``; NaN counts as 0), then

- ``rule="components"`` (default): one detection per connected region (8-connectivity) of at least ``min_pixels``
  heatmap pixels; its probability is the region's maximum, its location the first pixel (raster order) holding that
  maximum;
- ``rule="maxima"``: one detection per local maximum — a pixel above the threshold equal to the maximum of the
  ``(2 radius + 1)²`` square around it; a plateau of equal maxima (8-connected) gives one detection, at its first
  pixel in raster order.

A heatmap pixel ``(row, col)`` covers level-0 pixels ``[col · f, (col + 1) · f) x [row · f, (row + 1) · f)`` with ``f``
the heatmap's level-0 pixels per pixel (:attr:`~wsolkit.wsi.Heatmap.factor`); a detection is placed at the pixel's
centre, ``x = floor((col + 0.5) · f)``, ``y = floor((row + 0.5) · f)``, level-0 integer pixels as the official
evaluation reads them. Detections are sorted by decreasing probability.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from wsolkit._checks import ShapeError, WSOLValueError, check_choice, check_int, check_number

__all__ = ["Detections", "detections", "write_detections_csv", "read_detections_csv", "heatmap_array"]


@dataclass(frozen=True)
class Detections:
    """Lesion detections of one slide.

    Attributes:
        probs: ``(N,)`` float64 probabilities, decreasing.
        xy: ``(N, 2)`` int64 level-0 ``(x, y)``.
        pixels: ``(N,)`` int64 heatmap pixels of the detection's region (1 for ``rule="maxima"``).
    """

    probs: np.ndarray
    xy: np.ndarray
    pixels: np.ndarray

    def __len__(self) -> int:
        return len(self.probs)

    def rows(self) -> list[tuple[float, int, int]]:
        """``[(prob, x, y), ...]``."""
        return [(float(p), int(x), int(y)) for p, (x, y) in zip(self.probs, self.xy)]

    @property
    def slide_score(self) -> float:
        """The highest probability (0 without detections): a slide-level score for the AUC."""
        return float(self.probs[0]) if len(self.probs) else 0.0


def heatmap_array(heatmap: Any, factor: float | None = None) -> tuple[np.ndarray, float]:
    """``(values (H, W) float64 with NaN as 0, level-0 pixels per pixel)`` of a Heatmap or a 2-D array."""
    if hasattr(heatmap, "map") and hasattr(heatmap, "factor"):
        a = np.asarray(heatmap.map[...], np.float64)
        f = float(heatmap.factor) if factor is None else factor
    else:
        a = np.asarray(heatmap, np.float64)
        if factor is None:
            raise WSOLValueError("`factor` (level-0 pixels per heatmap pixel) is needed for a plain array heatmap")
        f = factor
    if a.ndim != 2:
        raise ShapeError(f"`heatmap` must be 2-D (H, W), got shape {a.shape}")
    check_number(f, "factor", 0.0, low_inclusive=False)
    return np.nan_to_num(a, nan=0.0), float(f)


def _first_in_raster(labels: np.ndarray, values: np.ndarray, n: int, want: np.ndarray) -> np.ndarray:
    """Flat index of the first pixel (raster order) of each label 1..n where ``values == want[label]``."""
    flat_l, flat_v = labels.ravel(), values.ravel()
    idx = np.nonzero(flat_l)[0]
    ok = flat_v[idx] == want[flat_l[idx]]
    idx = idx[ok]
    lab = flat_l[idx]
    first = np.full(n + 1, -1, np.int64)
    # idx is increasing: the first occurrence of each label is its raster-first pixel
    u, pos = np.unique(lab, return_index=True)
    first[u] = idx[pos]
    return first[1:]


def detections(heatmap: Any, threshold: float = 0.5, *, rule: str = "components", radius: int = 1,
               min_pixels: int = 1, factor: float | None = None) -> Detections:
    """Detections ``(prob, x, y)`` of a heatmap (the rule is in the module docstring).

    Args:
        heatmap: a :class:`~wsolkit.wsi.Heatmap` (values in ``[0, 1]``) or a 2-D array (then ``factor`` is needed).
        threshold: pixels ``>= threshold`` are candidates.
        rule: ``"components"`` or ``"maxima"``.
        radius: neighbourhood half-size of ``"maxima"``.
        min_pixels: smallest region kept by ``"components"``.
        factor: level-0 pixels per heatmap pixel (default: the heatmap's).

    Example:
        >>> h = np.zeros((8, 8)); h[1:3, 1:3] = 0.6; h[2, 2] = 0.9; h[6, 6] = 0.7
        >>> d = detections(h, 0.5, factor=32)
        >>> d.rows()
        [(0.9, 80, 80), (0.7, 208, 208)]
    """
    a, f = heatmap_array(heatmap, factor)
    check_number(threshold, "threshold")
    check_choice(rule, "rule", ("components", "maxima"))
    check_int(radius, "radius", 1)
    check_int(min_pixels, "min_pixels", 1)
    above = a >= threshold
    if rule == "components":
        n, lab, stats, _ = cv2.connectedComponentsWithStats(above.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)
        n -= 1
        peak = np.full(n + 1, -np.inf)
        np.maximum.at(peak, lab.ravel(), a.ravel())
        first = _first_in_raster(lab, a, n, peak)
        pixels = stats[1:, cv2.CC_STAT_AREA].astype(np.int64)
        keep = pixels >= min_pixels
        first, pixels, probs = first[keep], pixels[keep], peak[1:][keep]
    else:
        k = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
        local = cv2.dilate(a, k, borderType=cv2.BORDER_CONSTANT, borderValue=-np.inf)
        is_max = above & (a == local)
        n, lab = cv2.connectedComponents(is_max.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)
        n -= 1
        # touching maxima are equal (each is >= the other): a connected set of them is one plateau, one detection
        first = np.full(n, -1, np.int64)
        flat = lab.ravel()
        idx = np.nonzero(flat)[0]
        u, pos = np.unique(flat[idx], return_index=True)
        first[u - 1] = idx[pos]
        probs = a.ravel()[first] if n else np.zeros(0)
        pixels = np.ones(n, np.int64)
    rows, cols = np.divmod(first, a.shape[1]) if len(first) else (np.zeros(0, np.int64), np.zeros(0, np.int64))
    xy = np.stack([np.floor((cols + 0.5) * f), np.floor((rows + 0.5) * f)], 1).astype(np.int64).reshape(-1, 2)
    order = np.lexsort((xy[:, 0], xy[:, 1], -np.asarray(probs, np.float64))) if len(first) else np.zeros(0, int)
    return Detections(np.asarray(probs, np.float64)[order], xy[order], np.asarray(pixels, np.int64)[order])


def write_detections_csv(path: str | os.PathLike, dets: Any) -> Path:
    """Write ``prob,x,y`` lines (no header), the format the CAMELYON16 evaluation reads.

    Probabilities are written with ``repr`` (read back exactly); ``dets`` is a :class:`Detections` or
    ``(prob, x, y)`` rows.
    """
    rows = dets.rows() if isinstance(dets, Detections) else [(float(p), int(x), int(y)) for p, x, y in dets]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        for p, x, y in rows:
            if not math.isfinite(p):
                raise WSOLValueError(f"a detection probability is not finite: {p}")
            fh.write(f"{p!r},{x},{y}\n")
    return path


def read_detections_csv(path: str | os.PathLike) -> Detections:
    """Read a ``prob,x,y`` CSV (the official reader's format; a header line is skipped)."""
    probs, xy = [], []
    with open(path, newline="") as fh:
        for i, row in enumerate(csv.reader(fh)):
            if not row or not "".join(row).strip():
                continue
            try:
                p, x, y = float(row[0]), int(row[1]), int(row[2])
            except (ValueError, IndexError):
                if i == 0:
                    continue  # a header
                raise WSOLValueError(
                    f"{str(path)!r} line {i + 1}: expected prob,x,y with integer x, y, got {row}") from None
            probs.append(p)
            xy.append((x, y))
    return Detections(np.asarray(probs, np.float64), np.asarray(xy, np.int64).reshape(-1, 2),
                      np.ones(len(probs), np.int64))
