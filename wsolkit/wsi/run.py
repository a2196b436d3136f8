"""Heatmaps and scores of many slides, sharded over ``torch.distributed`` ranks.

:func:`run_slides` gives slide ``i`` to rank ``i % world_size``; each rank writes its slides' files; the
dataset-level meter merges through the meters' DDP contract (``sync``: an ``all_reduce`` of integer histograms),
and per-slide rows are gathered to rank 0, which writes ``slides.csv``, ``summary.json`` and the figure. Results
do not depend on the number of processes as long as every process uses the same number of intra-op threads
(``torch.set_num_threads`` / ``OMP_NUM_THREADS``): with other counts the convolutions may sum in another order and
heatmaps differ in the last float32 bits. ``torchrun --nproc-per-node N -m wsolkit slide ...`` runs it on one
machine, ``torchrun --nnodes M --node-rank R --rdzv-endpoint HOST:PORT ...`` across machines.

Methods come from the library's checkpoints (:func:`wsolkit.training.save_checkpoint` /
:func:`wsolkit.training.load_method`).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from wsolkit._checks import WSOLValueError, check_number
from wsolkit.metrics import LocalizationMeter
from wsolkit.metrics.froc import (
    CAMELYON16_LEVEL,
    CAMELYON16_RESOLUTION,
    FP_RATES,
    evaluation_mask,
    fp_tp_probs,
    froc_curve,
    froc_score,
    itc_labels,
    slide_auc,
)
from wsolkit.wsi.annotations import read_annotations
from wsolkit.wsi.contours import regions, write_asap_xml, write_geojson
from wsolkit.wsi.detections import Detections, detections, write_detections_csv
from wsolkit.wsi.export import save_heatmap_tiff, save_npy, save_overlay_png
from wsolkit.wsi.heatmap import heatmap
from wsolkit.wsi.readers import open_slide
from wsolkit.wsi.readers import slide_mpp as slide_mpp_of
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


def _evaluation(ann: Any, dims: tuple[int, int], level: int) -> np.ndarray:
    """The tumour mask of ``ann`` at CAMELYON16's evaluation level (downsample ``2**level``, as the official masks)."""
    d = 2**level
    w, h = math.ceil(dims[0] / d), math.ceil(dims[1] / d)
    return ann.rasterize((0, 0, w, h), float(d)).astype(bool)


def _one_slide(job: SlideJob, method: nn.Module, out: Path, exports: Sequence[str], zarr: bool, num_thresholds: int,
               detect: float | None, detect_rule: str, contours: bool, slide_mpp: float | None, froc_level: int,
               froc_resolution: float, heatmap_kwargs: dict[str, Any]) -> tuple[dict[str, Any], Any, Any]:
    t0 = time.perf_counter()
    reader = open_slide(job.path, heatmap_kwargs.get("backend", "tiffslide"))
    if slide_mpp is not None and slide_mpp_of(reader) is None:
        try:
            reader.mpp = float(slide_mpp)  # the file states none: use the one given
        except AttributeError:
            raise WSOLValueError(f"cannot set the mpp of a {type(reader).__name__}; open the slide with "
                                 f"wsolkit.wsi.open_slide") from None
    dims = tuple(reader.level_dimensions[0])
    ann = read_annotations(job.annotation).check_within(dims) if isinstance(job.annotation, (str, os.PathLike)) \
        else job.annotation
    hm = heatmap(reader, method, out=str(out / f"{job.name}.zarr") if zarr else None, **heatmap_kwargs)
    no_tissue = bool(hm.meta.get("no_tissue"))
    row: dict[str, Any] = {"slide": job.name, "status": "no tissue" if no_tissue else "ok", "tiles": len(hm.logits),
                           "height": hm.shape[0], "width": hm.shape[1], "lo": hm.value_range[0],
                           "hi": hm.value_range[1]}
    max_prob = 0.0
    if len(hm.logits):
        max_prob = float(hm.logits.softmax(1)[:, hm.target if hm.target is not None else -1].max())
        row["max_prob"] = max_prob
    meter = None
    if ann is not None:
        meter = slide_meter(hm, ann, meter=LocalizationMeter(num_thresholds=num_thresholds, normalize=False,
                                                             sync_on_compute=False), slide_dims=dims)
        r = meter.compute()
        row.update({k: float(r[k]) for k in SUMMARY_KEYS if k in r})
    froc_part = None
    if detect is not None:
        dets = detections(hm, detect, rule=detect_rule)
        # across slides a heatmap normalised per slide is not comparable: a detection's probability is its heatmap
        # value times the slide's highest tile probability (the classifier's confidence that the slide has tumour)
        dets = Detections(dets.probs * max_prob, dets.xy, dets.pixels)
        write_detections_csv(out / "detections" / f"{job.name}.csv", dets)
        row["detections"] = len(dets)
        if ann is not None:
            tumour = _evaluation(ann, dims, froc_level)
            if tumour.any():
                lab = evaluation_mask(tumour, froc_resolution, froc_level)
                part = fp_tp_probs(dets, lab, itc_labels(lab, froc_resolution, froc_level), froc_level)
            else:
                part = fp_tp_probs(dets, None, (), froc_level)
            froc_part = (part, int(tumour.any()), max_prob)
    if contours:
        rs = regions(hm, detect if detect is not None else 0.5)
        write_geojson(out / "contours" / f"{job.name}.geojson", rs)
        write_asap_xml(out / "contours" / f"{job.name}.xml", rs)
        row["regions"] = len(rs)
    if "npy" in exports:
        save_npy(out / f"{job.name}.npy", hm)
    if "png" in exports:
        save_overlay_png(out / f"{job.name}_overlay.png", hm, reader)
    if "tiff" in exports:
        save_heatmap_tiff(out / f"{job.name}_heatmap.tif", hm, mpp=hm.mpp)
    close = getattr(reader, "close", None)
    if close is not None and reader is not job.path:
        close()
    row["seconds"] = round(time.perf_counter() - t0, 3)
    return row, meter, froc_part


def run_slides(
    jobs: Sequence[SlideJob],
    method: nn.Module,
    out_dir: str | os.PathLike,
    *,
    exports: Sequence[str] = ("npy", "png", "tiff"),
    zarr: bool = False,
    num_thresholds: int = 1000,
    progress: Callable[[str], None] | None = None,
    detect: float | None = 0.5,
    detect_rule: str = "components",
    contours: bool = False,
    slide_mpp: float | None = None,
    froc_level: int = CAMELYON16_LEVEL,
    froc_resolution: float = CAMELYON16_RESOLUTION,
    **heatmap_kwargs: Any,
) -> dict[str, Any]:
    """Heatmap, exports, detections and scores of every slide; this rank processes ``jobs[rank::world_size]``.

    A slide that fails (unreadable file, bad annotation, ...) is recorded in ``slides.csv`` with ``status=failed``
    and its error; the other slides are processed, and the summary is written. A slide without tissue gives an
    empty heatmap and ``status=no tissue``.

    Args:
        jobs: the slides (unique names).
        method: any module returning ``WSOLOutput``.
        out_dir: per slide ``<name>.npy`` / ``<name>_overlay.png`` / ``<name>_heatmap.tif`` (``exports``),
            ``<name>.zarr`` with ``zarr=True``, ``detections/<name>.csv`` (CAMELYON16 ``prob,x,y``),
            ``contours/<name>.geojson`` and ``.xml``; rank 0 writes ``slides.csv``, ``summary.json``, ``pxap.png``.
        exports: any of ``"npy"``, ``"png"``, ``"tiff"``.
        zarr: stream each heatmap into ``<name>.zarr`` (bounded memory) instead of memory.
        num_thresholds: T of the meters.
        progress: called with one line per slide (e.g. ``print``).
        detect: threshold of :func:`~wsolkit.wsi.detections` on the normalised heatmap (``None``: no detections).
            A detection's probability is its heatmap value times the slide's highest tile probability, so that
            slides normalised one by one compare. With annotations for every slide, the CAMELYON16 FROC
            (:func:`wsolkit.metrics.froc`) and the slide AUC (score: the highest tile probability) are in the summary.
        detect_rule: ``"components"`` or ``"maxima"``.
        contours: write the regions above ``detect`` (0.5 when ``detect`` is None) as QuPath GeoJSON and ASAP XML.
        slide_mpp: microns per pixel of level 0 for slides whose file states none.
        froc_level: the evaluation's ``EVALUATION_MASK_LEVEL`` (downsample ``2**froc_level``).
        froc_resolution: the evaluation's ``L0_RESOLUTION`` (µm per level-0 pixel).
        **heatmap_kwargs: passed to :func:`~wsolkit.wsi.heatmap`.

    Returns:
        ``{"slides": rows of every rank (in job order), "dataset": dataset metrics (annotated slides and normal
        slides pooled), "failed": names of the slides that failed, "froc": ..., "world_size": ...}`` on every rank.
    """
    import torch.distributed as dist

    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise WSOLValueError(f"slide names must be unique, got duplicates {dup}")
    bad = set(exports) - {"npy", "png", "tiff"}
    if bad:
        raise WSOLValueError(f"unknown `exports` {sorted(bad)}; choose among npy, png, tiff")
    if slide_mpp is not None:
        check_number(slide_mpp, "slide_mpp", 0.0, low_inclusive=False)
    rank, world = _dist()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dataset = LocalizationMeter(num_thresholds=num_thresholds, normalize=False)
    rows: list[tuple[int, dict[str, Any]]] = []
    frocs: list[tuple[int, Any]] = []
    for i in range(rank, len(jobs), world):
        job = jobs[i]
        t0 = time.perf_counter()
        try:
            row, meter, froc_part = _one_slide(job, method, out, exports, zarr, num_thresholds, detect, detect_rule,
                                               contours, slide_mpp, froc_level, froc_resolution, heatmap_kwargs)
        except (KeyboardInterrupt, MemoryError):  # pragma: no cover
            raise
        except Exception as e:  # noqa: BLE001 - one bad slide is recorded, the others run
            row = {"slide": job.name, "status": "failed", "error": f"{type(e).__name__}: {e}",
                   "seconds": round(time.perf_counter() - t0, 3)}
            meter = froc_part = None
        if meter is not None:
            dataset.merge(meter)
        rows.append((i, row))
        frocs.append((i, froc_part))
        if progress is not None:
            msg = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
            progress(f"[rank {rank}/{world}] slide {i + 1}/{len(jobs)}: {msg}")
    if world > 1:
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, (rows, frocs))
        rows = [r for part in gathered for r in part[0]]
        frocs = [r for part in gathered for r in part[1]]
    all_rows = [r for _, r in sorted(rows, key=lambda t: t[0])]
    failed = [r["slide"] for r in all_rows if r.get("status") == "failed"]
    res = dataset.compute() if int(dataset.n_images) or world > 1 else {}  # compute() is global under DDP
    summary = {k: float(res[k]) for k in SUMMARY_KEYS if k in res}
    froc_summary = _froc_summary([p for _, p in sorted(frocs, key=lambda t: t[0])], len(all_rows) - len(failed))
    if rank == 0:
        write_metrics_csv(out / "slides.csv", all_rows)
        (out / "summary.json").write_text(json.dumps({
            "dataset": summary, "camelyon16": froc_summary, "slides": len(all_rows), "failed": failed,
            "no_tissue": [r["slide"] for r in all_rows if r.get("status") == "no tissue"], "world_size": world,
        }, indent=2))
        if any("pxap" in r for r in all_rows):
            try:
                plot_slide_metrics(out / "pxap.png", [r for r in all_rows if "pxap" in r], "pxap",
                                   summary.get("pxap"))
            except ImportError:  # pragma: no cover - matplotlib is optional
                pass
    return {"slides": all_rows, "dataset": summary, "failed": failed, "camelyon16": froc_summary,
            "world_size": world, "meter": dataset}


def _froc_summary(parts: list[Any], done: int) -> dict[str, Any]:
    """FROC and slide AUC when every processed slide was evaluated against an annotation."""
    parts = [p for p in parts if p is not None]
    if not parts or len(parts) != done:
        return {}
    out: dict[str, Any] = {"slides": len(parts), "tumour_slides": sum(p[1] for p in parts)}
    slides = [p[0] for p in parts]
    if sum(s.num_tumors for s in slides):
        fps, sens = froc_curve(slides)
        score, at = froc_score(fps, sens)
        out.update({"froc": score, "sensitivity_at_fp": {str(r): float(v) for r, v in zip(FP_RATES, at)},
                    "lesions": sum(s.num_tumors for s in slides)})
    labels, scores = [p[1] for p in parts], [p[2] for p in parts]
    if 0 < sum(labels) < len(labels):
        out["slide_auc"] = slide_auc(scores, labels)
    return out
