"""GlaS (Sirinukunwattana et al. 2017) as released: the Warwick QU folder, read directly or through the survey's folds.

The archive ``warwick_qu_dataset_released_2016_07_08.zip`` unpacks as ``Warwick QU Dataset (Released 2016_07_08)/``
(spaces in the name) holding 165 images ``train_K.bmp`` / ``testA_K.bmp`` / ``testB_K.bmp``, their annotations
``<name>_anno.bmp`` (gland *instances*: 0 background, 1..n one value per gland — every non-zero value is gland
here), and ``Grade.csv`` (``name, patient ID, grade (GlaS), grade (Sirinukunwattana et al. 2015)``) whose GlaS
grade is ``benign`` or ``malignant``. Labels: benign 0, malignant 1 (the survey's ``encoding.yaml``).

- :class:`GlaS` reads the released folder, all of it or one released split (``train`` 85 images, ``testA`` 60,
  ``testB`` 20, ``test`` = both test parts).
- :func:`glas_fold` reads one split of the survey's folds (``GLAS/fold-K/{train,valcl,valpx,test}``: 67 / 18 / 6 /
  80 images, survey Sec. 3.3.1) whichever way the Warwick folder is spelled on disk.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from wsolkit._checks import WSOLValueError, check_choice, check_int
from wsolkit.data.wsolevaluation import SplitMetadata, WSOLEvalDataset, fold_dir

__all__ = ["GlaS", "glas_fold", "read_grades", "GLAS_FOLDER", "GLAS_FOLDER_SPLITS", "GLAS_CLASSES", "find_glas_folder"]

#: the folder name of the released archive, and as the survey's split files write it
GLAS_FOLDER = "Warwick QU Dataset (Released 2016_07_08)"
GLAS_FOLDER_SPLITS = "Warwick_QU_Dataset_(Released_2016_07_08)"
GLAS_CLASSES = ["benign", "malignant"]
_RELEASED = {"train": ("train_",), "testA": ("testA_",), "testB": ("testB_",), "test": ("testA_", "testB_")}


def find_glas_folder(root: str | os.PathLike) -> Path:
    """The Warwick QU folder: ``root`` itself when it holds ``Grade.csv``, else its child under either spelling."""
    root = Path(root)
    if (root / "Grade.csv").is_file():
        return root
    for name in (GLAS_FOLDER, GLAS_FOLDER_SPLITS):
        if (root / name / "Grade.csv").is_file():
            return root / name
    raise WSOLValueError(f"{str(root)!r} is not the GlaS folder: no Grade.csv in it nor in {GLAS_FOLDER!r} / "
                         f"{GLAS_FOLDER_SPLITS!r} under it (download warwick_qu_dataset_released_2016_07_08.zip)")


def read_grades(path: str | os.PathLike) -> dict[str, int]:
    """Image name → label (benign 0, malignant 1) from ``Grade.csv`` (column ``grade (GlaS)``)."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = [[c.strip() for c in row] for row in csv.reader(fh) if any(c.strip() for c in row)]
    if not rows:
        raise WSOLValueError(f"{str(path)!r} is empty")
    header = [h.lower() for h in rows[0]]
    col = next((i for i, h in enumerate(header) if h == "grade (glas)"), 2 if len(header) > 2 else None)
    if col is None or header[0] != "name":
        raise WSOLValueError(f"{str(path)!r}: expected a header `name, patient ID, grade (GlaS), ...`, got {rows[0]}")
    out = {}
    for n, row in enumerate(rows[1:], 2):
        grade = row[col].lower() if len(row) > col else ""
        if grade not in GLAS_CLASSES:
            raise WSOLValueError(f"{str(path)!r} line {n}: grade {grade!r} is not one of {GLAS_CLASSES}")
        out[row[0]] = GLAS_CLASSES.index(grade)
    return out


class GlaS(WSOLEvalDataset):
    """The released GlaS folder as ``(image, label, mask)`` items (mask: any non-zero annotation value is gland).

    Args:
        root: the Warwick QU folder or the folder holding it (either spelling).
        split: ``None`` (all 165 images), ``"train"``, ``"testA"``, ``"testB"`` or ``"test"`` (testA + testB).
        **kwargs: ``transform``, ``preprocess``, ``size`` of :class:`~wsolkit.data.wsolevaluation.WSOLEvalDataset`.

    Example:
        >>> import tempfile, cv2, numpy as np
        >>> d = Path(tempfile.mkdtemp()) / GLAS_FOLDER; d.mkdir()
        >>> _ = (d / "Grade.csv").write_text("name,patient ID,grade (GlaS),grade (Sirinukunwattana et al. 2015)\\n"
        ...                                  "testA_1,4,benign,adenomatous\\ntrain_1,1,malignant,moderately\\n")
        >>> for n in ("testA_1", "train_1"):
        ...     _ = cv2.imwrite(str(d / f"{n}.bmp"), np.zeros((4, 6, 3), np.uint8))
        ...     _ = cv2.imwrite(str(d / f"{n}_anno.bmp"), np.eye(4, 6, dtype=np.uint8) * 3)
        >>> ds = GlaS(d.parent, "test")
        >>> image, label, mask = ds[0]
        >>> len(ds), ds.classes, label, int(mask.sum())
        (1, ['benign', 'malignant'], 0, 4)
    """

    def __init__(self, root: str | os.PathLike, split: str | None = None, **kwargs: Any):
        folder = find_glas_folder(root)
        if split is not None:
            check_choice(split, "split", list(_RELEASED))
        grades = read_grades(folder / "Grade.csv")
        names = sorted(n for n in grades if split is None or n.startswith(_RELEASED[split]))
        if not names:
            raise WSOLValueError(f"{str(folder / 'Grade.csv')!r} lists no image of split {split!r}")
        meta = SplitMetadata(image_ids=[f"{n}.bmp" for n in names], labels={f"{n}.bmp": grades[n] for n in names},
                             kind="masks", masks={f"{n}.bmp": [f"{n}_anno.bmp"] for n in names},
                             ignore={f"{n}.bmp": "" for n in names})
        self.split = split
        super().__init__(folder, meta, classes=list(GLAS_CLASSES), **kwargs)


def glas_fold(data_root: str | os.PathLike, splits: str | os.PathLike, fold: int, split: str,
              **kwargs: Any) -> WSOLEvalDataset:
    """One split of the survey's GlaS folds over the released data.

    Args:
        data_root: the folder holding the Warwick QU folder (either spelling: the survey's files name it with
            underscores, the archive with spaces — both work).
        splits: the survey's ``folds/wsol-done-right-splits`` folder, its ``GLAS`` child, or a ``fold-K`` folder.
        fold: K (0-4).
        split: ``"train"``, ``"valcl"``, ``"valpx"`` or ``"test"``.
        **kwargs: options of :class:`~wsolkit.data.wsolevaluation.WSOLEvalDataset`.
    """
    check_int(fold, "fold", low=0)
    check_choice(split, "split", ["train", "valcl", "valpx", "test"])
    meta = fold_dir(splits, "GLAS", fold) / split
    data_root = Path(data_root)
    if (data_root / "Grade.csv").is_file():  # pointed at the Warwick folder itself
        data_root = data_root.parent
    prefixes = {}
    if not (data_root / GLAS_FOLDER_SPLITS).is_dir() and (data_root / GLAS_FOLDER).is_dir():
        prefixes = {GLAS_FOLDER_SPLITS: GLAS_FOLDER}
    kwargs.setdefault("classes", list(GLAS_CLASSES))
    return WSOLEvalDataset(data_root, meta, prefixes=prefixes, **kwargs)

