"""A procedural, histology-like WSOL benchmark with pixel masks.

Images are rendered in optical density space with the Beer-Lambert law and the H&E stain vectors of
Ruifrok & Johnston (2001): a haematoxylin density map (nuclei, purple) and an eosin density map (stroma and
cytoplasm, pink) are drawn with OpenCV, then ``rgb = exp(-(H * h + E * e))``. Per-image stain jitter (stain
vectors, concentrations, brightness) is drawn from the same distribution for every class, so colour alone does
not give the class away.

Two kinds mimic the survey's two datasets (Rony et al., Sec. 3.3):

- ``"glas"`` (colon glands, GlaS): pink stroma with scattered fibroblast nuclei; glands are rings of epithelial
  nuclei around a pale lumen. *benign* (label 0): few round, regular glands with a single ordered layer of small
  nuclei. *malignant* (label 1): irregular, crowded glands with several layers of larger, darker nuclei and
  irregular lumens. The mask covers the glands in both classes (both classes have ROIs).
- ``"camelyon"`` (lymph node metastases, CAMELYON16): dense small lymphocytes everywhere, with paler germinal
  centres in some images of both classes. *metastatic* (label 1): one or more irregular regions of larger,
  darker, pleomorphic nuclei with more cytoplasm. *normal* (label 0) images have empty masks.

The same ``(kind, split, seed, index)`` always gives the same sample, bit for bit.
"""

from __future__ import annotations

import math
import os
import zlib
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from wsolkit._checks import check_choice, check_int
from wsolkit.data.masks import MaskConvention

__all__ = ["SyntheticHistology", "CLASS_NAMES"]

CLASS_NAMES = {"glas": ("benign", "malignant"), "camelyon": ("normal", "metastatic")}
_SPLITS = ("train", "valid", "test")

# Ruifrok & Johnston optical density vectors (R, G, B), unit norm.
_H_OD = np.array([0.650, 0.704, 0.286], dtype=np.float32)
_E_OD = np.array([0.072, 0.990, 0.105], dtype=np.float32)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1] (bicubic upsampling of a coarse random grid)."""
    grid = rng.random((cells + 1, cells + 1), dtype=np.float32)
    out = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(out, 0.0, 1.0)


def _polar_contour(
    rng: np.random.Generator, cx: float, cy: float, radius: float, irregularity: float, elong: float, n: int = 48
) -> np.ndarray:
    """A closed contour r(θ) = radius·(1 + Σ a_k cos(kθ + φ_k)) with an elliptic stretch, as int32 points."""
    theta = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    r = np.ones_like(theta)
    if irregularity > 0:
        for k in range(2, 7):
            r += irregularity * rng.uniform(0.3, 1.0) / (k - 0.8) * np.cos(k * theta + rng.uniform(0, 2 * math.pi))
    r = np.clip(r, 0.35, None) * radius
    rot = rng.uniform(0, math.pi)
    x = r * np.cos(theta) * elong
    y = r * np.sin(theta) / elong
    xs = cx + x * math.cos(rot) - y * math.sin(rot)
    ys = cy + x * math.sin(rot) + y * math.cos(rot)
    return np.stack([xs, ys], 1).round().astype(np.int32)


def _draw_nuclei(
    canvas: np.ndarray,
    rng: np.random.Generator,
    xs: np.ndarray,
    ys: np.ndarray,
    radius: float,
    radius_jitter: float,
    elong: float,
    density: tuple[float, float],
) -> None:
    """Draw filled ellipses (nuclei) into the float32 haematoxylin canvas (max blending)."""
    n = len(xs)
    if n == 0:
        return
    radii = np.maximum(radius * (1.0 + radius_jitter * rng.standard_normal(n)), 0.6)
    el = 1.0 + (elong - 1.0) * rng.random(n)
    angles = rng.uniform(0, 180, n)
    vals = rng.uniform(density[0], density[1], n)
    for x, y, r, e, a, v in zip(xs, ys, radii, el, angles, vals):
        ax = (max(int(round(r * e)), 1), max(int(round(r / e)), 1))
        cv2.ellipse(canvas, (int(x), int(y)), ax, float(a), 0, 360, float(v), -1, lineType=cv2.LINE_8)


class SyntheticHistology(Dataset):
    """Procedural histology-like images with image labels and pixel masks.

    Args:
        kind: ``"glas"`` or ``"camelyon"`` (see the module docstring).
        split: ``"train"``, ``"valid"`` or ``"test"``; splits draw from independent random streams.
        n: number of images.
        size: image side in pixels, 64 to 512.
        seed: base seed; ``(kind, split, seed, index)`` fixes a sample.

    Each item is ``(image, label, mask)``: ``image`` float32 in ``[0, 1]``, ``label`` an int (0 or 1),
    ``mask`` uint8 with 1 on the ROI. Classes are balanced (even index → class 0, odd → class 1).

    Shape:
        - image: :math:`(3, H, W)`
        - mask: :math:`(H, W)`

    Example:
        >>> ds = SyntheticHistology("glas", "train", n=4, size=64, seed=0)
        >>> image, label, mask = ds[1]
        >>> image.shape, label, mask.dtype
        (torch.Size([3, 64, 64]), 1, torch.uint8)
    """

    num_classes = 2

    def __init__(self, kind: str = "glas", split: str = "train", n: int = 200, size: int = 128, seed: int = 0):
        self.kind = check_choice(kind, "kind", CLASS_NAMES)
        self.split = check_choice(split, "split", _SPLITS)
        self.n = check_int(n, "n", low=0)
        self.size = check_int(size, "size", low=64, high=512)
        self.seed = check_int(seed, "seed", low=0)
        self.class_names = CLASS_NAMES[kind]
        self._stream = zlib.crc32(f"{kind}/{split}".encode())

    def __len__(self) -> int:
        return self.n

    def label(self, index: int) -> int:
        """Class of item ``index`` without rendering it."""
        return index % 2

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, torch.Tensor]:
        if index < 0:
            index += self.n
        if not 0 <= index < self.n:
            raise IndexError(f"index {index} out of range for a dataset of {self.n} images")
        image, mask = self.render(index)
        return torch.from_numpy(image).permute(2, 0, 1).contiguous(), self.label(index), torch.from_numpy(mask)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Render every item at once: ``images (N, 3, H, W)``, ``labels (N,)``, ``masks (N, H, W)``."""
        images = torch.empty(self.n, 3, self.size, self.size)
        masks = torch.empty(self.n, self.size, self.size, dtype=torch.uint8)
        for i in range(self.n):
            image, mask = self.render(i)
            images[i] = torch.from_numpy(image).permute(2, 0, 1)
            masks[i] = torch.from_numpy(mask)
        labels = torch.tensor([self.label(i) for i in range(self.n)], dtype=torch.long)
        return images, labels, masks

    def to_folder(self, root: str | os.PathLike, convention: MaskConvention | None = None) -> tuple[Path, Path]:
        """Write the items as files, the layout of :class:`~wsolkit.data.ImageFolderDataset`.

        ``root/images/<class name>/<split>_<index>.png`` (8-bit RGB) and ``root/masks/<split>_<index>.png`` with
        ``root/masks/dataset.json`` declaring ``convention`` (default 0/255, as mask images are usually stored).

        Returns:
            ``(images folder, masks folder)``.

        Example:
            >>> import tempfile
            >>> images, masks = SyntheticHistology("glas", "test", n=2, size=64).to_folder(tempfile.mkdtemp())
            >>> sorted(p.name for p in images.iterdir()), len(list(masks.glob("*.png")))
            (['benign', 'malignant'], 2)
        """
        from wsolkit.data.masks import BINARY_255, write_dataset_json

        convention = convention or BINARY_255
        root = Path(root)
        images, masks = root / "images", root / "masks"
        for name in self.class_names:
            (images / name).mkdir(parents=True, exist_ok=True)
        masks.mkdir(parents=True, exist_ok=True)
        lut = np.array([convention.background, convention.foreground], dtype=np.uint16)
        for i in range(self.n):
            image, mask = self.render(i)
            stem = f"{self.split}_{i:04d}"
            rgb = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
            cv2.imwrite(str(images / self.class_names[self.label(i)] / f"{stem}.png"), rgb[..., ::-1])
            stored = lut[mask]
            cv2.imwrite(str(masks / f"{stem}.png"), stored.astype(np.uint8) if stored.max() < 256 else stored)
        write_dataset_json(masks, convention, classes=list(self.class_names))
        return images, masks

    # ------------------------------------------------------------------ rendering
    def render(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Render item ``index`` as ``(image HxWx3 float32 in [0, 1], mask HxW uint8)``."""
        rng = np.random.default_rng([self.seed, self._stream, index])
        s = self.size
        hema = np.zeros((s, s), np.float32)
        eosin = np.zeros((s, s), np.float32)
        mask = np.zeros((s, s), np.uint8)
        if self.kind == "glas":
            self._render_glas(rng, self.label(index), hema, eosin, mask)
        else:
            self._render_camelyon(rng, self.label(index), hema, eosin, mask)
        return self._stain(rng, hema, eosin), mask

    def _scale(self) -> float:
        return self.size / 128.0

    def _render_glas(self, rng, label, hema, eosin, mask) -> None:
        s, k = self.size, self._scale()
        # stroma: eosin texture with fibres
        eosin += 0.45 + 0.35 * _smooth_noise(rng, s, 6) + 0.1 * _smooth_noise(rng, s, 24)
        for _ in range(int(25 * k * k)):
            x0, y0 = rng.uniform(0, s, 2)
            a = rng.uniform(0, math.pi)
            ln = rng.uniform(8, 25) * k
            cv2.line(eosin, (int(x0), int(y0)), (int(x0 + ln * math.cos(a)), int(y0 + ln * math.sin(a))),
                     float(rng.uniform(0.9, 1.2)), max(1, int(round(0.8 * k))))
        # fibroblasts: sparse elongated nuclei everywhere
        nf = int(rng.integers(20, 40) * k * k)
        _draw_nuclei(hema, rng, rng.uniform(0, s, nf), rng.uniform(0, s, nf), 1.4 * k, 0.2, 2.2, (0.6, 0.9))
        malignant = label == 1
        n_glands = int(rng.integers(3, 6)) if malignant else int(rng.integers(2, 4))
        placed: list[tuple[float, float, float]] = []
        for _ in range(n_glands):
            for _attempt in range(20):
                radius = rng.uniform(0.12, 0.2) * s if not malignant else rng.uniform(0.1, 0.19) * s
                cx, cy = rng.uniform(0.1 * s, 0.9 * s, 2)
                gap = 0.9 if malignant else 1.15
                if all(math.hypot(cx - px, cy - py) > gap * (radius + pr) for px, py, pr in placed):
                    placed.append((cx, cy, radius))
                    break
        for cx, cy, radius in placed:
            self._gland(rng, cx, cy, radius, malignant, hema, eosin, mask)

    def _gland(self, rng, cx, cy, radius, malignant, hema, eosin, mask) -> None:
        s, k = self.size, self._scale()
        irregular = rng.uniform(0.35, 0.6) if malignant else rng.uniform(0.0, 0.06)
        elong = rng.uniform(1.0, 1.5) if malignant else rng.uniform(1.0, 1.25)
        outer = _polar_contour(rng, cx, cy, radius, irregular, elong)
        region = np.zeros((s, s), np.uint8)
        cv2.fillPoly(region, [outer], 1)
        mask |= region
        inside = region.astype(bool)
        # epithelial cytoplasm: a bit denser eosin inside the gland
        eosin[inside] = 0.75 + 0.15 * eosin[inside] / max(float(eosin.max()), 1e-6)
        hema[inside] = 0.0
        # lumen: pale, regular (benign) or irregular / several (malignant)
        lumen = np.zeros((s, s), np.uint8)
        if malignant:
            for _ in range(int(rng.integers(1, 4))):
                ang, rad = rng.uniform(0, 2 * math.pi), rng.uniform(0, 0.35) * radius
                lx, ly = cx + rad * math.cos(ang), cy + rad * math.sin(ang)
                cv2.fillPoly(lumen, [_polar_contour(rng, lx, ly, radius * rng.uniform(0.12, 0.3), 0.5, 1.3)], 1)
        else:
            cv2.fillPoly(lumen, [_polar_contour(rng, cx, cy, radius * 0.55, irregular, elong)], 1)
        lumen &= region
        # epithelium nuclei
        if malignant:
            ring = cv2.erode(region, np.ones((3, 3), np.uint8), iterations=1)
            ys, xs = np.nonzero(ring & (1 - lumen))
            if len(xs):
                n = int(min(len(xs), rng.uniform(0.04, 0.055) * len(xs) / (k * k)))
                pick = rng.choice(len(xs), size=max(n, 1), replace=False)
                _draw_nuclei(hema, rng, xs[pick], ys[pick], 2.1 * k, 0.3, 1.5, (0.95, 1.35))
        else:
            # one ordered layer of small basal nuclei along the outer contour
            per = cv2.arcLength(outer.reshape(-1, 1, 2).astype(np.float32), True)
            n = max(int(per / (4.2 * k)), 6)
            t = np.linspace(0, 1, n, endpoint=False) + rng.uniform(0, 1 / n)
            pts = outer.astype(np.float32)
            seg = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(np.r_[pts, pts[:1]], axis=0), axis=1))]
            pos = t * seg[-1]
            xs = np.interp(pos, seg, np.r_[pts[:, 0], pts[0, 0]])
            ys = np.interp(pos, seg, np.r_[pts[:, 1], pts[0, 1]])
            # pull nuclei slightly inwards towards the centre
            xs = xs + (cx - xs) * 0.12
            ys = ys + (cy - ys) * 0.12
            _draw_nuclei(hema, rng, xs, ys, 1.5 * k, 0.08, 1.3, (0.75, 0.95))
        lum = lumen.astype(bool)
        eosin[lum] *= 0.15
        hema[lum] = 0.0

    def _render_camelyon(self, rng, label, hema, eosin, mask) -> None:
        s, k = self.size, self._scale()
        eosin += 0.25 + 0.25 * _smooth_noise(rng, s, 5)
        # germinal centres (paler, larger nuclei) in both classes: a texture change that is not the tumour
        follicle = np.zeros((s, s), np.uint8)
        for _ in range(int(rng.integers(0, 3))):
            cx, cy = rng.uniform(0, s, 2)
            cv2.fillPoly(follicle, [_polar_contour(rng, cx, cy, rng.uniform(0.1, 0.2) * s, 0.15, 1.2)], 1)
        tumour = np.zeros((s, s), np.uint8)
        if label == 1:
            for _ in range(int(rng.integers(1, 4))):
                cx, cy = rng.uniform(0.05 * s, 0.95 * s, 2)
                radius = rng.uniform(0.08, 0.22) * s
                cv2.fillPoly(tumour, [_polar_contour(rng, cx, cy, radius, 0.5, rng.uniform(1.0, 1.6))], 1)
        mask |= tumour
        # lymphocytes: dense small round dark nuclei outside the tumour
        area = s * s
        n_lym = int(rng.uniform(0.018, 0.026) * area / (k * k))
        xs, ys = rng.uniform(0, s, n_lym), rng.uniform(0, s, n_lym)
        keep = tumour[ys.astype(int), xs.astype(int)] == 0
        infol = follicle[ys.astype(int), xs.astype(int)] == 1
        # sparser lymphocytes in follicles
        keep &= ~infol | (rng.random(n_lym) < 0.45)
        _draw_nuclei(hema, rng, xs[keep], ys[keep], 1.3 * k, 0.12, 1.1, (0.85, 1.15))
        # centroblasts in follicles: medium, pale
        ys_f, xs_f = np.nonzero(follicle & (1 - tumour))
        if len(xs_f):
            n = int(len(xs_f) * 0.006 / (k * k))
            pick = rng.choice(len(xs_f), size=n, replace=False) if n else np.array([], int)
            _draw_nuclei(hema, rng, xs_f[pick], ys_f[pick], 2.0 * k, 0.15, 1.2, (0.45, 0.65))
        if label == 1:
            t = tumour.astype(bool)
            eosin[t] += 0.35
            ys_t, xs_t = np.nonzero(tumour)
            n = int(len(xs_t) * 0.02 / (k * k))
            if n:
                pick = rng.choice(len(xs_t), size=n, replace=False)
                _draw_nuclei(hema, rng, xs_t[pick], ys_t[pick], 2.6 * k, 0.3, 1.4, (1.05, 1.45))

    def _stain(self, rng, hema: np.ndarray, eosin: np.ndarray) -> np.ndarray:
        k = self._scale()
        sigma = 0.45 * k
        hema = cv2.GaussianBlur(hema, (0, 0), sigma)
        hema += 0.04 * rng.standard_normal(hema.shape).astype(np.float32)
        eosin += 0.05 * rng.standard_normal(eosin.shape).astype(np.float32)
        # per-image stain jitter (same distribution for every class)
        h_vec = _H_OD * rng.uniform(0.85, 1.15, 3).astype(np.float32)
        e_vec = _E_OD * rng.uniform(0.85, 1.15, 3).astype(np.float32)
        ch = rng.uniform(0.8, 1.25) * 1.25
        ce = rng.uniform(0.7, 1.3) * 0.45
        od = (np.clip(hema, 0, None) * ch)[..., None] * h_vec + (np.clip(eosin, 0, None) * ce)[..., None] * e_vec
        rgb = np.exp(-od) * rng.uniform(0.88, 1.0)
        return np.clip(rgb, 0.0, 1.0).astype(np.float32)
