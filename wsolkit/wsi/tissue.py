"""Tissue detection: Otsu's threshold on a low-resolution view of the slide.

The saturation channel (HSV S) separates stained tissue from the white glass well on H&E slides; the grey channel
(tissue = darker) is the alternative. The threshold is computed once per slide at a coarse level.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from wsolkit._checks import ShapeError, WSOLTypeError, check_choice, check_int
from wsolkit.wsi.readers import read_level, to_rgb

__all__ = ["TISSUE_CHANNELS", "tissue_channel", "otsu_threshold", "tissue_mask", "SlideTissue", "slide_tissue",
           "NoTissueWarning", "MIN_CONTRAST"]

#: smallest difference (channel levels) between the mean of the two classes Otsu separates for them to be tissue and
#: glass: below it the view is one population (blank glass, noise) and holds no tissue
MIN_CONTRAST = 20


class NoTissueWarning(UserWarning):
    """The tissue detection found no tissue on a slide (blank glass): its heatmap is empty."""

#: channels of :func:`tissue_channel`
TISSUE_CHANNELS = ("saturation", "gray")


def tissue_channel(rgb: np.ndarray, channel: str = "saturation") -> np.ndarray:
    """The uint8 channel the tissue threshold is applied to.

    Shape:
        ``rgb`` ``(h, w, 3|4)`` uint8 -> ``(h, w)`` uint8.

    Example:
        >>> tissue_channel(np.array([[[255, 255, 255], [230, 150, 200]]], np.uint8)).tolist()
        [[0, 89]]
    """
    check_choice(channel, "channel", TISSUE_CHANNELS)
    rgb = to_rgb(rgb, "rgb")
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
class SlideTissue:
    """A slide's tissue mask at a low ``level`` (``downsample`` from level 0) and the threshold that made it."""

    threshold: int
    level: int
    downsample: float
    mask: np.ndarray  # bool (h, w) at `level`
    channel: str = "saturation"

    def fraction(self, x: float, y: float, width: float, height: float) -> float:
        """Tissue fraction of the level-0 box ``[x, x + width) x [y, y + height)`` (outer pixel cover)."""
        d = self.downsample
        x0, y0 = int(np.floor(x / d)), int(np.floor(y / d))
        x1, y1 = int(np.ceil((x + width) / d)), int(np.ceil((y + height) / d))
        block = self.mask[max(y0, 0) : max(y1, y0 + 1), max(x0, 0) : max(x1, x0 + 1)]
        return float(block.mean()) if block.size else 0.0


def slide_tissue(reader: Any, level: int = 6, channel: str = "saturation", threshold: int | None = None,
                 max_size: int | None = None, min_contrast: int = MIN_CONTRAST) -> SlideTissue:
    """Otsu tissue mask of a slide, read whole at ``level`` (the coarsest level when the slide has fewer).

    Args:
        reader: a :class:`~wsolkit.wsi.SlideReader`.
        level: pyramid level of the mask.
        channel: ``"saturation"`` or ``"gray"``.
        threshold: fixed 0-255 threshold instead of Otsu.
        max_size: when given, the finest level at or above ``level`` whose longer side is ``<= max_size`` is used
            instead (keeps the thumbnail small whatever the slide); when no level is that small, the coarsest level
            is read in bands and shrunk to ``max_size`` (``INTER_AREA``), so memory stays bounded.
        min_contrast: with Otsu's threshold, the two classes' mean values must differ by at least this many levels;
            otherwise the view is one population (Otsu always splits, even blank glass): glass — an empty mask —
            when its mean saturation is below ``2 * min_contrast`` (grey: above ``255 - 2 * min_contrast``), else
            tissue everywhere.

    Example:
        >>> from wsolkit.wsi.readers import InMemorySlide
        >>> img = np.full((64, 64, 3), 255, np.uint8); img[:32] = (230, 150, 200)
        >>> t = slide_tissue(InMemorySlide.from_array(img, 3), level=2)
        >>> t.mask.shape, t.fraction(0, 0, 64, 64)
        ((16, 16), 0.5)
    """
    check_int(level, "level", 0)
    check_choice(channel, "channel", TISSUE_CHANNELS)
    n = len(reader.level_dimensions)
    lv = min(level, n - 1)
    if max_size is not None:
        check_int(max_size, "max_size", 1)
        small = [i for i in range(n) if max(reader.level_dimensions[i]) <= max_size]
        lv = min(small) if small else n - 1
    check_int(min_contrast, "min_contrast", 0, 255)
    rgb, down = read_level(reader, lv, max_size)
    chan = tissue_channel(rgb, channel)
    thr = otsu_threshold(chan) if threshold is None else check_int(threshold, "threshold", 0, 255)
    mask = chan > thr if channel == "saturation" else chan <= thr
    if threshold is None and (not mask.any() or not (~mask).any()
                              or abs(float(chan[mask].mean()) - float(chan[~mask].mean())) < min_contrast):
        # one population: glass (low saturation / bright grey) or tissue everywhere
        m = float(chan.mean())
        glass = m < 2 * min_contrast if channel == "saturation" else m > 255 - 2 * min_contrast
        mask = np.full_like(mask, not glass)
    return SlideTissue(thr, lv, down, mask, channel)
