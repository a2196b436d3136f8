"""The written patches as a torch dataset, and a small procedural slide for examples and tests."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from wsolkit._checks import WSOLValueError, check_choice, check_int
from wsolkit.data.camelyon.io import read_index
from wsolkit.wsi.readers import InMemorySlide

__all__ = ["CamelyonPatches", "synthetic_slide"]


class CamelyonPatches(Dataset):
    """The patches written by :func:`extract_patches` / :func:`write_patches`, as a torch dataset.

    Items follow the contract of :class:`~wsolkit.data.SyntheticHistology`: ``(image, label, mask)``.

    Args:
        root: the folder holding ``index.csv``.
        split: keep the rows of this split (``None``: all rows).

    Shape:
        ``image`` ``(3, size, size)`` float32 in [0, 1]; ``mask`` ``(size, size)`` uint8 in {0, 1}; ``label`` int
        (0 normal, 1 metastatic).

    Example:
        >>> from wsolkit.data.camelyon import PatchProtocol, Slide, extract_patches
        >>> import tempfile
        >>> t, a = synthetic_slide(256, 256, True, seed=0)
        >>> with tempfile.TemporaryDirectory() as d:
        ...     _ = extract_patches({"train": [Slide("t", t, a)]}, d, PatchProtocol(patch_size=64))
        ...     image, label, mask = CamelyonPatches(d, "train")[0]
        >>> tuple(image.shape), label, mask.dtype
        ((3, 64, 64), 1, torch.uint8)
    """

    def __init__(self, root: str | os.PathLike, split: str | None = None) -> None:
        self.root = Path(root)
        index = self.root / "index.csv"
        if not index.is_file():
            raise FileNotFoundError(f"no index.csv under {str(self.root)!r}; write one with extract_patches")
        rows = read_index(index)
        if split is not None:
            splits = sorted({r["split"] for r in rows})
            check_choice(split, "split", splits)
            rows = [r for r in rows if r["split"] == split]
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, torch.Tensor]:
        row = self.rows[index]
        bgr = cv2.imread(str(self.root / row["image"]), cv2.IMREAD_COLOR)
        mask = cv2.imread(str(self.root / row["mask"]), cv2.IMREAD_GRAYSCALE)
        if bgr is None or mask is None:
            raise FileNotFoundError(f"cannot read {row['image']!r} or {row['mask']!r} under {str(self.root)!r}")
        image = torch.from_numpy(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).permute(2, 0, 1).float().div_(255.0)
        return image, int(row["label"]), torch.from_numpy((mask > 0).astype(np.uint8))

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Load every item: ``images (N, 3, H, W)``, ``labels (N,)``, ``masks (N, H, W)``."""
        items = [self[i] for i in range(len(self))]
        if not items:
            raise WSOLValueError(f"no patches to load under {str(self.root)!r}")
        images, labels, masks = zip(*items)
        return torch.stack(images), torch.tensor(labels, dtype=torch.long), torch.stack(masks)


# --------------------------------------------------------------------------------------------- synthetic
def synthetic_slide(
    width: int = 1024, height: int = 768, metastatic: bool = True, seed: int = 0, num_levels: int = 4
) -> tuple[InMemorySlide, InMemorySlide | None]:
    """A small procedural slide: white background, pink tissue blobs, purple tumour regions (tumour slides).

    For examples and tests of the protocol; not a realistic image (see :mod:`wsolkit.data.synthetic` for that).

    Returns:
        ``(image, annotation)`` pyramids (factor 2); ``annotation`` is ``None`` for a normal slide.

    Example:
        >>> from wsolkit.data.camelyon import PatchProtocol, Slide, extract_patches
        >>> image, annotation = synthetic_slide(256, 128, seed=0)
        >>> image.level_dimensions[0], annotation.level_dimensions[0]
        ((256, 128), (256, 128))
    """
    check_int(width, "width", 8)
    check_int(height, "height", 8)
    check_int(seed, "seed", 0)
    rng = np.random.default_rng([seed, 16])
    tissue = np.zeros((height, width), np.uint8)
    for _ in range(3):
        cx, cy = rng.uniform(0.25, 0.75) * width, rng.uniform(0.25, 0.75) * height
        axes = (int(rng.uniform(0.15, 0.35) * width), int(rng.uniform(0.15, 0.35) * height))
        cv2.ellipse(tissue, (int(cx), int(cy)), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    tumour = np.zeros_like(tissue)
    if metastatic:
        ys, xs = np.nonzero(tissue)
        for _ in range(2):
            j = int(rng.integers(len(xs)))
            r = int(rng.uniform(0.06, 0.14) * min(width, height))
            cv2.circle(tumour, (int(xs[j]), int(ys[j])), r, 1, -1)
        tumour &= tissue
    noise = rng.normal(0, 6, (height, width, 1)).astype(np.float32)
    img = np.full((height, width, 3), 245.0, np.float32)
    img[tissue > 0] = (226, 150, 196)
    img[tumour > 0] = (150, 90, 170)
    img = np.clip(img + noise * (tissue[:, :, None] > 0), 0, 255).astype(np.uint8)
    image = InMemorySlide.from_array(img, num_levels, 2, "area")
    annotation = InMemorySlide.from_array(tumour, num_levels, 2, "max") if metastatic else None
    return image, annotation
