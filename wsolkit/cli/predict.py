"""``wsolkit predict``: maps for a folder (or CSV) of images, in the layout ``wsolkit evaluate`` reads.

Writes into ``--out``:

- ``cams/<stem>.png`` (16-bit, map × 65535) or ``cams/<stem>.npy`` (float32): the protocol map of the target class
  (upsampled to the image size, min-max normalised to ``[0, 1]``), one per image;
- ``predictions.csv``: ``stem,pred,score_0,...`` (softmax scores);
- ``labels.csv``: ``stem,label,pred`` when the images are labelled (``wsolkit evaluate --labels``);
- ``masks/<stem>.png`` + ``masks/dataset.json`` when the images have masks (in-memory convention: 0 / 1 / 255 ignored);
- ``dataset.json``: classes, method, target, map format, mask convention; ``overlays/<stem>.png`` with ``--overlays``.

Then ``wsolkit evaluate --cams OUT/cams --masks OUT/masks --labels OUT/labels.csv`` gives the PxAP computed in memory.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

from wsolkit.cli._args import device, positive_int

__all__ = ["register", "run", "build_method", "predict_folder"]


def register(sub: Any) -> argparse.ArgumentParser:
    """Add the ``predict`` sub-command."""
    p = sub.add_parser("predict", help="write a localization map per image (the layout `wsolkit evaluate` reads)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--method", default=None, help="method name (wsolkit.list_methods); read from --checkpoint")
    p.add_argument("--checkpoint", help="a wsolkit checkpoint (or, with --classifier, the classifier's state_dict)")
    p.add_argument("--classifier", help="timm:NAME[:CKPT], tv:NAME[:CKPT] or hf:NAME (for cam, explainers)")
    p.add_argument("--pretrained", action="store_true", help="pretrained weights for --classifier")
    p.add_argument("--num-classes", type=int, default=None, help="classes of --classifier (default: read from its "
                   "weights)")
    p.add_argument("--images", required=True, help="folder (class subfolders or flat) or CSV path,label[,mask]")
    p.add_argument("--masks", default=None, help="folder of masks for a folder of images (paired by stem)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--target", default="pred", help="class whose map is written: pred, label or an index K")
    p.add_argument("--format", choices=["png16", "npy"], default="png16")
    p.add_argument("--overlays", action="store_true", help="also write overlays/<stem>.png")
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--device", type=device, default="cpu")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)
    return p


def build_method(method: str | None, checkpoint: str | None = None, classifier: str | None = None,
                 pretrained: bool = False, num_classes: int | None = None) -> tuple[Any, Any, str]:
    """``(method, preprocessing, name)`` from a checkpoint and / or a classifier (``timm:NAME[:CKPT]``,
    ``tv:NAME[:CKPT]``, ``hf:NAME``), through :func:`wsolkit.loading.load_model` (``weights_only=True``)."""
    from wsolkit._checks import WSOLValueError
    from wsolkit.data import preprocessing
    from wsolkit.loading import load_model

    if checkpoint is None and classifier is None:
        raise WSOLValueError("pass --checkpoint (a wsolkit checkpoint) or --classifier timm:NAME[:CKPT]")
    if classifier is not None and method is None:
        raise WSOLValueError("--method is required with --classifier")
    if checkpoint is not None:
        m = load_model(checkpoint, method=method, classifier=classifier, num_classes=num_classes)
    else:
        m = load_model(classifier, method=method, num_classes=num_classes, pretrained=pretrained)
    return m, preprocessing(m), method or getattr(m, "method_name", None) or type(m).__name__


def _collate(items: list) -> list:
    return items


def _check_labels(y: Any, k: int, names: list[str]) -> None:
    """Labels (a ``(B,)`` tensor) are class indices of the method's ``k`` classes, or -1 (unlabelled)."""
    from wsolkit._checks import WSOLValueError

    bad = ((y >= k) | (y < -1)).nonzero().flatten()
    if len(bad):
        i = int(bad[0])
        raise WSOLValueError(f"image {names[i]!r} has label {int(y[i])} but the method has {k} classes (labels must "
                             f"be class indices in [0, {k}), or -1 for unlabelled)")


def predict_folder(method: Any, dataset: Any, out: str | Path, *, preprocess: Any, target: str = "pred",
                   fmt: str = "png16", overlays: bool = False, batch_size: int = 16, num_workers: int = 0,
                   device: str = "cpu", progress: bool = False, method_name: str | None = None) -> Path:
    """Write maps / predictions / labels / masks of ``dataset`` (a :class:`~wsolkit.data.FileDataset` without
    ``preprocess``) into ``out``; see the module docstring for the layout."""
    import cv2
    import numpy as np
    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from wsolkit._checks import WSOLValueError
    from wsolkit.data.masks import IGNORE, MaskConvention, write_dataset_json
    from wsolkit.inference import localize

    stems = dataset.stems
    if len(set(stems)) != len(stems):
        from collections import Counter

        dup = sorted(s for s, n in Counter(stems).items() if n > 1)
        raise WSOLValueError(f"image file names must be unique across folders (outputs are named by stem), "
                             f"repeated: {dup[:10]}")
    labels = dataset.labels
    if target == "label" and (labels < 0).any():
        raise WSOLValueError("--target label needs labelled images (class subfolders or a CSV label column)")
    fixed = int(target) if target.lstrip("-").isdigit() else None
    if fixed is None and target not in ("pred", "label"):
        raise WSOLValueError(f"--target must be pred, label or a class index, got {target!r}")
    out = Path(out)
    for sub in ("cams",) + (("overlays",) if overlays else ()):
        (out / sub).mkdir(parents=True, exist_ok=True)
    has_masks = any(dataset.has_mask(i) for i in range(len(dataset)))
    if has_masks:
        (out / "masks").mkdir(exist_ok=True)
    dev = torch.device(device)
    method.to(dev)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=_collate,
                        pin_memory=dev.type == "cuda")
    rows, label_rows, index = [], [], 0
    for items in tqdm(loader, desc="predict", unit="batch", disable=not progress, file=sys.stderr):
        by_size: dict[tuple[int, int], list[int]] = {}
        for j, (image, _, _) in enumerate(items):
            by_size.setdefault(tuple(image.shape[-2:]), []).append(j)
        for idx in by_size.values():
            x = torch.stack([items[j][0] for j in idx]).to(dev)
            y = torch.tensor([items[j][1] for j in idx], device=dev)
            try:
                loc = localize(method, preprocess(x), fixed if fixed is not None else target, labels=y)
            except WSOLValueError as exc:
                if fixed is not None:
                    raise WSOLValueError(f"--target {target} is outside the model's classes ({exc})") from None
                if target != "label":
                    raise
                k = localize(method, preprocess(x[:1]), "pred").logits.shape[1]
                _check_labels(y, k, [stems[index + j] for j in idx])
                raise
            logits, maps, pred = loc.logits, loc.maps.cpu(), loc.logits.argmax(1)
            _check_labels(y, logits.shape[1], [stems[index + j] for j in idx])
            scores = logits.softmax(1).cpu()
            for k, j in enumerate(idx):
                stem = stems[index + j]
                m = maps[k].numpy()
                if fmt == "npy":
                    np.save(out / "cams" / f"{stem}.npy", m.astype(np.float32))
                else:
                    cv2.imwrite(str(out / "cams" / f"{stem}.png"), np.round(m * 65535).astype(np.uint16))
                rows.append([stem, int(pred[k])] + [f"{float(s):.6g}" for s in scores[k]])
                if int(y[k]) >= 0:
                    label_rows.append([stem, int(y[k]), int(pred[k])])
                mask = items[j][2]
                if dataset.has_mask(index + j):
                    cv2.imwrite(str(out / "masks" / f"{stem}.png"), mask.numpy())
                if overlays:
                    from wsolkit.viz import overlay

                    vis = overlay(items[j][0], maps[k], mask if dataset.has_mask(index + j) else None)
                    cv2.imwrite(str(out / "overlays" / f"{stem}.png"), vis[..., ::-1])
        index += len(items)
    n_cls = len(rows[0]) - 2 if rows else 0
    with open(out / "predictions.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["stem", "pred"] + [f"score_{c}" for c in range(n_cls)])
        w.writerows(rows)
    if label_rows:
        with open(out / "labels.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["stem", "label", "pred"])
            w.writerows(label_rows)
    stored = MaskConvention(foreground=1, background=0, ignore=IGNORE)
    if has_masks:
        write_dataset_json(out / "masks", stored)
    write_dataset_json(out, stored, classes=list(dataset.classes), method=method_name, target=target,
                       cam_format=fmt, n_images=len(rows))
    return out


def run(args: argparse.Namespace) -> int:
    """Run ``wsolkit predict``; returns the exit code (2 on bad input)."""
    from wsolkit._checks import WSOLTypeError, WSOLValueError
    from wsolkit.data import CSVDataset, ImageFolderDataset

    try:
        method, prep, name = build_method(args.method, args.checkpoint, args.classifier, args.pretrained,
                                          args.num_classes)
        images = Path(args.images)
        if images.is_file():
            if args.masks:
                raise WSOLValueError("--masks applies to a folder of images; a CSV lists masks in its third column")
            dataset = CSVDataset(images)
        else:
            dataset = ImageFolderDataset(images, args.masks)
        predict_folder(method, dataset, args.out, preprocess=prep, target=args.target, fmt=args.format,
                       overlays=args.overlays, batch_size=args.batch_size, num_workers=args.num_workers,
                       device=args.device, progress=not args.no_progress, method_name=name)
    except (WSOLValueError, WSOLTypeError) as exc:
        print(f"wsolkit predict: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(dataset)} maps to {Path(args.out) / 'cams'}")
    return 0
