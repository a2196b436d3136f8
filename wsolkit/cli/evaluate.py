"""``wsolkit evaluate``: localization metrics of CAMs stored in a folder against masks stored in a folder.

CAM files are paired with mask files by file stem (``img_001.npy`` ↔ ``img_001.png``):

- CAMs: ``.npy`` / ``.npz`` (an ``(h, w)`` or ``(C, h, w)`` float array; ``.npz`` uses the key ``cam`` or its only
  array) or a grayscale 8-bit / 16-bit ``.png`` (scaled by 1/255 or 1/65535);
- masks: grayscale PNG read with the folder's mask convention: the ``dataset.json`` next to them
  (:func:`wsolkit.data.masks.read_dataset_json`, written by ``extract_patches`` and
  :func:`~wsolkit.data.masks.write_dataset_json`), or the flags ``--mask-fg-value`` / ``--ignore-index`` (which
  override it), else foreground 1, background 0, ignored 255; any other value is an error. A dataset with no
  countable foreground pixel is an error naming the likely cause (e.g. 0/255 masks read with ignore 255);
- optional labels CSV ``stem,label[,pred]`` (the class map to select for ``(C, h, w)`` CAMs; with ``pred``:
  classification accuracy and top-1 localization);
- optional boxes CSV ``stem,x0,y0,x1,y1`` (inclusive pixel coordinates, one row per box): MaxBoxAcc(V2).

Every CAM is upsampled to its mask size (bilinear) and min-max normalised (``--no-normalize`` to keep values,
which must then lie in [0, 1]), as in the protocol. With labels, the figures are also given per class. Missing or
mismatched files are named in the error (exit code 2); nothing is skipped silently; a NaN result exits with code 3.

``--faithfulness`` (with ``--images``, ``--method`` and ``--classifier timm:NAME[:CKPT]`` or ``--checkpoint``) runs
the method over the images and adds Average Drop / Increase, Deletion / Insertion (and ROAD with ``--road``) to the
same JSON — see :func:`evaluate_faithfulness`.
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
from wsolkit.cli._args import positive_int
from wsolkit.data.masks import MaskConvention, read_dataset_json

__all__ = ["register", "run", "evaluate_folders", "evaluate_faithfulness", "resolve_convention"]

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


def load_mask(path: Path, convention: MaskConvention) -> torch.Tensor:
    """A mask PNG decoded with ``convention`` to uint8 ``(H, W)``: 0 background, 1 foreground, 255 ignored."""
    return torch.from_numpy(convention.decode(_read_png(path), name=f"mask {str(path)!r}"))


def resolve_convention(
    masks_dir: str | Path, mask_fg_value: int | None = None, ignore_index: int | None | str = "default"
) -> tuple[MaskConvention, str]:
    """The mask convention of a folder: flags (when given) over ``dataset.json`` over foreground 1 / ignore 255.

    Returns the convention and where it came from (for the report).
    """
    declared = read_dataset_json(masks_dir)
    base = declared if declared is not None else MaskConvention(foreground=1, background=0, ignore=255)
    source = f"{Path(masks_dir) / 'dataset.json'}" if declared is not None else "default (1 = fg, 255 = ignore)"
    if mask_fg_value is None and ignore_index == "default":
        return base, source
    fg = base.foreground if mask_fg_value is None else int(mask_fg_value)
    ign = base.ignore if ignore_index == "default" else ignore_index
    if ign is not None and ign == fg:
        raise WSOLValueError(f"`ignore_index` and `mask_fg_value` must differ, both are {ign}")
    return MaskConvention(foreground=fg, background=base.background, ignore=ign), "command-line flags"


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


def _check_label_range(labels: dict[str, tuple[int, int | None]], stems: list[str], labels_csv: Any,
                       num_classes: int | None, cams_dir: Any) -> None:
    """Labels / predictions of the CSV must be classes of the run: ``num_classes`` or a dataset.json's classes."""
    source = "--num-classes"
    if num_classes is None:
        for folder in (Path(labels_csv).parent, Path(cams_dir), Path(cams_dir).parent):
            try:
                classes = json.loads((folder / "dataset.json").read_text()).get("classes")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(classes, list) and classes:
                num_classes, source = len(classes), f"the classes of {str(folder / 'dataset.json')!r}"
                break
    for stem in stems:
        for what, v in zip(("label", "pred"), labels[stem], strict=True):
            if v is not None and (v < 0 or (num_classes is not None and v >= num_classes)):
                bound = f"[0, {num_classes})" if num_classes is not None else ">= 0"
                raise WSOLValueError(f"{str(labels_csv)!r}: {what} {v} of {stem!r} is not a class index {bound} "
                                     f"({source if num_classes is not None else 'class indices'})")


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
    ignore_index: int | None | str = "default",
    mask_fg_value: int | None = None,
    normalize: bool = True,
    threshold: float | None = None,
    progress: bool = False,
    num_classes: int | None = None,
) -> dict[str, Any]:
    """Metrics of a folder of CAMs against a folder of masks (see the module docstring for the file formats).

    ``mask_fg_value`` / ``ignore_index`` override the folder's ``dataset.json`` (``"default"``: not given).
    ``num_classes`` (default: the ``classes`` of a ``dataset.json`` beside the labels CSV or the CAM folder) bounds
    the labels and predictions of the CSV.

    Returns:
        ``{"localization": {...}, "per_class": {label: {...}} | None, "boxes": {...} | None,
        "classification": {...} | None, "mask_convention": {...}, "n_images": N}`` with the curves as float64
        tensors under ``["localization"]["curves"]``.
    """
    from wsolkit.metrics.meters import BoxAccuracyMeter, ClassificationMeter, LocalizationMeter

    convention, conv_source = resolve_convention(masks_dir, mask_fg_value, ignore_index)
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
    if labels is not None:
        _check_label_range(labels, stems, labels_csv, num_classes, cams_dir)
    with_preds = labels is not None and all(labels[s][1] is not None for s in stems)
    loc = LocalizationMeter(num_thresholds, ignore_index=255, normalize=normalize)
    per_class: dict[int, Any] = {}
    stored_values: set[int] = set()
    box = BoxAccuracyMeter(num_thresholds, normalize=normalize) if boxes is not None else None
    cls = None
    if with_preds:
        n_cls = max(max(labels[s][0], labels[s][1]) for s in stems) + 1  # type: ignore[index, type-var]
        cls = ClassificationMeter(n_cls)
    from tqdm.auto import tqdm

    for stem in tqdm(stems, desc="evaluate", unit="image", disable=not progress, file=sys.stderr):
        cam = load_cam(cams[stem])
        raw_mask = _read_png(masks[stem])
        stored_values.update(np.unique(raw_mask).tolist())
        mask = torch.from_numpy(convention.decode(raw_mask, name=f"mask {str(masks[stem])!r}"))
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
            if lab is not None:
                k = int(lab)
                if k not in per_class:
                    per_class[k] = LocalizationMeter(num_thresholds, ignore_index=255, normalize=normalize)
                per_class[k].update(c, mask[None], lab)
        except (WSOLValueError, WSOLTypeError) as exc:
            raise WSOLValueError(f"{stem!r}: {exc}") from exc
        if box is not None:
            pred = torch.tensor([labels[stem][1]]) if cls is not None else None  # type: ignore[index]
            box.update(c, [torch.tensor(boxes[stem])], labels=lab, preds=pred, image_size=tuple(mask.shape))
        if cls is not None:
            cls.update(torch.tensor([labels[stem][1]]), lab)  # type: ignore[index]
    if int(loc.fg.sum()) == 0:
        cause = ""
        if convention.ignore is not None and convention.ignore in stored_values:
            cause = (f"; the masks hold the value {convention.ignore}, read as 'ignored' — 0/255 masks (what "
                     "extract_patches writes) need --mask-fg-value 255 or a dataset.json declaring foreground 255")
        elif convention.foreground not in stored_values:
            cause = (f"; no mask holds the foreground value {convention.foreground} (stored values: "
                     f"{sorted(stored_values)[:8]})")
        raise WSOLValueError(f"no countable foreground pixel in {str(masks_dir)!r} with the mask convention "
                             f"{convention} from {conv_source}{cause}")
    return {
        "localization": loc.compute(threshold=threshold),
        "per_class": {k: m.compute(threshold=threshold) for k, m in sorted(per_class.items())} or None,
        "boxes": box.compute() if box is not None else None,
        "classification": cls.compute() if cls is not None else None,
        "mask_convention": {**convention.to_dict(), "source": conv_source},
        "n_images": len(stems),
    }


def _nan_entries(x: Any, path: str = "") -> list[str]:
    """Paths of the NaN scalars of a result (curves are not inspected)."""
    if isinstance(x, dict):
        return [p for k, v in x.items() if k != "curves" for p in _nan_entries(v, f"{path}.{k}" if path else str(k))]
    if isinstance(x, float) and math.isnan(x):
        return [path]
    return []


def load_classifier(classifier: str | None = None, checkpoint: str | None = None,
                    num_classes: int | None = None) -> torch.nn.Module:
    """The classifier to explain, through :func:`wsolkit.loading.load_model` (every file read with
    ``weights_only=True``): ``timm:NAME[:CKPT]`` / ``tv:NAME[:CKPT]`` / ``hf:NAME``, a wsolkit checkpoint, or a
    ``state_dict`` file given with the architecture (``--classifier timm:NAME --checkpoint F``)."""
    from wsolkit.loading import load_model

    if checkpoint is not None:
        return load_model(checkpoint, classifier=classifier, num_classes=num_classes)
    if not classifier:
        raise WSOLValueError("--faithfulness needs --classifier timm:NAME[:CKPT] / tv:NAME / hf:NAME or --checkpoint")
    return load_model(classifier, num_classes=num_classes)


def _read_rgb(path: Path) -> torch.Tensor:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise WSOLValueError(f"cannot read image {str(path)!r}")
    return torch.from_numpy(img[..., ::-1].copy()).permute(2, 0, 1).float() / 255.0


def evaluate_faithfulness(
    images_dir: str | Path,
    method: str,
    classifier: torch.nn.Module,
    labels: dict[str, int] | None = None,
    steps: int = 20,
    with_road: bool = False,
    batch_size: int = 16,
) -> dict[str, Any]:
    """Average Drop / Increase and Deletion / Insertion (and ROAD) of ``method`` over a folder of RGB images.

    Images are scaled to ``[0, 1]`` and standardised as the model declares (:func:`wsolkit.data.preprocessing`,
    the rule of training and prediction); the explained class is the label when given, else the prediction; maps
    come from :func:`wsolkit.localize`. Images must share one size.
    """
    import wsolkit
    from wsolkit.data import preprocessing
    from wsolkit.metrics.faithfulness import ConfidenceChangeMeter, DeletionInsertionMeter
    from wsolkit.metrics.road import ROADMeter

    files = _index(Path(images_dir), (".png", ".jpg", ".jpeg", ".tif", ".tiff"), "image")
    m = wsolkit.create_method(method, classifier=classifier).eval()
    prep = preprocessing(m)
    meters = [ConfidenceChangeMeter(m, batch_size=batch_size), DeletionInsertionMeter(m, steps=steps,
                                                                                      batch_size=batch_size)]
    if with_road:
        meters.append(ROADMeter(m, batch_size=batch_size))
    stems = sorted(files)
    for a in range(0, len(stems), batch_size):
        chunk = stems[a : a + batch_size]
        x = prep(torch.stack([_read_rgb(files[s]) for s in chunk]))
        y = torch.tensor([labels[s] for s in chunk]) if labels is not None else None
        loc = wsolkit.localize(m, x, "label" if y is not None else "pred", labels=y)
        for meter in meters:
            meter.update(x, loc.maps, loc.target)
    res: dict[str, Any] = {"method": method, "n_images": len(stems)}
    for meter in meters:
        res.update({k: v for k, v in meter.compute().items() if k != "n_images"})
    return res


def faithfulness_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """``--faithfulness`` of :func:`run`."""
    if not args.images or not args.method:
        raise WSOLValueError("--faithfulness needs --images and --method (and --classifier or --checkpoint)")
    labels = {k: v[0] for k, v in _read_labels(Path(args.labels)).items()} if args.labels else None
    n_cls = args.num_classes
    random_init = args.checkpoint is None and args.classifier and args.classifier.count(":") == 1
    if n_cls is None and random_init and labels:  # no weights: as many classes as the labels name
        n_cls = max(labels.values()) + 1
    clf = load_classifier(args.classifier, args.checkpoint, n_cls)
    return evaluate_faithfulness(args.images, args.method, clf, labels, args.steps, args.road, args.batch_size)


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
    for key in ("pxap", "tp_star", "fn_star", "fp_star", "tn_star", "max_miou", "best_threshold", "miou", "dice_fg",
                "dice_bg", "f1_pos", "f1_neg"):
        rows.append((f"{key}", loc[key]))
    for k, r in (res.get("per_class") or {}).items():
        rows.append((f"class {k} pxap", r["pxap"]))
    for k, v in (res.get("faithfulness") or {}).items():
        if isinstance(v, float):
            rows.append((f"{k}", v))
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

    if args.plot:  # checked before the work
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("wsolkit evaluate: error: --plot needs matplotlib: pip install 'wsolkit[viz]'", file=sys.stderr)
            return 2
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = evaluate_folders(
                args.cams,
                args.masks,
                labels_csv=args.labels,
                boxes_csv=args.boxes,
                num_thresholds=args.num_thresholds,
                ignore_index=("default" if args.ignore_index is None
                              else None if args.ignore_index < 0 else args.ignore_index),
                mask_fg_value=args.mask_fg_value,
                normalize=not args.no_normalize,
                threshold=args.threshold,
                progress=not args.no_progress,
                num_classes=getattr(args, "num_classes", None),
            )
        if args.faithfulness:
            res["faithfulness"] = faithfulness_from_args(args)
    except (WSOLValueError, WSOLTypeError) as exc:
        print(f"wsolkit evaluate: error: {exc}", file=sys.stderr)
        return 2
    for w in caught:
        print(f"wsolkit evaluate: warning: {w.message}", file=sys.stderr)
    print(_table(res))
    nans = _nan_entries(res)
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
    if nans:
        print(f"wsolkit evaluate: error: NaN result(s): {', '.join(nans[:10])}", file=sys.stderr)
        return 3
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
    p.add_argument("--ignore-index", type=int, default=None,
                   help="stored mask value to ignore (negative: none; default: dataset.json, else 255)")
    p.add_argument("--mask-fg-value", type=int, default=None,
                   help="stored mask value of foreground pixels (default: dataset.json, else 1)")
    p.add_argument("--no-normalize", action="store_true", help="do not min-max normalise the CAMs")
    p.add_argument("--threshold", type=float, default=None, help="operating threshold for mIoU/Dice (default: best)")
    p.add_argument("--out", default=None, help="write the metrics and curves as JSON")
    p.add_argument("--plot", default=None, help="write the threshold curves as an image (needs matplotlib)")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    g = p.add_argument_group("faithfulness (runs a method over the images)")
    g.add_argument("--faithfulness", action="store_true", help="add Average Drop/Increase and Deletion/Insertion")
    g.add_argument("--images", default=None, help="folder of RGB images paired by stem with the masks")
    g.add_argument("--method", default=None, help="registered method name over a classifier (e.g. gradcam, cam)")
    g.add_argument("--classifier", default=None, help="timm:NAME[:CKPT], tv:NAME[:CKPT] or hf:NAME (CKPT: a "
                   "state_dict file)")
    g.add_argument("--checkpoint", default=None, help="a wsolkit checkpoint, or the state_dict of --classifier "
                   "(read with weights_only=True: pickled modules are refused)")
    g.add_argument("--num-classes", type=int, default=None, help="classes of the classifier (default: read from "
                   "its weights; without weights: the labels')")
    g.add_argument("--steps", type=int, default=20, help="Deletion/Insertion steps (default 20)")
    g.add_argument("--road", action="store_true", help="also ROAD MoRF/LeRF (slower: a sparse solve per image)")
    g.add_argument("--batch-size", type=positive_int, default=16, help="images per forward pass")
    p.set_defaults(func=run)
    return p
