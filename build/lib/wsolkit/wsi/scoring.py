"""Slide-level localization scores of a stitched heatmap against the slide's rasterised annotation.

The heatmap is already normalised once per slide (:func:`~wsolkit.wsi.heatmap`), so it is streamed band by band
through :class:`~wsolkit.metrics.LocalizationMeter` with ``normalize=False``: the meter's integer histograms make
the banded result exactly the metric of the full arrays, in bounded memory. The annotation is rasterised at the
heatmap's resolution (a heatmap pixel covers ``factor`` level-0 pixels) one band at a time.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wsolkit._checks import ShapeError, WSOLTypeError, check_int
from wsolkit.metrics import LocalizationMeter
from wsolkit.wsi.annotations import Annotations, read_annotations

__all__ = ["slide_meter", "slide_metrics", "SUMMARY_KEYS", "write_metrics_csv", "plot_slide_metrics"]

#: scalar metrics reported per slide (percent, as the meter's compute; Dice / IoU at the mIoU-best threshold)
SUMMARY_KEYS = ("pxap", "tp_star", "fn_star", "fp_star", "tn_star", "dice_fg", "iou_fg", "miou", "best_threshold")


def _mask_source(annotation: Any, hm: Any, slide_dims: tuple[int, int] | None) -> Any:
    if annotation is None:
        return lambda y, n: np.zeros((n, hm.shape[1]), np.uint8)
    if isinstance(annotation, (str, os.PathLike)):
        annotation = read_annotations(annotation)
    if isinstance(annotation, Annotations):
        if slide_dims is not None:
            annotation.check_within(slide_dims)
        f = float(hm.factor)
        return lambda y, n: annotation.rasterize((0, y, hm.shape[1], n), f)
    a = np.asarray(annotation)
    if a.shape != tuple(hm.shape):
        raise ShapeError(f"`annotation` as an array must have the heatmap's shape {tuple(hm.shape)}, got {a.shape}")
    return lambda y, n: a[y : y + n]


def slide_meter(heatmap: Any, annotation: Any, *, meter: LocalizationMeter | None = None,
                slide_dims: tuple[int, int] | None = None, band: int = 512) -> LocalizationMeter:
    """Stream a slide into a meter (a new ``LocalizationMeter(normalize=False)`` unless given; returned).

    Args:
        heatmap: a :class:`~wsolkit.wsi.Heatmap` (normalised) — or any ``(H, W)`` array with a ``factor``
            attribute when ``annotation`` is an :class:`Annotations`.
        annotation: :class:`~wsolkit.wsi.Annotations`, an annotation file, a ``(H, W)`` mask array at the
            heatmap's resolution (0 / 1 / 255 = ignored), or ``None`` (a normal slide: every pixel background).
        meter: accumulate into this meter (e.g. one per dataset); it must not normalise (maps are per slide).
        slide_dims: level-0 ``(width, height)`` to check the annotation lies on the slide.
        band: heatmap rows per update.
    """
    if meter is None:
        meter = LocalizationMeter(normalize=False, sync_on_compute=False)  # one slide: local to its rank
    if not isinstance(meter, LocalizationMeter):
        raise WSOLTypeError(f"`meter` must be a LocalizationMeter, got {type(meter).__name__}")
    if meter.normalize:
        raise WSOLTypeError("`meter` must be built with normalize=False: heatmaps are normalised once per slide")
    check_int(band, "band", 1)
    masks = _mask_source(annotation, heatmap, slide_dims)
    data = heatmap.map if hasattr(heatmap, "map") else heatmap
    h = data.shape[0]
    for y in range(0, h, band):
        n = min(band, h - y)
        v = torch.from_numpy(np.ascontiguousarray(np.asarray(data[y : y + n], np.float32)))
        m = torch.from_numpy(np.ascontiguousarray(masks(y, n), dtype=np.uint8))
        meter.update(v[None], m[None])
    return meter


def slide_metrics(heatmap: Any, annotation: Any, *, num_thresholds: int = 1000, band: int = 512,
                  slide_dims: tuple[int, int] | None = None) -> dict[str, Any]:
    """PxAP, TP*/FN*/FP*/TN*, Dice / IoU (percent) of one slide's heatmap (see :func:`slide_meter`).

    Example:
        >>> hm = np.zeros((8, 8), np.float32); hm[2:6, 2:6] = 1.0
        >>> mask = np.zeros((8, 8), np.uint8); mask[2:6, 2:6] = 1
        >>> slide_metrics(hm, mask)["pxap"]
        100.0
    """
    meter = LocalizationMeter(num_thresholds=num_thresholds, normalize=False, sync_on_compute=False)
    r = slide_meter(heatmap, annotation, meter=meter, band=band, slide_dims=slide_dims).compute()
    return r


def write_metrics_csv(path: str | os.PathLike, rows: Sequence[dict[str, Any]]) -> Path:
    """One row per slide (``slide`` first, then the columns of the first row)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow(r)
    return path


def plot_slide_metrics(path: str | os.PathLike, rows: Sequence[dict[str, Any]], key: str = "pxap",
                       dataset: float | None = None) -> Path:
    """A bar chart of ``key`` per slide, with the dataset-level value as a line (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [str(r["slide"]) for r in rows]
    vals = [float(r.get(key, float("nan"))) for r in rows]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.4 * len(rows) + 2), 3.2))
    ax.bar(range(len(vals)), vals, color="tab:blue")
    ax.set_xticks(range(len(vals)), names, rotation=60, ha="right", fontsize=7)
    if dataset is not None:
        ax.axhline(dataset, color="tab:red", ls="--", label=f"dataset {key} {dataset:.1f}")
        ax.legend(fontsize=7)
    ax.set_ylabel(key)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
