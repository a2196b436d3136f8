"""``wsolkit evaluate``: localization metrics of CAMs stored in a folder against masks stored in a folder.

CAM files are paired with mask files by file stem (``img_001.npy`` ↔ ``img_001.png``):

- CAMs: ``.npy`` / ``.npz`` (an ``(h, w)`` or ``(C, h, w)`` float array; ``.npz`` uses the key ``cam`` or its only
  array) or a grayscale 8-bit / 16-bit ``.png`` (scaled by 1/255 or 1/65535);
- masks: grayscale PNG, ``--mask-fg-value`` (default 1) for foreground, 0 for background, ``--ignore-index``
  (default 255) for ignored pixels; any other value is an error;
- optional labels CSV ``stem,label[,pred]`` (the class map to select for ``(C, h, w)`` CAMs; with ``pred``:
  classification accuracy and top-1 localization);
- optional boxes CSV ``stem,x0,y0,x1,y1`` (inclusive pixel coordinates, one row per box): MaxBoxAcc(V2).

Every CAM is upsampled to its mask size (bilinear) and min-max normalised (``--no-normalize`` to keep values),
as in the protocol. Missing or mismatched files are named in the error; nothing is skipped silently.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wsolkit._checks import WSOLTypeError, WSOLValueError

__all__ = ["register", "run", "evaluate_folders"]

CAM_SUFFIXES = (".npy", ".npz", ".png")


def _index(folder: Path, suffixes: tuple[str, ...], what: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise WSOLValueError(f"{what} folder {str(folder)!r} does not exist")
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in suffixes:
            if p.stem in out:
                raise WSOLValueError(f"{what} folder has two files for {p.stem!r}: {out[p.stem].name} and {p.name}")
            out[p.stem] = p
    if not out:
        raise WSOLValueError(f"{what} folder {str(folder)!r} has no {'/'.join(suffixes)} file")
    return out


def _read_png(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise WSOLValueError(f"cannot read image {str(path)!r}")
    if img.ndim != 2:
        raise WSOLValueError(f"{str(path)!r} must be a single-channel (grayscale) PNG, got shape {img.shape}")
    return img


def load_cam(path: Path) -> torch.Tensor:
    """A CAM file as a float tensor ``(h, w)`` or ``(C, h, w)``."""
    suffix = path.suffix.lower()
    if suffix == ".png":
        img = _read_png(path)
        scale = 65535.0 if img.dtype == np.uint16 else 255.0
        arr = img.astype(np.float32) / scale
    else:
        try:
            data = np.load(path, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001
            raise WSOLValueError(f"cannot read CAM file {str(path)!r}: {exc}") from exc
        if suffix == ".npz":
            keys = list(data.keys())
            key = "cam" if "cam" in keys else (keys[0] if len(keys) == 1 else None)
            if key is None:
                raise WSOLValueError(f"{str(path)!r} must hold a 'cam' array or a single array, got keys {keys}")
            data = data[key]
        arr = np.asarray(data)
        if not np.issubdtype(arr.dtype, np.floating):
            raise WSOLTypeError(f"CAM {str(path)!r} must hold floating point values, got dtype {arr.dtype}")
    if arr.ndim not in (2, 3):
        raise WSOLValueError(f"CAM {str(path)!r} must have shape (h, w) or (C, h, w), got {arr.shape}")
    return torch.from_numpy(np.ascontiguousarray(arr))


def load_mask(path: Path, fg_value: int, ignore_index: int | None) -> torch.Tensor:
    """A mask PNG as uint8/int64 ``(H, W)`` with 0 / 1 / ``ignore_index``."""
    m = _read_png(path).astype(np.int64)
    allowed = {0, fg_value} | ({ignore_index} if ignore_index is not None else set())
    bad = sorted(set(np.unique(m).tolist()) - allowed)
    if bad:
        raise WSOLValueError(f"mask {str(path)!r} has values {bad[:5]} outside {sorted(allowed)}")
    out = np.where(m == fg_value, 1, m)  # fg -> 1, 0 and ignore unchanged
    return torch.from_numpy(out)


def _read_labels(path: Path) -> dict[str, tuple[int, int | None]]:
    out: dict[str, tuple[int, int | None]] = {}
    with open(path, newline="") as fh:
        for n, row in enumerate(csv.reader(fh), 1):
            if not row or row[0].startswith("#"):
                continue
            if n == 1 and len(row) >= 2 and not row[1].strip().lstrip("-").isdigit():
                continue  # header
            if len(row) not in (2, 3):
                raise WSOLValueError(f"{str(path)!r} line {n}: expected stem,label[,pred], got {row}")
            try:
                out[row[0].strip()] = (int(row[1]), int(row[2]) if len(row) == 3 and row[2].strip() else None)
            except ValueError as exc:
                raise WSOLValueError(f"{str(path)!r} line {n}: labels must be integers, got {row}") from exc
    return out


def _read_boxes(path: Path) -> dict[str, list[list[float]]]:
    out: dict[str, list[list[float]]] = {}
    with open(path, newline="") as fh:
        for n, row in enumerate(csv.reader(fh), 1):
            if not row or row[0].startswith("#"):
                continue
            if len(row) != 5:
                raise WSOLValueError(f"{str(path)!r} line {n}: expected stem,x0,y0,x1,y1, got {row}")
            try:
                box = [float(v) for v in row[1:]]
            except ValueError as exc:
                if n == 1:
                    continue  # header
                raise WSOLValueError(f"{str(path)!r} line {n}: coordinates must be numbers, got {row}") from exc
            if box[2] < box[0] or box[3] < box[1]:
                raise WSOLValueError(f"{str(path)!r} line {n}: box must satisfy x1 >= x0 and y1 >= y0, got {row}")
            out.setdefault(row[0].strip(), []).append(box)
    return out


def _missing(names: list[str], what: str) -> str:
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    return f"{len(names)} {what}: {shown}"


def evaluate_folders(
    cams_dir: str | Path,
    masks_dir: str | Path,
    labels_csv: str | Path | None = None,
    boxes_csv: str | Path | None = None,
    num_thresholds: int = 1000,
    ignore_index: int | None = 255,
    mask_fg_value: int = 1,
    normalize: bool = True,
    threshold: float | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Metrics of a folder of CAMs against a folder of masks (see the module docstring for the file formats).

    Returns:
        ``{"localization": {...}, "boxes": {...} | None, "classification": {...} | None, "n_images": N}`` with the
        curves as float64 tensors under ``["localization"]["curves"]``.
    """
    from wsolkit.metrics.meters import BoxAccuracyMeter, ClassificationMeter, LocalizationMeter

    if ignore_index is not None and ignore_index == mask_fg_value:
        raise WSOLValueError(f"`ignore_index` and `mask_fg_value` must differ, both are {ignore_index}")
    cams = _index(Path(cams_dir), CAM_SUFFIXES, "CAM")
    masks = _index(Path(masks_dir), (".png",), "mask")
    errors = []
    no_mask = sorted(set(cams) - set(masks))
    no_cam = sorted(set(masks) - set(cams))
    if no_mask:
        errors.append(_missing(no_mask, f"CAM file(s) without a mask in {str(masks_dir)!r}"))
    if no_cam:
        errors.append(_missing(no_cam, f"mask file(s) without a CAM in {str(cams_dir)!r}"))
    labels = _read_labels(Path(labels_csv)) if labels_csv is not None else None
    boxes = _read_boxes(Path(boxes_csv)) if boxes_csv is not None else None
    if labels is not None and (miss := sorted(set(cams) - set(labels))):
        errors.append(_missing(miss, f"image(s) without a label in {str(labels_csv)!r}"))
    if boxes is not None and (miss := sorted(set(cams) - set(boxes))):
        errors.append(_missing(miss, f"image(s) without a box in {str(boxes_csv)!r}"))
    if errors:
        raise WSOLValueError("; ".join(errors))
    stems = sorted(cams)
    with_preds = labels is not None and all(labels[s][1] is not None for s in stems)
    loc = LocalizationMeter(num_thresholds, ignore_index=ignore_index, normalize=normalize)
    box = BoxAccuracyMeter(num_thresholds, normalize=normalize) if boxes is not None else None
    cls = None
    if with_preds:
        n_cls = max(max(labels[s][0], labels[s][1]) for s in stems) + 1  # type: ignore[index, type-var]
        cls = ClassificationMeter(n_cls)
    from tqdm.auto import tqdm

    for stem in tqdm(stems, desc="evaluate", unit="image", disable=not progress, file=sys.stderr):
        cam = load_cam(cams[stem])
        mask = load_mask(masks[stem], mask_fg_value, ignore_index)
        if not torch.isfinite(cam).all():
            raise WSOLValueError(f"CAM {str(cams[stem])!r} holds NaN or Inf values")
        lab = torch.tensor([labels[stem][0]]) if labels is not None else None
        if cam.ndim == 3 and cam.shape[0] > 1 and lab is None:
            raise WSOLValueError(f"CAM {str(cams[stem])!r} has C={cam.shape[0]} maps: give --labels to select one")
        if cam.ndim == 3 and lab is not None and not 0 <= int(lab) < cam.shape[0]:
            raise WSOLValueError(f"label {int(lab)} of {stem!r} is outside the C={cam.shape[0]} maps of its CAM")
        c = cam[None] if cam.ndim == 3 else cam[None, None]
        try:
            loc.update(c, mask[None], lab)
        except (WSOLValueError, WSOLTypeError) as exc:
            raise WSOLValueError(f"{stem!r}: {exc}") from exc
        if box is not None:
            pred = torch.tensor([labels[stem][1]]) if cls is not None else None  # type: ignore[index]
            box.update(c, [torch.tensor(boxes[stem])], labels=lab, preds=pred, image_size=tuple(mask.shape))
        if cls is not None:
            cls.update(torch.tensor([labels[stem][1]]), lab)  # type: ignore[index]
    return {
        "localization": loc.compute(threshold=threshold),
        "boxes": box.compute() if box is not None else None,
        "classification": cls.compute() if cls is not None else None,
        "n_images": len(stems),
    }


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, torch.Tensor):
        return _jsonable(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _table(res: dict[str, Any]) -> str:
    rows = []
    loc = res["localization"]
    for key in ("pxap", "tp*", "fn*", "fp*", "tn*", "max_miou", "best_threshold", "miou", "dice_fg", "dice_bg",
                "f1+", "f1-"):
        rows.append((f"{key}", loc[key]))
    if res["boxes"] is not None:
        for key in ("maxboxacc", "maxboxacc_v2", "top1_loc", "best_threshold"):
            rows.append((f"box {key}", res["boxes"][key]))
    if res["classification"] is not None:
        rows.append(("accuracy", res["classification"]["accuracy"]))
    width = max(len(k) for k, _ in rows)
    lines = [f"{'metric'.ljust(width)}  value", f"{'-' * width}  --------"]
    lines += [f"{k.ljust(width)}  {v:8.3f}" for k, v in rows]
    lines.append(f"{'images'.ljust(width)}  {res['n_images']:8d}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run ``wsolkit evaluate`` with parsed arguments; returns the exit code (2 on bad input)."""
    import warnings

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = evaluate_folders(
                args.cams,
                args.masks,
                labels_csv=args.labels,
                boxes_csv=args.boxes,
                num_thresholds=args.num_thresholds,
                ignore_index=None if args.ignore_index < 0 else args.ignore_index,
                mask_fg_value=args.mask_fg_value,
                normalize=not args.no_normalize,
                threshold=args.threshold,
                progress=not args.no_progress,
            )
    except (WSOLValueError, WSOLTypeError) as exc:
        print(f"wsolkit evaluate: error: {exc}", file=sys.stderr)
        return 2
    for w in caught:
        print(f"wsolkit evaluate: warning: {w.message}", file=sys.stderr)
    print(_table(res))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(_jsonable(res), indent=1))
        print(f"wrote {out}")
    if args.plot:
        from wsolkit.viz import plot_threshold_curves

        fig = plot_threshold_curves(res["localization"], title=f"PxAP {res['localization']['pxap']:.2f}")
        fig.savefig(args.plot, dpi=120)
        import matplotlib.pyplot as plt

        plt.close(fig)
        print(f"wrote {args.plot}")
    return 0


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``evaluate`` sub-command to an ``argparse`` sub-parser collection."""
    p = subparsers.add_parser(
        "evaluate",
        help="localization metrics of CAM files against mask files (PxAP, TP*/FN*/FP*/TN*, mIoU, MaxBoxAcc)",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--cams", required=True, help="folder of CAMs (.npy, .npz, 8/16-bit .png)")
    p.add_argument("--masks", required=True, help="folder of PNG masks (paired by file stem)")
    p.add_argument("--labels", default=None, help="CSV stem,label[,pred]")
    p.add_argument("--boxes", default=None, help="CSV stem,x0,y0,x1,y1 (inclusive pixels) for MaxBoxAcc(V2)")
    p.add_argument("--num-thresholds", type=int, default=1000, help="T: thresholds i/T (default 1000)")
    p.add_argument("--ignore-index", type=int, default=255, help="mask value to ignore (negative: none)")
    p.add_argument("--mask-fg-value", type=int, default=1, help="mask value of foreground pixels (default 1)")
    p.add_argument("--no-normalize", action="store_true", help="do not min-max normalise the CAMs")
    p.add_argument("--threshold", type=float, default=None, help="operating threshold for mIoU/Dice (default: best)")
    p.add_argument("--out", default=None, help="write the metrics and curves as JSON")
    p.add_argument("--plot", default=None, help="write the threshold curves as an image (needs matplotlib)")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    p.set_defaults(func=run)
    return p
