"""Datasets over files: a folder of class subfolders (:class:`ImageFolderDataset`) or a CSV (:class:`CSVDataset`).

Each item is ``(image, label, mask)``: ``image`` float ``(3, H, W)`` (in ``[0, 1]``, or normalised by ``preprocess``),
``label`` an int (``-1`` for unlabelled images), ``mask`` uint8 ``(H, W)`` in the in-memory convention of
:mod:`wsolkit.data.masks` (0 background, 1 foreground, 255 ignored). An image without a mask gets an all-255
(all-ignored) mask, so batches collate with the default collate function and the metrics skip it.

Stored masks are decoded with a :class:`~wsolkit.data.masks.MaskConvention`: the ``mask_convention`` argument, else
the ``dataset.json`` next to the masks (what ``extract_patches`` and ``wsolkit predict`` write), else
:data:`~wsolkit.data.masks.BINARY` (0/1); a value the convention does not name is an error naming the file, so a
0/255 mask is never read as "all ignored". Images are decoded with ``torchvision.io`` (PNG, JPEG) or ``tifffile``
(TIFF). Every unreadable or inconsistent file raises one :class:`~wsolkit._checks.WSOLValueError` naming the file
(re-raised by a :class:`~torch.utils.data.DataLoader` from its workers).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from wsolkit._checks import WSOLTypeError, WSOLValueError
from wsolkit.data.masks import BINARY, IGNORE, MaskConvention, read_dataset_json

__all__ = ["IMAGE_SUFFIXES", "MASK_SUFFIXES", "read_image", "read_mask", "FileDataset", "ImageFolderDataset",
           "CSVDataset"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
MASK_SUFFIXES = (".png", ".tif", ".tiff")


def _read_array(path: Path) -> np.ndarray | torch.Tensor:
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        try:
            import tifffile
        except ImportError:
            raise ImportError(f"reading {str(path)!r} needs tifffile: pip install 'wsolkit[wsi]'") from None
    try:
        if suffix in (".tif", ".tiff"):
            return np.asarray(tifffile.imread(str(path)))
        from torchvision.io import ImageReadMode, decode_image, read_file

        return decode_image(read_file(str(path)), mode=ImageReadMode.UNCHANGED)
    except Exception as exc:  # noqa: BLE001 - every decoder error becomes one error naming the file
        raise WSOLValueError(f"cannot decode {str(path)!r}: {type(exc).__name__}: {exc}") from None


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """An RGB image file as float32 ``(3, H, W)`` in ``[0, 1]`` (grayscale is repeated, alpha dropped).

    Example:
        >>> import tempfile, cv2
        >>> p = tempfile.mkdtemp() + "/a.png"; _ = cv2.imwrite(p, np.full((4, 5, 3), 255, np.uint8))
        >>> read_image(p).shape, float(read_image(p).max())
        (torch.Size([3, 4, 5]), 1.0)
    """
    path = Path(path)
    a = _read_array(path)
    t = torch.as_tensor(a) if isinstance(a, np.ndarray) else a
    if isinstance(a, np.ndarray):  # tifffile: (H, W) or (H, W, C)
        t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)
    if t.ndim != 3 or t.shape[0] not in (1, 2, 3, 4):
        raise WSOLValueError(f"image {str(path)!r} must have 1, 3 or 4 channels, got shape {tuple(t.shape)}")
    if t.shape[0] in (1, 2):
        t = t[:1].expand(3, -1, -1)
    t = t[:3]
    if t.dtype == torch.uint8:
        return t.float().div_(255.0)
    if t.dtype == torch.uint16 or t.dtype == torch.int32 and int(t.max()) > 255:
        return t.float().div_(65535.0)
    if t.is_floating_point():
        return t.float().clamp_(0.0, 1.0)
    raise WSOLValueError(f"image {str(path)!r} has unsupported dtype {t.dtype}")


def read_mask(path: str | os.PathLike, convention: MaskConvention = BINARY) -> torch.Tensor:
    """A single-channel mask file decoded to uint8 ``(H, W)`` with 0 / 1 / 255 (see :class:`MaskConvention`)."""
    path = Path(path)
    a = _read_array(path)
    a = a.numpy() if isinstance(a, torch.Tensor) else a
    if a.ndim == 3:
        if a.shape[0] == 1:  # torchvision (1, H, W)
            a = a[0]
        elif a.shape[-1] == 1:
            a = a[..., 0]
    if a.ndim != 2:
        raise WSOLValueError(f"mask {str(path)!r} must be single-channel (H, W), got shape {a.shape}")
    return torch.from_numpy(np.ascontiguousarray(convention.decode(a, name=f"mask {str(path)!r}")))


class FileDataset(Dataset):
    """Images (with labels and optional masks) listed as ``samples``; the base of the folder and CSV datasets.

    Args:
        samples: ``(image_path, label, mask_path or None)`` per item.
        classes: class names (index = label).
        mask_convention: how the stored masks read (see the module docstring).
        transform: ``transform(image, mask) -> (image, mask)`` on ``[0, 1]`` images (:mod:`wsolkit.data.transforms`).
        preprocess: applied last to the image, e.g. :func:`wsolkit.data.preprocessing` of the model.
        size: ``(H, W)`` or int: resize every image (bilinear, antialiased) and mask (nearest) first.
    """

    def __init__(
        self,
        samples: list[tuple[Path, int, Path | None]],
        classes: list[str],
        mask_convention: MaskConvention = BINARY,
        transform: Callable[[torch.Tensor, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor | None]]
        | None = None,
        preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
        size: int | tuple[int, int] | None = None,
    ):
        if not isinstance(mask_convention, MaskConvention):
            raise WSOLTypeError(f"`mask_convention` must be a MaskConvention, got {type(mask_convention).__name__}")
        self.samples = list(samples)
        self.classes = list(classes)
        self.mask_convention = mask_convention
        self.transform = transform
        self.preprocess = preprocess
        self.size = (size, size) if isinstance(size, int) else (tuple(size) if size is not None else None)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> torch.Tensor:
        """``(N,)`` int64 labels (``-1``: unlabelled)."""
        return torch.tensor([s[1] for s in self.samples], dtype=torch.long)

    @property
    def stems(self) -> list[str]:
        """File stems of the images (the names outputs are written under)."""
        return [s[0].stem for s in self.samples]

    def has_mask(self, index: int) -> bool:
        """Whether item ``index`` has a mask file."""
        return self.samples[index][2] is not None

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, torch.Tensor]:
        image_path, label, mask_path = self.samples[index]
        image = read_image(image_path)
        if mask_path is not None:
            mask = read_mask(mask_path, self.mask_convention)
            if tuple(mask.shape) != tuple(image.shape[-2:]):
                raise WSOLValueError(f"mask {str(mask_path)!r} has size {tuple(mask.shape)} but its image "
                                     f"{str(image_path)!r} has size {tuple(image.shape[-2:])}")
        else:
            mask = torch.full(image.shape[-2:], IGNORE, dtype=torch.uint8)
        if self.size is not None and tuple(image.shape[-2:]) != self.size:
            import torch.nn.functional as F

            image = F.interpolate(image[None], self.size, mode="bilinear", antialias=True, align_corners=False)[0]
            mask = F.interpolate(mask[None, None].float(), self.size, mode="nearest")[0, 0].to(torch.uint8)
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        if self.preprocess is not None:
            image = self.preprocess(image)
        return image, label, mask

    def __repr__(self) -> str:
        n_masks = sum(s[2] is not None for s in self.samples)
        return (f"{type(self).__name__}({len(self)} images, {n_masks} masks, classes={self.classes}, "
                f"mask_convention={self.mask_convention})")


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _find_mask(masks: Path, rel_dir: str, stem: str) -> Path | None:
    for d in ([masks / rel_dir] if rel_dir else []) + [masks]:
        for suffix in MASK_SUFFIXES:
            p = d / f"{stem}{suffix}"
            if p.is_file():
                return p
    return None


def _convention(explicit: MaskConvention | None, folder: Path | None) -> MaskConvention:
    if explicit is not None:
        return explicit
    found = read_dataset_json(folder) if folder is not None else None
    return found if found is not None else BINARY


def _check_missing(samples: list, missing_masks: str, where: str) -> None:
    if missing_masks not in ("ignore", "error"):
        raise WSOLValueError(f"`missing_masks` must be 'ignore' or 'error', got {missing_masks!r}")
    missing = [str(s[0]) for s in samples if s[2] is None]
    if missing and missing_masks == "error":
        shown = ", ".join(repr(m) for m in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise WSOLValueError(f"{len(missing)} image(s) have no mask in {where}: {shown}")


class ImageFolderDataset(FileDataset):
    """Images in class subfolders ``root/<class>/<name>.png`` (or directly in ``root``: unlabelled, label -1).

    Args:
        root: the folder.
        masks: optional folder of masks, ``masks/<class>/<stem>.png`` or ``masks/<stem>.png``.
        classes: class names in label order; ``None``: the sorted subfolder names. A subfolder not listed is an
            error (a typo would silently drop a class otherwise).
        mask_convention: stored mask values (default: ``masks/dataset.json``, else 0/1).
        missing_masks: ``"ignore"`` (all-ignored mask) or ``"error"`` when an image has no mask (with ``masks``).
        transform, preprocess, size: see :class:`FileDataset`.

    Example:
        >>> import tempfile, cv2
        >>> root = Path(tempfile.mkdtemp())
        >>> for c in ("benign", "malignant"):
        ...     (root / c).mkdir(); _ = cv2.imwrite(str(root / c / f"{c}_0.png"), np.zeros((8, 8, 3), np.uint8))
        >>> ds = ImageFolderDataset(root)
        >>> ds.classes, len(ds), ds[1][1], ds[1][2].unique().tolist()
        (['benign', 'malignant'], 2, 1, [255])
    """

    def __init__(
        self,
        root: str | os.PathLike,
        masks: str | os.PathLike | None = None,
        *,
        classes: list[str] | None = None,
        mask_convention: MaskConvention | None = None,
        missing_masks: str = "ignore",
        transform: Any = None,
        preprocess: Any = None,
        size: int | tuple[int, int] | None = None,
    ):
        root = Path(root)
        if not root.is_dir():
            raise WSOLValueError(f"image folder {str(root)!r} does not exist")
        subdirs = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if subdirs:
            if classes is None:
                classes = subdirs
            unknown = sorted(set(subdirs) - set(classes))
            if unknown:
                raise WSOLValueError(f"{str(root)!r} has class folder(s) {unknown} not in `classes`={list(classes)}")
            folders = [(c, i) for i, c in enumerate(classes) if (root / c).is_dir()]
        else:
            classes = list(classes or [])
            folders = [("", -1)]
        mask_dir = Path(masks) if masks is not None else None
        if mask_dir is not None and not mask_dir.is_dir():
            raise WSOLValueError(f"mask folder {str(mask_dir)!r} does not exist")
        samples = []
        for rel, label in folders:
            files = _images_in(root / rel)
            if not files:
                raise WSOLValueError(f"folder {str(root / rel)!r} has no {'/'.join(IMAGE_SUFFIXES)} image")
            for f in files:
                samples.append((f, label, _find_mask(mask_dir, rel, f.stem) if mask_dir is not None else None))
        if mask_dir is not None:
            _check_missing(samples, missing_masks, repr(str(mask_dir)))
        super().__init__(samples, list(classes), _convention(mask_convention, mask_dir), transform, preprocess, size)


class CSVDataset(FileDataset):
    """Images listed in a CSV ``path,label[,mask]`` (header optional; paths relative to ``root``).

    Args:
        csv_file: the CSV.
        root: folder the paths are relative to (default: the CSV's folder).
        classes: class names in label order; labels may be integers or these names. ``None``: integer labels are
            used as they are, names are sorted.
        mask_convention: stored mask values (default: ``dataset.json`` in the folder of the first mask, else 0/1).
        missing_masks: ``"ignore"`` or ``"error"`` for rows with an empty mask column.
        transform, preprocess, size: see :class:`FileDataset`.
    """

    def __init__(
        self,
        csv_file: str | os.PathLike,
        *,
        root: str | os.PathLike | None = None,
        classes: list[str] | None = None,
        mask_convention: MaskConvention | None = None,
        missing_masks: str = "ignore",
        transform: Any = None,
        preprocess: Any = None,
        size: int | tuple[int, int] | None = None,
    ):
        csv_file = Path(csv_file)
        if not csv_file.is_file():
            raise WSOLValueError(f"CSV file {str(csv_file)!r} does not exist")
        base = Path(root) if root is not None else csv_file.parent
        rows = []
        with open(csv_file, newline="") as fh:
            for n, row in enumerate(csv.reader(fh), 1):
                if not row or row[0].startswith("#"):
                    continue
                if n == 1 and row[0].strip().lower() in ("path", "image", "file"):
                    continue
                if len(row) not in (2, 3):
                    raise WSOLValueError(f"{str(csv_file)!r} line {n}: expected path,label[,mask], got {row}")
                rows.append((n, row[0].strip(), row[1].strip(), row[2].strip() if len(row) == 3 else ""))
        if not rows:
            raise WSOLValueError(f"CSV file {str(csv_file)!r} lists no image")
        names = [r[2] for r in rows]
        numeric = all(v.lstrip("-").isdigit() for v in names)
        if classes is None:
            classes = [] if numeric else sorted(set(names))
        index = {c: i for i, c in enumerate(classes)}
        samples = []
        for n, path, lab, mask in rows:
            if lab in index:
                label = index[lab]
            elif lab.lstrip("-").isdigit():
                label = int(lab)
            else:
                raise WSOLValueError(f"{str(csv_file)!r} line {n}: label {lab!r} is not an integer nor in {classes}")
            image = base / path
            if not image.is_file():
                raise WSOLValueError(f"{str(csv_file)!r} line {n}: image {str(image)!r} does not exist")
            mask_path = base / mask if mask else None
            if mask_path is not None and not mask_path.is_file():
                raise WSOLValueError(f"{str(csv_file)!r} line {n}: mask {str(mask_path)!r} does not exist")
            samples.append((image, label, mask_path))
        _check_missing(samples, missing_masks, repr(str(csv_file)))
        first = next((s[2].parent for s in samples if s[2] is not None), None)
        super().__init__(samples, list(classes), _convention(mask_convention, first), transform, preprocess, size)
