"""Heatmaps and scores of many slides, sharded over ``torch.distributed`` ranks.

:func:`run_slides` gives slide ``i`` to rank ``i % world_size``; each rank writes its slides' files; the
dataset-level meter merges through the meters' DDP contract (``sync``: an ``all_reduce`` of integer histograms),
and per-slide rows are gathered to rank 0, which writes ``slides.csv``, ``summary.json`` and the figure. Results
do not depend on the number of processes. ``torchrun --nproc-per-node N -m wsolkit slide ...`` runs it on one
machine, ``torchrun --nnodes M --node-rank R --rdzv-endpoint HOST:PORT ...`` across machines.

Methods come from the library's checkpoints (:func:`wsolkit.training.save_checkpoint` /
:func:`wsolkit.training.load_method`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from wsolkit._checks import WSOLValueError
from wsolkit.metrics import LocalizationMeter
from wsolkit.wsi.annotations import read_annotations
from wsolkit.wsi.export import save_heatmap_tiff, save_npy, save_overlay_png
from wsolkit.wsi.heatmap import heatmap
from wsolkit.wsi.readers import open_slide
from wsolkit.wsi.scoring import SUMMARY_KEYS, plot_slide_metrics, slide_meter, write_metrics_csv

__all__ = ["SlideJob", "run_slides"]

@dataclass(frozen=True)
class SlideJob:
    """One slide to process: ``name``, ``path`` (or a reader) and an optional ``annotation`` file / object."""

    name: str
    path: Any
    annotation: Any = None


def _dist() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def run_slides(
    jobs: Sequence[SlideJob],
    method: nn.Module,
    out_dir: str | os.PathLike,
    *,
    exports: Sequence[str] = ("npy", "png", "tiff"),
    zarr: bool = False,
    num_thresholds: int = 1000,
    progress: Callable[[str], None] | None = None,
    **heatmap_kwargs: Any,
) -> dict[str, Any]:
    """Heatmap, exports and scores of every slide; this rank processes ``jobs[rank::world_size]``.

    Args:
        jobs: the slides (unique names).
        method: any module returning ``WSOLOutput``.
        out_dir: per slide ``<name>.npy`` / ``<name>_overlay.png`` / ``<name>_heatmap.tif`` (``exports``),
            ``<name>.zarr`` with ``zarr=True``; rank 0 writes ``slides.csv``, ``summary.json``, ``pxap.png``.
        exports: any of ``"npy"``, ``"png"``, ``"tiff"``.
        zarr: stream each heatmap into ``<name>.zarr`` (bounded memory) instead of memory.
        num_thresholds: T of the meters.
        progress: called with one line per slide (e.g. ``print``).
        **heatmap_kwargs: passed to :func:`~wsolkit.wsi.heatmap`.

    Returns:
        ``{"slides": rows of every rank (in job order), "dataset": dataset metrics (annotated slides and normal
        slides pooled), "world_size": ...}`` on every rank.
    """
    import torch.distributed as dist

    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise WSOLValueError(f"slide names must be unique, got duplicates {dup}")
    bad = set(exports) - {"npy", "png", "tiff"}
    if bad:
        raise WSOLValueError(f"unknown `exports` {sorted(bad)}; choose among npy, png, tiff")
    rank, world = _dist()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dataset = LocalizationMeter(num_thresholds=num_thresholds, normalize=False)
    rows: list[tuple[int, dict[str, Any]]] = []
    for i in range(rank, len(jobs), world):
        job = jobs[i]
        t0 = time.perf_counter()
        reader = open_slide(job.path, heatmap_kwargs.get("backend", "tiffslide"))
        dims = tuple(reader.level_dimensions[0])
        ann = read_annotations(job.annotation).check_within(dims) if isinstance(job.annotation, (str, os.PathLike)) \
            else job.annotation
        hm = heatmap(reader, method, out=str(out / f"{job.name}.zarr") if zarr else None, **heatmap_kwargs)
        row: dict[str, Any] = {"slide": job.name, "tiles": len(hm.logits), "height": hm.shape[0],
                               "width": hm.shape[1], "lo": hm.value_range[0], "hi": hm.value_range[1]}
        if len(hm.logits):
            row["max_prob"] = float(hm.logits.softmax(1)[:, hm.target if hm.target is not None else -1].max())
        if ann is not None:
            m = slide_meter(hm, ann, meter=LocalizationMeter(num_thresholds=num_thresholds, normalize=False,
                                                                   sync_on_compute=False),
                            slide_dims=dims)
            dataset.merge(m)
            r = m.compute()
            row.update({k: float(r[k]) for k in SUMMARY_KEYS if k in r})
        if "npy" in exports:
            save_npy(out / f"{job.name}.npy", hm)
        if "png" in exports:
            save_overlay_png(out / f"{job.name}_overlay.png", hm, reader)
        if "tiff" in exports:
            save_heatmap_tiff(out / f"{job.name}_heatmap.tif", hm, mpp=hm.mpp)
        row["seconds"] = round(time.perf_counter() - t0, 3)
        rows.append((i, row))
        if progress is not None:
            msg = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
            progress(f"[rank {rank}/{world}] slide {i + 1}/{len(jobs)}: {msg}")
    if world > 1:
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, rows)
        rows = [r for part in gathered for r in part]
    all_rows = [r for _, r in sorted(rows, key=lambda t: t[0])]
    res = dataset.compute() if int(dataset.n_images) or world > 1 else {}  # compute() is global under DDP
    summary = {k: float(res[k]) for k in SUMMARY_KEYS if k in res}
    if rank == 0:
        write_metrics_csv(out / "slides.csv", all_rows)
        (out / "summary.json").write_text(json.dumps({"dataset": summary, "slides": len(all_rows),
                                                      "world_size": world}, indent=2))
        if any("pxap" in r for r in all_rows):
            try:
                plot_slide_metrics(out / "pxap.png", [r for r in all_rows if "pxap" in r], "pxap",
                                   summary.get("pxap"))
            except ImportError:  # pragma: no cover - matplotlib is optional
                pass
    return {"slides": all_rows, "dataset": summary, "world_size": world, "meter": dataset}
