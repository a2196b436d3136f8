"""``wsolkit slide``: CAM heatmaps (and scores) of whole slides with a trained method.

    wsolkit slide --method gap --checkpoint model.pt --slides DIR|CSV [--annotations DIR] --out DIR
                  [--mpp 0.5 | --level L] [--tile 512] [--overlap 64] [--target 1] [--contours]
                  [--detect-threshold 0.5] [--slide-mpp 0.25]

The method comes from a checkpoint in the library's format (``{"method", "num_classes", "options",
"state_dict"}``, see :func:`wsolkit.training.save_checkpoint`), or, for methods over a classifier (``cam`` and the
explainers), from ``--classifier timm:NAME`` (``--checkpoint`` then optionally holds the classifier's
``state_dict``). Slides: every ``.tif/.tiff/.svs/.ndpi/.mrxs`` file of a folder, or a CSV ``slide,path[,annotation]``.
Annotations: ``<slide>.xml`` / ``<slide>.geojson`` / ``<slide>.json`` in ``--annotations``; with that flag, a slide
without a file is scored as normal (all background). Under ``torchrun`` slides are sharded over the ranks.

Every slide gets ``detections/<slide>.csv`` (CAMELYON16's ``prob,x,y``, level-0 pixels); with annotations, the
summary holds the CAMELYON16 FROC and slide AUC (:func:`wsolkit.metrics.froc`). ``--contours`` writes QuPath GeoJSON
and ASAP XML. A slide that fails is recorded in ``slides.csv`` (``status=failed``, the error) and the others run; the
exit code is then 1.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path
from typing import Any

from wsolkit._checks import WSOLValueError
from wsolkit.cli._args import positive_int

__all__ = ["register", "run", "read_slide_list", "SLIDE_SUFFIXES"]

#: slide file suffixes found in a ``--slides`` folder
SLIDE_SUFFIXES = (".tif", ".tiff", ".svs", ".ndpi", ".mrxs", ".scn", ".bif")


def read_slide_list(slides: str, annotations: str | None = None) -> list[Any]:
    """``SlideJob``s from a folder or a CSV (``slide,path[,annotation]``, header optional)."""
    from wsolkit.wsi import Annotations, SlideJob

    src = Path(slides)
    jobs: list[tuple[str, str, str | None]] = []
    if src.is_dir():
        for p in sorted(src.iterdir()):
            if p.is_file() and p.suffix.lower() in SLIDE_SUFFIXES:
                jobs.append((p.stem, str(p), None))
    elif src.is_file():
        with open(src, newline="") as f:
            for n, row in enumerate(csv.reader(f), 1):
                if not row or row[0].startswith("#") or (n == 1 and row[0].strip().lower() == "slide"):
                    continue
                if len(row) not in (2, 3):
                    raise WSOLValueError(f"{slides!r} line {n}: expected slide,path[,annotation], got {row}")
                path = Path(row[1]) if Path(row[1]).is_absolute() else src.parent / row[1]
                ann = (row[2] if Path(row[2]).is_absolute() else str(src.parent / row[2])) if len(row) == 3 and \
                    row[2] else None
                jobs.append((row[0], str(path), ann))
    else:
        raise WSOLValueError(f"`--slides` {slides!r} is neither a folder nor a CSV file")
    if not jobs:
        raise WSOLValueError(f"`--slides` {slides!r} holds no slide ({'/'.join(SLIDE_SUFFIXES)})")
    out = []
    for name, path, ann in jobs:
        a: Any = ann
        if annotations is not None and ann is None:
            found = [Path(annotations) / f"{name}{s}" for s in (".xml", ".geojson", ".json")]
            found = [p for p in found if p.is_file()]
            a = str(found[0]) if found else Annotations([], source=f"{name} (no annotation file: normal)")
        out.append(SlideJob(name, path, a))
    return out


def _build_method(args: argparse.Namespace) -> Any:
    from wsolkit.loading import load_model

    if args.classifier is not None and args.method is None:
        raise WSOLValueError("`--classifier` needs `--method` (e.g. cam, gradcam)")
    if args.checkpoint is not None:  # a wsolkit checkpoint, or the state_dict of --classifier (weights_only=True)
        return load_model(args.checkpoint, method=args.method, classifier=args.classifier,
                          num_classes=args.num_classes)
    if args.classifier is None:
        raise WSOLValueError("pass `--checkpoint PATH` (a wsolkit checkpoint) or `--classifier timm:NAME`")
    return load_model(args.classifier, method=args.method, num_classes=args.num_classes, pretrained=args.pretrained)


def run(args: argparse.Namespace) -> int:
    """Run the command; returns the exit code."""
    import torch.distributed as dist

    from wsolkit.wsi import run_slides

    if os.environ.get("WORLD_SIZE", "1") != "1" and not dist.is_initialized():
        dist.init_process_group(backend=args.backend_dist)
    from wsolkit._checks import WSOLTypeError

    try:
        try:
            jobs = read_slide_list(args.slides, args.annotations)
            method = _build_method(args)
        except (WSOLValueError, WSOLTypeError) as exc:
            print(f"wsolkit slide: error: {exc}", file=sys.stderr)
            return 2
        kw = dict(tile=args.tile, overlap=args.overlap, downsample=args.downsample, batch_size=args.batch_size,
                  num_workers=args.workers, target=args.target, tissue=not args.no_tissue, backend=args.reader)
        if args.mpp is not None:
            kw["mpp"] = args.mpp
        if args.level is not None:
            kw["level"] = args.level
        res = run_slides(jobs, method, args.out, exports=args.exports, zarr=args.zarr, progress=print,
                         detect=None if args.no_detections else args.detect_threshold, detect_rule=args.detect_rule,
                         contours=args.contours, slide_mpp=args.slide_mpp, froc_level=args.froc_level,
                         froc_resolution=args.froc_resolution, **kw)
        if res is not None and (not dist.is_initialized() or dist.get_rank() == 0):
            rows = res["slides"]
            cols = ["slide", "status", "tiles", "detections", "pxap", "dice_fg", "seconds"]
            print("  ".join(f"{c:>12}" for c in cols))
            for r in rows:
                print("  ".join(f"{r[c]:>12.4g}" if isinstance(r.get(c), float) else f"{str(r.get(c, '')):>12}"
                                for c in cols))
            if res["dataset"]:
                print("dataset:", ", ".join(f"{k}={v:.4g}" for k, v in res["dataset"].items()))
            c16 = res.get("camelyon16") or {}
            if "froc" in c16 or "slide_auc" in c16:
                print("CAMELYON16:", ", ".join(f"{k}={c16[k]:.4g}" for k in ("froc", "slide_auc") if k in c16))
            for r in rows:
                if r.get("status") == "failed":
                    print(f"error: slide {r['slide']}: {r.get('error')}", file=sys.stderr)
        failed = res["failed"] if res is not None else []
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if failed:
        print(f"{len(failed)} of {len(jobs)} slides failed (see slides.csv): {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``slide`` command."""
    p = subparsers.add_parser("slide", help="CAM heatmaps and scores of whole slides",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--method", default=None, help="registered method name (checked against the checkpoint)")
    p.add_argument("--checkpoint", default=None, help="wsolkit checkpoint (torch.save dict)")
    p.add_argument("--classifier", default=None, help="timm:NAME / tv:NAME for methods over a classifier")
    p.add_argument("--num-classes", type=int, default=None, help="classes of --classifier")
    p.add_argument("--pretrained", action="store_true", help="pretrained weights for --classifier")
    p.add_argument("--slides", required=True, help="folder of slides or CSV slide,path[,annotation]")
    p.add_argument("--annotations", default=None, help="folder of <slide>.xml / .geojson annotations")
    p.add_argument("--out", required=True, help="output folder")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--mpp", type=float, default=None, help="microns per pixel to read at (e.g. 0.5)")
    g.add_argument("--level", type=int, default=None, help="pyramid level to read")
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--overlap", type=int, default=64)
    p.add_argument("--downsample", type=int, default=1, help="heatmap pixel = this many read pixels")
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers reading tiles")
    p.add_argument("--target", type=int, default=None, help="class to map (default: 1 for binary models)")
    p.add_argument("--no-tissue", action="store_true", help="process every tile, not only tissue")
    p.add_argument("--zarr", action="store_true", help="stream heatmaps to <slide>.zarr (bounded memory)")
    p.add_argument("--exports", nargs="*", default=["npy", "png", "tiff"], choices=["npy", "png", "tiff"])
    p.add_argument("--reader", default="tiffslide", choices=["tiffslide", "openslide"])
    p.add_argument("--slide-mpp", type=float, default=None,
                   help="microns per pixel of level 0 for slides whose file states none")
    p.add_argument("--detect-threshold", type=float, default=0.5,
                   help="heatmap threshold of the detections written to detections/<slide>.csv (prob,x,y)")
    p.add_argument("--detect-rule", default="components", choices=["components", "maxima"])
    p.add_argument("--no-detections", action="store_true", help="write no detections (and no FROC)")
    p.add_argument("--contours", action="store_true",
                   help="write the regions above the threshold as contours/<slide>.geojson (QuPath) and .xml (ASAP)")
    p.add_argument("--froc-level", type=int, default=5, help="CAMELYON16 evaluation mask level")
    p.add_argument("--froc-resolution", type=float, default=0.243, help="CAMELYON16 level-0 µm per pixel")
    p.add_argument("--backend-dist", default="gloo", help="torch.distributed backend under torchrun")
    p.set_defaults(func=run)
    return p


if __name__ == "__main__":  # pragma: no cover
    from wsolkit.cli import main

    sys.exit(main(["slide", *sys.argv[1:]]))
