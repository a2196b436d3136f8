"""Output of the protocol: patch and mask PNGs, ``index.csv`` and the ``dataset.json`` mask convention."""

from __future__ import annotations

import contextlib
import csv
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from wsolkit._checks import WSOLTypeError, WSOLValueError
from wsolkit.data.camelyon.protocol import PatchProtocol, PatchRecord
from wsolkit.data.camelyon.readers import Slide, _open
from wsolkit.data.camelyon.sampling import _check_slide, sample_split
from wsolkit.data.masks import BINARY_255, write_dataset_json
from wsolkit.wsi.readers import to_rgb as _to_rgb

__all__ = ["INDEX_COLUMNS", "write_patches", "read_index", "extract_patches"]

#: columns of ``index.csv``
INDEX_COLUMNS = (
    "split",
    "slide",
    "label",
    "category",
    "x",
    "y",
    "size",
    "tumour_fraction",
    "tissue_fraction",
    "image",
    "mask",
)


def _patch_stem(r: PatchRecord) -> str:
    return f"{r.slide}_x{r.x}_y{r.y}"


def write_patches(records: Sequence[PatchRecord], slides: Sequence[Slide], root: str | os.PathLike) -> Path:
    """Write each patch as PNG (``images/<split>/``), its mask as PNG (``masks/<split>/``, 0 or 255) and the index.

    ``masks/<split>/dataset.json`` declares the mask convention (:data:`~wsolkit.data.masks.BINARY_255`:
    255 = metastatic, 0 = background), so readers of the folders (e.g. ``wsolkit evaluate``) decode the masks right.

    Masks of normal patches are all zeros. The index ``root/index.csv`` has the columns :data:`INDEX_COLUMNS`
    (paths relative to ``root``).

    Returns:
        the path of ``index.csv``.

    Example:
        >>> from wsolkit.data.camelyon import PatchProtocol, Slide, sample_metastatic_patches, synthetic_slide
        >>> import tempfile
        >>> image, annotation = synthetic_slide(256, 256, True, seed=0)
        >>> slide = Slide("tumor_0", image, annotation)
        >>> recs = sample_metastatic_patches(slide, PatchProtocol(patch_size=64))
        >>> with tempfile.TemporaryDirectory() as d:
        ...     rows = read_index(write_patches(recs, [slide], d))
        >>> first = rows[0]
        >>> len(rows) == len(recs), first["image"].startswith("images/")
        (True, True)
    """
    by_name = {_check_slide(s).name: s for s in slides}
    root = Path(root)
    rows = []
    groups: dict[str, list[PatchRecord]] = {}
    for r in records:
        if not isinstance(r, PatchRecord):
            raise WSOLTypeError(f"`records` must hold PatchRecord objects, got {type(r).__name__}")
        if r.slide not in by_name:
            raise WSOLValueError(f"record of slide {r.slide!r} has no matching Slide in `slides`")
        groups.setdefault(r.slide, []).append(r)
    for name, recs in groups.items():
        slide = by_name[name]
        ann = slide.annotation if slide.metastatic else None
        with contextlib.ExitStack() as stack:
            reader = stack.enter_context(_open(slide.image, "slide.image"))
            annot = stack.enter_context(_open(ann, "slide.annotation", True, reader)) if ann is not None else None
            for r in recs:
                split = r.split or "all"
                img_rel = Path("images") / split / f"{_patch_stem(r)}.png"
                mask_rel = Path("masks") / split / f"{_patch_stem(r)}.png"
                (root / img_rel).parent.mkdir(parents=True, exist_ok=True)
                (root / mask_rel).parent.mkdir(parents=True, exist_ok=True)
                rgb = _to_rgb(reader.read_region((r.x, r.y), 0, (r.size, r.size)))
                if annot is not None and r.label == 1:
                    m = np.asarray(annot.read_region((r.x, r.y), 0, (r.size, r.size)))
                    mask = (m[:, :, 0] > 0) if m.ndim == 3 else (m > 0)
                else:
                    mask = np.zeros((r.size, r.size), bool)
                if not cv2.imwrite(str(root / img_rel), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
                    raise OSError(f"could not write {root / img_rel}")
                if not cv2.imwrite(str(root / mask_rel), mask.astype(np.uint8) * 255):
                    raise OSError(f"could not write {root / mask_rel}")
                rows.append({**asdict(r), "image": img_rel.as_posix(), "mask": mask_rel.as_posix()})
    root.mkdir(parents=True, exist_ok=True)
    for split in sorted({r.split or "all" for r in records}) if records else []:
        write_dataset_json(root / "masks" / split, BINARY_255, classes=["normal", "metastatic"])
    index = root / "index.csv"
    pos = {(r.slide, r.x, r.y, r.split): i for i, r in enumerate(records)}
    rows.sort(key=lambda row: pos[(row["slide"], row["x"], row["y"], row["split"])])
    with open(index, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(INDEX_COLUMNS))
        w.writeheader()
        for row in rows:
            w.writerow({k: row[k] for k in INDEX_COLUMNS})
    return index


def read_index(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read ``index.csv`` back, with numeric columns converted.

    Example:
        >>> INDEX_COLUMNS[:4]
        ('split', 'slide', 'label', 'category')
    """
    ints = {f.name for f in fields(PatchRecord) if f.type in ("int", int)}
    floats = {"tumour_fraction", "tissue_fraction"}
    out = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            for k in ints:
                row[k] = int(row[k])
            for k in floats:
                row[k] = float(row[k])
            out.append(row)
    return out


def extract_patches(
    splits: Mapping[str, Sequence[Slide]], root: str | os.PathLike, protocol: PatchProtocol | None = None
) -> Path:
    """Run :func:`sample_split` on every set and write all patches, masks and one ``index.csv`` under ``root``.

    Args:
        splits: split name -> the slides of that split (e.g. from :func:`split_slides`); a slide may appear in one
            split only.
        root: output folder.
        protocol: hyper-parameters (default: the paper's).

    Returns:
        the path of ``index.csv``.

    Example:
        >>> from wsolkit.data.camelyon import PatchProtocol, Slide, sample_metastatic_patches, synthetic_slide
        >>> import tempfile
        >>> t, a = synthetic_slide(256, 256, True, seed=0)
        >>> n, _ = synthetic_slide(256, 256, False, seed=1)
        >>> with tempfile.TemporaryDirectory() as d:
        ...     rows = read_index(extract_patches({"test": [Slide("t", t, a), Slide("n", n)]}, d,
        ...                                       PatchProtocol(patch_size=64, p_n=1.0)))
        >>> sorted({r["split"] for r in rows}), sum(r["label"] for r in rows) == sum(1 - r["label"] for r in rows)
        (['test'], True)
    """
    if not isinstance(splits, Mapping):
        raise WSOLTypeError(f"`splits` must map split names to slides, got {type(splits).__name__}")
    seen: dict[str, str] = {}
    for k, slides in splits.items():
        for s in slides:
            s = _check_slide(s)
            if s.name in seen:
                raise WSOLValueError(f"slide {s.name!r} is in splits {seen[s.name]!r} and {k!r}; split at WSI level")
            seen[s.name] = k
    records: list[PatchRecord] = []
    all_slides: list[Slide] = []
    for k, slides in splits.items():
        records.extend(sample_split(list(slides), protocol, k))
        all_slides.extend(slides)
    return write_patches(records, all_slides, root)
