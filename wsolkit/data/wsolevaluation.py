"""Datasets described by the metadata format of Choe et al. (2020), ``clovaai/wsolevaluation``.

A split is a folder of four text files, every path relative to a data root:

- ``image_ids.txt``: one image path per line;
- ``class_labels.txt``: ``<path>,<integer label>``;
- ``image_sizes.txt``: ``<path>,<width>,<height>`` (may be empty, as for OpenImages);
- ``localization.txt``: either masks, ``<path>,<mask path>,<ignore mask path>`` — several lines per image for
  several masks (merged), the ignore mask given on the first line only, empty fields allowed (an image without a
  mask, e.g. a normal CAMELYON16 patch, reads as all background) — or boxes, ``<path>,<x0>,<y0>,<x1>,<y1>``
  (several lines for several boxes; CUB and ILSVRC).

The survey of Rony et al. publishes its GlaS and CAMELYON16 folds in this format
(``folds/wsol-done-right-splits/{GLAS,CAMELYON512}/fold-K/{train,valcl,valpx,test}/`` of
``jeromerony/survey_wsl_histology``) with an ``encoding.yaml`` (``{benign: 0, malignant: 1}``) naming the classes;
:func:`read_encoding` reads it. The project does not ship those files: point ``metadata`` at your copy.

Masks follow the reference reader (``evaluation.get_mask`` of wsolevaluation): a stored value > 0.5 is foreground
(so 0/255 masks and GlaS' instance masks, where every non-zero value is a gland, both read as binary), the masks of
one image are merged, and the ignore mask marks ``ignore ∧ ¬foreground`` as 255. Departure from the survey's
``wsol_data_core.get_mask``, which reads a *missing* mask file as all background: here a file named in the metadata
that does not exist is an error naming it (an empty field is still "no mask").

Items are ``(image, label, mask)`` as in the other datasets of :mod:`wsolkit.data`: ``image`` float ``(3, H, W)``
in ``[0, 1]`` (or ``preprocess``-ed), ``label`` an int, ``mask`` uint8 ``(H, W)`` with 0 / 1 / 255. A box split
gives all-255 masks (boxes are not pixel labels) and its boxes through :meth:`WSOLEvalDataset.boxes`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from wsolkit._checks import WSOLTypeError, WSOLValueError
from wsolkit.data.masks import IGNORE

__all__ = ["SplitMetadata", "read_metadata", "read_encoding", "write_metadata", "WSOLEvalDataset", "METADATA_FILES",
           "SURVEY_SPLITS", "fold_dir", "camelyon_fold", "metadata_from_camelyon_patches"]

#: the split folders of one fold of the survey (train, validation for B-CL, validation for B-LOC, test)
SURVEY_SPLITS = ("train", "valcl", "valpx", "test")
#: the files of one split folder
METADATA_FILES = ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt")


@dataclass
class SplitMetadata:
    """The parsed files of one split folder.

    Attributes:
        image_ids: image paths in file order.
        labels: label per image path.
        sizes: ``(width, height)`` per image path (empty when ``image_sizes.txt`` is empty or absent).
        kind: ``"masks"``, ``"boxes"`` or ``"none"`` (no ``localization.txt``).
        masks: mask paths per image (empty strings dropped).
        ignore: ignore-mask path per image (``""``: none).
        boxes: ``(x0, y0, x1, y1)`` per image.
    """

    image_ids: list[str]
    labels: dict[str, int]
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    kind: str = "none"
    masks: dict[str, list[str]] = field(default_factory=dict)
    ignore: dict[str, str] = field(default_factory=dict)
    boxes: dict[str, list[tuple[int, int, int, int]]] = field(default_factory=dict)


def _lines(path: Path) -> list[tuple[int, str]]:
    with open(path, encoding="utf-8") as fh:
        return [(n, line.rstrip("\r\n")) for n, line in enumerate(fh, 1) if line.strip()]


def _fields(path: Path, n: int, line: str, count: int) -> list[str]:
    # image paths never hold commas in these files; split from the right so a path keeps everything else
    parts = line.rsplit(",", count - 1)
    if len(parts) != count:
        raise WSOLValueError(f"{str(path)!r} line {n}: expected {count} comma-separated fields, got {line!r}")
    return parts


def _int(path: Path, n: int, value: str, what: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise WSOLValueError(f"{str(path)!r} line {n}: {what} {value!r} is not an integer") from None


def read_metadata(metadata: str | os.PathLike) -> SplitMetadata:
    """Parse a split folder (see the module docstring); every malformed line is an error naming file and line.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = (d / "image_ids.txt").write_text("a b/x (1).png\\n")
        >>> _ = (d / "class_labels.txt").write_text("a b/x (1).png,1\\n")
        >>> _ = (d / "localization.txt").write_text("a b/x (1).png,a b/x (1)_m.png,\\n")
        >>> m = read_metadata(d)
        >>> m.image_ids, m.labels, m.kind, m.masks
        (['a b/x (1).png'], {'a b/x (1).png': 1}, 'masks', {'a b/x (1).png': ['a b/x (1)_m.png']})
    """
    root = Path(metadata)
    if not root.is_dir():
        raise WSOLValueError(f"metadata folder {str(root)!r} does not exist")
    for name in METADATA_FILES[:2]:
        if not (root / name).is_file():
            raise WSOLValueError(f"metadata folder {str(root)!r} has no {name}")
    ids_file, labels_file = root / "image_ids.txt", root / "class_labels.txt"
    image_ids = [line.strip() for _, line in _lines(ids_file)]
    if not image_ids:
        raise WSOLValueError(f"{str(ids_file)!r} lists no image")
    if len(set(image_ids)) != len(image_ids):
        dup = sorted({i for i in image_ids if image_ids.count(i) > 1})[:3]
        raise WSOLValueError(f"{str(ids_file)!r} lists images more than once: {dup}")
    labels: dict[str, int] = {}
    for n, line in _lines(labels_file):
        path, lab = _fields(labels_file, n, line, 2)
        labels[path] = _int(labels_file, n, lab, "label")
    missing = [i for i in image_ids if i not in labels]
    if missing:
        raise WSOLValueError(f"{str(labels_file)!r} has no label for {len(missing)} image(s), e.g. {missing[:3]}")
    meta = SplitMetadata(image_ids, labels)
    sizes_file = root / "image_sizes.txt"
    if sizes_file.is_file():
        for n, line in _lines(sizes_file):
            path, w, h = _fields(sizes_file, n, line, 3)
            meta.sizes[path] = (_int(sizes_file, n, w, "width"), _int(sizes_file, n, h, "height"))
    loc_file = root / "localization.txt"
    if loc_file.is_file():
        rows = _lines(loc_file)
        if rows:
            n_fields = rows[0][1].count(",") + 1
            if n_fields == 3:
                meta.kind = "masks"
                for n, line in rows:
                    path, mask, ignore = _fields(loc_file, n, line, 3)
                    if path in meta.masks:
                        meta.masks[path] += [mask] if mask else []
                        if ignore:
                            raise WSOLValueError(f"{str(loc_file)!r} line {n}: the ignore mask of {path!r} must be "
                                                 f"on its first line only")
                    else:
                        meta.masks[path] = [mask] if mask else []
                        meta.ignore[path] = ignore
            elif n_fields == 5:
                meta.kind = "boxes"
                for n, line in rows:
                    path, *coords = _fields(loc_file, n, line, 5)
                    x0, y0, x1, y1 = (_int(loc_file, n, c, "box coordinate") for c in coords)
                    meta.boxes.setdefault(path, []).append((x0, y0, x1, y1))
            else:
                raise WSOLValueError(f"{str(loc_file)!r} line {rows[0][0]}: expected <path>,<mask>,<ignore> or "
                                     f"<path>,<x0>,<y0>,<x1>,<y1>, got {rows[0][1]!r}")
    return meta


_YAML_ITEM = re.compile(r"^\s*['\"]?([^'\":]+?)['\"]?\s*:\s*(-?\d+)\s*$")


def read_encoding(path: str | os.PathLike) -> list[str]:
    """Class names in label order from an ``encoding.yaml`` such as ``{benign: 0, malignant: 1}``.

    Reads the flow form and the block form (``name: index`` per line) of a name → index mapping; indices must be
    ``0 … K-1``.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "encoding.yaml"; _ = p.write_text("{normal: 0, tumor: 1}\\n")
        >>> read_encoding(p)
        ['normal', 'tumor']
    """
    path = Path(path)
    if not path.is_file():
        raise WSOLValueError(f"encoding file {str(path)!r} does not exist")
    text = path.read_text(encoding="utf-8").strip()
    if text.startswith("{") and text.endswith("}"):
        items = [s for s in text[1:-1].split(",") if s.strip()]
    else:
        items = [s for s in text.splitlines() if s.strip() and not s.lstrip().startswith("#")]
    mapping: dict[int, str] = {}
    for item in items:
        m = _YAML_ITEM.match(item)
        if m is None:
            raise WSOLValueError(f"{str(path)!r}: cannot read {item.strip()!r} as `name: index`")
        mapping[int(m.group(2))] = m.group(1).strip()
    if sorted(mapping) != list(range(len(mapping))):
        raise WSOLValueError(f"{str(path)!r}: class indices must be 0..K-1, got {sorted(mapping)}")
    return [mapping[i] for i in range(len(mapping))]


def _read(path: Path, flags: int, what: str) -> np.ndarray:
    if not path.is_file():
        raise WSOLValueError(f"{what} {str(path)!r} does not exist")
    a = cv2.imread(str(path), flags)
    if a is None:
        raise WSOLValueError(f"cannot decode {what} {str(path)!r}")
    return a


def _read_rgb(path: Path) -> torch.Tensor:
    a = _read(path, cv2.IMREAD_UNCHANGED, "image")
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.shape[2] == 4:
        a = cv2.cvtColor(a, cv2.COLOR_BGRA2RGB)
    else:
        a = cv2.cvtColor(a[:, :, :3], cv2.COLOR_BGR2RGB)
    scale = 65535.0 if a.dtype == np.uint16 else 255.0
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float().div_(scale)


def _read_binary(path: Path, what: str) -> np.ndarray:
    a = _read(path, cv2.IMREAD_UNCHANGED, what)
    if a.ndim == 3:  # colour-coded masks: any non-zero channel
        a = a.max(axis=2)
    return a.astype(np.float32) > 0.5


class WSOLEvalDataset(Dataset):
    """One split in the wsolevaluation metadata format, as ``(image, label, mask)`` items.

    Args:
        data_root: the folder the metadata paths are relative to.
        metadata: the split folder (``image_ids.txt``, ``class_labels.txt``, ``image_sizes.txt``,
            ``localization.txt``), or a parsed :class:`SplitMetadata`.
        classes: class names in label order; default: ``encoding.yaml`` of the metadata folder or one of its two
            parents (the survey's layout), else ``["0", "1", ...]``.
        prefixes: rewrite the start of metadata paths, ``{"in the metadata": "on disk"}`` — e.g. the GlaS archive
            unpacks as ``Warwick QU Dataset (Released 2016_07_08)`` with spaces while the survey's files say
            ``Warwick_QU_Dataset_(Released_2016_07_08)``.
        transform: ``transform(image, mask) -> (image, mask)`` on ``[0, 1]`` images (after ``size``).
        preprocess: applied last to the image, e.g. :func:`wsolkit.data.preprocessing` of the model.
        size: ``(H, W)`` or int: resize image (bilinear, antialiased) and mask (nearest) first; ``None`` keeps the
            stored size.
        check_files: check at construction that every image and mask file exists (one error lists the missing).

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp()); meta = root / "meta"; meta.mkdir()
        >>> img = "Warwick_QU_Dataset_(Released_2016_07_08)/testA_1.bmp"
        >>> (root / img).parent.mkdir()
        >>> _ = cv2.imwrite(str(root / img), np.zeros((6, 8, 3), np.uint8))
        >>> anno = np.zeros((6, 8), np.uint8); anno[1:3, 1:3] = 1; anno[4:6, 4:8] = 2  # two glands
        >>> _ = cv2.imwrite(str(root / img.replace(".bmp", "_anno.bmp")), anno)
        >>> _ = (meta / "image_ids.txt").write_text(img + "\\n")
        >>> _ = (meta / "class_labels.txt").write_text(img + ",0\\n")
        >>> _ = (meta / "localization.txt").write_text(f"{img},{img.replace('.bmp', '_anno.bmp')},\\n")
        >>> image, label, mask = WSOLEvalDataset(root, meta)[0]
        >>> tuple(image.shape), label, int(mask.sum())
        ((3, 6, 8), 0, 12)
    """

    def __init__(
        self,
        data_root: str | os.PathLike,
        metadata: str | os.PathLike | SplitMetadata,
        *,
        classes: list[str] | None = None,
        prefixes: Mapping[str, str] | None = None,
        transform: Callable[[torch.Tensor, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor | None]]
        | None = None,
        preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
        size: int | tuple[int, int] | None = None,
        check_files: bool = True,
    ):
        self.data_root = Path(data_root)
        if not self.data_root.is_dir():
            raise WSOLValueError(f"data root {str(self.data_root)!r} does not exist")
        if isinstance(metadata, SplitMetadata):
            self.metadata_dir, self.meta = self.data_root, metadata
        else:
            self.metadata_dir = Path(metadata)
            self.meta = read_metadata(self.metadata_dir)
        if prefixes is not None and not isinstance(prefixes, Mapping):
            raise WSOLTypeError(f"`prefixes` must be a mapping, got {type(prefixes).__name__}")
        self.prefixes = dict(prefixes or {})
        if classes is None:
            classes = self._default_classes()
        self.classes = list(classes)
        bad = sorted({v for v in self.meta.labels.values() if not 0 <= v < len(self.classes)})
        if bad and self.classes:
            raise WSOLValueError(f"labels {bad} of {str(self.metadata_dir)!r} are outside `classes`={self.classes}")
        self.transform = transform
        self.preprocess = preprocess
        self.size = (size, size) if isinstance(size, int) else (tuple(size) if size is not None else None)
        if check_files:
            self._check_files()

    # ------------------------------------------------------------------ paths
    def _default_classes(self) -> list[str]:
        for d in (self.metadata_dir, self.metadata_dir.parent, self.metadata_dir.parent.parent):
            if (d / "encoding.yaml").is_file():
                return read_encoding(d / "encoding.yaml")
        return [str(i) for i in range(max(self.meta.labels.values()) + 1)]

    def path(self, rel: str) -> Path:
        """The file a metadata path names (after ``prefixes``)."""
        for old, new in self.prefixes.items():
            if rel.startswith(old):
                rel = new + rel[len(old):]
                break
        return self.data_root / rel

    def _check_files(self) -> None:
        missing = []
        for image_id in self.meta.image_ids:
            for rel in [image_id, *self.meta.masks.get(image_id, []), self.meta.ignore.get(image_id, "")]:
                if rel and not self.path(rel).is_file():
                    missing.append(str(self.path(rel)))
        if missing:
            shown = ", ".join(repr(m) for m in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5
                                                               else "")
            raise WSOLValueError(f"{len(missing)} file(s) named in {str(self.metadata_dir)!r} are missing under "
                                 f"{str(self.data_root)!r}: {shown}")

    # ------------------------------------------------------------------ items
    def __len__(self) -> int:
        return len(self.meta.image_ids)

    @property
    def labels(self) -> torch.Tensor:
        """``(N,)`` int64 labels."""
        return torch.tensor([self.meta.labels[i] for i in self.meta.image_ids], dtype=torch.long)

    @property
    def image_ids(self) -> list[str]:
        """Image paths as the metadata writes them."""
        return list(self.meta.image_ids)

    @property
    def has_masks(self) -> bool:
        """Whether the split's localization is masks (``valpx``, ``test``) rather than boxes or nothing."""
        return self.meta.kind == "masks"

    def boxes(self, index: int) -> torch.Tensor:
        """``(n, 4)`` int64 boxes ``(x0, y0, x1, y1)`` of item ``index`` in stored-image pixels (box splits)."""
        return torch.tensor(self.meta.boxes.get(self.meta.image_ids[index], []), dtype=torch.long).reshape(-1, 4)

    def mask(self, index: int, shape: tuple[int, int]) -> torch.Tensor:
        """The merged uint8 mask of item ``index`` at the stored size ``shape`` (0 / 1 / 255)."""
        image_id = self.meta.image_ids[index]
        if self.meta.kind != "masks":
            return torch.full(shape, IGNORE, dtype=torch.uint8)
        fg = np.zeros(shape, dtype=bool)
        for rel in self.meta.masks.get(image_id, []):
            m = _read_binary(self.path(rel), "mask")
            if m.shape != tuple(shape):
                raise WSOLValueError(f"mask {str(self.path(rel))!r} has size {m.shape} but its image has {shape}")
            fg |= m
        out = fg.astype(np.uint8)
        ignore = self.meta.ignore.get(image_id, "")
        if ignore:
            ig = _read_binary(self.path(ignore), "ignore mask")
            if ig.shape != tuple(shape):
                raise WSOLValueError(f"ignore mask {str(self.path(ignore))!r} has size {ig.shape} but its image "
                                     f"has {shape}")
            out[ig & ~fg] = IGNORE
        return torch.from_numpy(out)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, torch.Tensor]:
        image_id = self.meta.image_ids[index]
        image = _read_rgb(self.path(image_id))
        mask = self.mask(index, tuple(image.shape[-2:]))
        if self.size is not None and tuple(image.shape[-2:]) != self.size:
            image = F.interpolate(image[None], self.size, mode="bilinear", antialias=True, align_corners=False)[0]
            image = image.clamp_(0.0, 1.0)
            mask = F.interpolate(mask[None, None].float(), self.size, mode="nearest")[0, 0].to(torch.uint8)
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        if self.preprocess is not None:
            image = self.preprocess(image)
        return image, self.meta.labels[image_id], mask

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self)} images, localization={self.meta.kind}, classes={self.classes}, "
                f"metadata={str(self.metadata_dir)!r})")



def write_metadata(folder: str | os.PathLike, items: list[tuple[str, int, str | None, tuple[int, int] | None]]) -> Path:
    """Write one split folder from ``(image path, label, mask path or None, (width, height) or None)`` items.

    Paths are written as given (relative to the data root); an image without a mask gets empty fields, as the
    survey writes its normal CAMELYON16 patches.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for path, _, mask, _ in items:
        if "," in path or (mask and "," in mask):
            raise WSOLValueError(f"paths of the metadata format cannot hold commas, got {path!r} / {mask!r}")
    (folder / "image_ids.txt").write_text("".join(f"{p}\n" for p, *_ in items), encoding="utf-8")
    (folder / "class_labels.txt").write_text("".join(f"{p},{y}\n" for p, y, *_ in items), encoding="utf-8")
    (folder / "image_sizes.txt").write_text("".join(f"{p},{s[0]},{s[1]}\n" for p, _, _, s in items if s),
                                            encoding="utf-8")
    (folder / "localization.txt").write_text("".join(f"{p},{m or ''},\n" for p, _, m, _ in items),
                                             encoding="utf-8")
    return folder


def fold_dir(splits: str | os.PathLike, name: str, fold: int) -> Path:
    """``<name>/fold-K`` under the survey's ``folds/wsol-done-right-splits`` (also given as ``<name>`` or the fold)."""
    splits = Path(splits)
    for d in (splits / name / f"fold-{fold}", splits / f"fold-{fold}", splits):
        if d.name == f"fold-{fold}" and d.is_dir():
            return d
    raise WSOLValueError(f"no {name}/fold-{fold} under {str(splits)!r}: pass the survey's "
                         f"folds/wsol-done-right-splits folder (jeromerony/survey_wsl_histology)")


def camelyon_fold(data_root: str | os.PathLike, splits: str | os.PathLike, fold: int, split: str,
                  **kwargs: Any) -> WSOLEvalDataset:
    """One split of the survey's CAMELYON16 folds (``CAMELYON512/fold-K/<split>``) over the sampled patches.

    ``data_root`` holds the ``camelyon16/w-512xh-512/...`` patch folders the survey's files name (its sampling
    code, or :func:`metadata_from_camelyon_patches` for the patches of :mod:`wsolkit.data.camelyon`).
    """
    if split not in SURVEY_SPLITS:
        raise WSOLValueError(f"`split` must be one of {list(SURVEY_SPLITS)}, got {split!r}")
    return WSOLEvalDataset(data_root, fold_dir(splits, "CAMELYON512", fold) / split, **kwargs)


def metadata_from_camelyon_patches(root: str | os.PathLike, out: str | os.PathLike, *, fold: int = 0,
                                   valpx_per_class: int = 5, seed: int = 0,
                                   split_names: Mapping[str, str] | None = None) -> Path:
    """Write the survey's fold layout for the patches of :func:`wsolkit.data.camelyon.extract_patches`.

    ``out/CAMELYON512/fold-<fold>/{train,valcl,valpx,test}`` and ``out/CAMELYON512/encoding.yaml`` are written with
    paths relative to ``root`` (the folder of ``index.csv``): ``valcl`` is the whole validation split, ``valpx``
    ``valpx_per_class`` images of each class drawn from it (survey Sec. 3.3.2: 5 per class,
    :func:`wsolkit.metrics.bloc_subset`).

    Args:
        root: the patch folder (``index.csv``).
        out: where the split folders go (pass it as ``--splits`` to ``wsolkit reproduce``).
        fold: K of ``fold-K``.
        valpx_per_class: B-LOC images per class.
        seed: seed of the B-LOC draw.
        split_names: ``{"train": ..., "val": ..., "test": ...}``: the names the patch index uses for the three sets
            (default: ``train``, ``valid`` or ``val``, ``test``).
    """
    from wsolkit.data.camelyon.io import read_index
    from wsolkit.metrics.selection import bloc_subset

    root, out = Path(root), Path(out)
    if root.is_file():  # extract_patches returns the index file
        root = root.parent
    index = root / "index.csv"
    if not index.is_file():
        raise WSOLValueError(f"no index.csv under {str(root)!r}; write one with extract_patches")
    rows = read_index(index)
    present = {r["split"] for r in rows}
    names = dict(split_names or {})
    names.setdefault("train", "train")
    names.setdefault("test", "test")
    names.setdefault("val", "valid" if "valid" in present else "val")
    for key, name in names.items():
        if name not in present:
            raise WSOLValueError(f"{str(index)!r} has no {key} split named {name!r}; splits: {sorted(present)}")
    base = out / "CAMELYON512"
    base.mkdir(parents=True, exist_ok=True)
    (base / "encoding.yaml").write_text("{normal: 0, tumor: 1}\n", encoding="utf-8")
    dest = base / f"fold-{fold}"

    def items(split: str) -> list:
        sel = [r for r in rows if r["split"] == split]
        return [(r["image"], int(r["label"]), r["mask"] if int(r["label"]) == 1 else None, None) for r in sel]

    write_metadata(dest / "train", items(names["train"]))
    write_metadata(dest / "test", items(names["test"]))
    val = items(names["val"])
    write_metadata(dest / "valcl", val)
    pick = bloc_subset(torch.tensor([v[1] for v in val]), valpx_per_class, seed=seed)
    write_metadata(dest / "valpx", [val[i] for i in pick.tolist()])
    return out
