"""Pseudo-label seeds from a frozen classifier's CAM: the F-CAM seeder (Otsu ROI) and NEGEV's probability seeder.

Seeds are ``(B, H, W)`` int64 maps with 1 (foreground), 0 (background) and ``ignore_index`` elsewhere. They are
redrawn at every call from a seeded :class:`torch.Generator` on the CAM's device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from wsolkit import cams as cam_ops
from wsolkit._checks import (
    WSOLTypeError,
    WSOLValueError,
    check_finite,
    check_floating,
    check_int,
    check_ndim,
    check_number,
    check_tensor,
)

__all__ = [
    "otsu_threshold",
    "erode",
    "dilate",
    "seed_map",
    "fcam_seeds",
    "negev_seeds",
    "sampling_weights",
    "FCAMSeeder",
    "NEGEVSeeder",
]

_FLT_EPSILON = 1.1920928955078125e-07


def otsu_threshold(images: torch.Tensor) -> torch.Tensor:
    """Otsu's threshold of each uint8 image, computed as OpenCV's ``THRESH_OTSU`` does (same float64 recursion).

    ``cv2.threshold(img, 0, 255, THRESH_BINARY + THRESH_OTSU)`` returns this value; pixels ``> t`` are foreground.
    A constant image gives 0.

    Args:
        images: uint8 images.

    Returns:
        Thresholds (int64).

    Shape:
        - images: :math:`(B, H, W)`
        - output: :math:`(B,)`

    Example:
        >>> img = torch.tensor([[[10, 10, 200, 200]]], dtype=torch.uint8)
        >>> otsu_threshold(img)
        tensor([10])
    """
    check_ndim(images, "images", 3, "(B, H, W)")
    if images.dtype != torch.uint8:
        raise WSOLTypeError(f"`images` must be a uint8 tensor, got dtype {images.dtype}")
    b = images.shape[0]
    n = images.shape[1] * images.shape[2]
    if n == 0:
        raise WSOLValueError(f"`images` must have pixels, got shape {tuple(images.shape)}")
    flat = images.reshape(b, -1).long()
    hist = torch.zeros(b, 256, dtype=torch.float64, device=images.device)
    hist.scatter_add_(1, flat, torch.ones_like(flat, dtype=torch.float64))
    scale = 1.0 / n
    levels = torch.arange(256, dtype=torch.float64, device=images.device)
    mu = (hist * levels).sum(1) * scale
    mu1 = torch.zeros(b, dtype=torch.float64, device=images.device)
    q1 = torch.zeros_like(mu1)
    max_sigma = torch.zeros_like(mu1)
    max_val = torch.zeros(b, dtype=torch.int64, device=images.device)
    # OpenCV getThreshVal_Otsu_8u, vectorised over the batch
    for i in range(256):
        p_i = hist[:, i] * scale
        mu1 = mu1 * q1
        q1 = q1 + p_i
        q2 = 1.0 - q1
        valid = ~((torch.minimum(q1, q2) < _FLT_EPSILON) | (torch.maximum(q1, q2) > 1.0 - _FLT_EPSILON))
        new_mu1 = (mu1 + i * p_i) / torch.where(valid, q1, torch.ones_like(q1))
        # on skipped levels OpenCV keeps mu1 * q1 (it ``continue``s after the multiplication)
        mu1 = torch.where(valid, new_mu1, mu1)
        mu2 = (mu - q1 * mu1) / torch.where(valid, q2, torch.ones_like(q2))
        sigma = q1 * q2 * (mu1 - mu2) * (mu1 - mu2)
        better = valid & (sigma > max_sigma)
        max_sigma = torch.where(better, sigma, max_sigma)
        max_val = torch.where(better, torch.full_like(max_val, i), max_val)
    return max_val


def _check_mask(mask: torch.Tensor, name: str) -> torch.Tensor:
    check_ndim(mask, name, 3, "(B, H, W)")
    if mask.dtype != torch.bool:
        raise WSOLTypeError(f"`{name}` must be a bool tensor, got dtype {mask.dtype}")
    return mask


def erode(mask: torch.Tensor, ksize: int) -> torch.Tensor:
    """Binary erosion with a ``ksize``×``ksize`` square (as ``cv2.erode``: outside the image does not erode).

    Shape:
        - mask: :math:`(B, H, W)` bool; output: same

    Example:
        >>> m = torch.ones(1, 4, 5, dtype=torch.bool); m[0, 0, 0] = False
        >>> erode(m, 3)[0].int()
        tensor([[0, 0, 1, 1, 1],
                [0, 0, 1, 1, 1],
                [1, 1, 1, 1, 1],
                [1, 1, 1, 1, 1]], dtype=torch.int32)
    """
    _check_mask(mask, "mask")
    check_int(ksize, "ksize", low=1)
    if ksize == 1:
        return mask.clone()
    return ~dilate(~mask, ksize)


def dilate(mask: torch.Tensor, ksize: int) -> torch.Tensor:
    """Binary dilation with a ``ksize``×``ksize`` square, anchor ``ksize // 2`` (as ``cv2.dilate``).

    Shape:
        - mask: :math:`(B, H, W)` bool; output: same

    Example:
        >>> m = torch.zeros(1, 3, 3, dtype=torch.bool); m[0, 1, 1] = True
        >>> bool(dilate(m, 3).all())
        True
    """
    _check_mask(mask, "mask")
    check_int(ksize, "ksize", low=1)
    if ksize == 1:
        return mask.clone()
    lo = ksize // 2  # OpenCV's default anchor
    hi = ksize - 1 - lo
    x = F.pad(mask[:, None].float(), (lo, hi, lo, hi), value=0.0)
    return F.max_pool2d(x, ksize, stride=1)[:, 0] > 0.5


def seed_map(cams: torch.Tensor, labels: torch.Tensor | int | None, size: int | Sequence[int]) -> torch.Tensor:
    """The CAM used for seeding: target-class map → per-image min-max at low resolution → bilinear upsampling.

    Args:
        cams: raw classifier CAMs.
        labels: target classes (``None``: not allowed unless ``C == 1``).
        size: output ``(H, W)``.

    Shape:
        - cams: :math:`(B, C, h, w)`; output: :math:`(B, H, W)` in ``[0, 1]``

    Example:
        >>> seed_map(torch.arange(4.0).view(1, 1, 2, 2), None, 4).shape
        torch.Size([1, 4, 4])
    """
    check_floating(cams, "cams")
    maps = cam_ops.normalize(cam_ops.select(cams.detach(), labels))
    return cam_ops.upsample(maps, size).clamp_(0.0, 1.0)


def _check_cam(cam: torch.Tensor) -> torch.Tensor:
    check_ndim(cam, "cam", 3, "(B, H, W)")
    check_floating(cam, "cam")
    check_finite(cam, "cam")
    if cam.numel() and (float(cam.min()) < 0.0 or float(cam.max()) > 1.0):
        raise WSOLValueError(
            f"`cam` must be normalised to [0, 1], got values in [{float(cam.min()):.4g}, {float(cam.max()):.4g}]"
        )
    return cam


def _check_counts(n_fg: int, n_bg: int, min_p: float | None, dilation: int) -> None:
    check_int(n_fg, "n_fg", low=0)
    check_int(n_bg, "n_bg", low=0)
    if min_p is not None:
        check_number(min_p, "min_p", low=0.0, high=1.0, low_inclusive=False)
    check_int(dilation, "dilation", low=1)


def _sample(weights: torch.Tensor, n: int, generator: torch.Generator | None) -> torch.Tensor:
    """Draw ``min(n, #positive weights)`` pixels per row without replacement, ∝ ``weights``; bool mask (B, N).

    Efraimidis-Spirakis keys ``log(u) / w`` (``w = 0`` → never drawn); the ``n`` largest keys form the sample.
    """
    out = torch.zeros_like(weights, dtype=torch.bool)
    if n == 0 or weights.shape[1] == 0:
        return out
    u = torch.rand(weights.shape, generator=generator, device=weights.device, dtype=torch.float64)
    u = u.clamp_min(torch.finfo(torch.float64).tiny)
    w = weights.double()
    keys = torch.where(w > 0, torch.log(u) / w.clamp_min(torch.finfo(torch.float64).tiny), -math.inf)
    k = min(n, weights.shape[1])
    top, idx = keys.topk(k, dim=1)
    out.scatter_(1, idx, top > -math.inf)
    return out


def _lowest(cam: torch.Tensor, min_p: float) -> torch.Tensor:
    """Mask of the ``max(1, floor(min_p·N))`` lowest-valued pixels of each row (ties: lower index first)."""
    b, n = cam.shape
    k = max(1, int(math.floor(min_p * n + 1e-9)))
    order = torch.argsort(cam, dim=1, stable=True)[:, :k]
    out = torch.zeros_like(cam, dtype=torch.bool)
    out.scatter_(1, order, True)
    return out


def _assemble(fg: torch.Tensor, bg: torch.Tensor, shape: torch.Size, dilation: int, ignore_index: int) -> torch.Tensor:
    fg = dilate(fg.view(shape), dilation)
    bg = dilate(bg.view(shape), dilation)
    seeds = torch.full(shape, ignore_index, dtype=torch.int64, device=fg.device)
    seeds[fg] = 1
    seeds[bg] = 0
    seeds[fg & bg] = ignore_index  # conflicts -> ignore
    return seeds


def fcam_seeds(
    cam: torch.Tensor,
    n_fg: int = 1,
    n_bg: int = 1,
    min_p: float = 0.1,
    erosion: int = 3,
    dilation: int = 1,
    generator: torch.Generator | None = None,
    ignore_index: int = 255,
) -> torch.Tensor:
    """F-CAM seeds: foreground in the eroded Otsu ROI, background among the lowest ``min_p`` fraction of the CAM.

    The CAM is quantised to uint8 (``floor(255·cam)``); Otsu's threshold ``t`` (as OpenCV) gives the ROI
    ``cam_u8 > t``, eroded with an ``erosion``×``erosion`` square (if erosion empties it, the un-eroded ROI is used).
    ``n_fg`` pixels are drawn uniformly without replacement in the ROI and ``n_bg`` among the
    ``max(1, floor(min_p·HW))`` lowest-CAM pixels; both sets are dilated with a ``dilation`` square and pixels in
    both become ``ignore_index``.

    Args:
        cam: normalised CAMs (see :func:`seed_map`).
        n_fg: foreground seeds per image (fewer if the ROI is smaller).
        n_bg: background seeds per image.
        min_p: fraction of the lowest-CAM pixels eligible as background, in ``(0, 1]``.
        erosion: erosion kernel size of the ROI (1: none).
        dilation: dilation kernel size of the seeds (1: none).
        generator: random generator on ``cam``'s device.
        ignore_index: label of unseeded pixels.

    Returns:
        Seeds, int64 in ``{0, 1, ignore_index}``.

    Shape:
        - cam: :math:`(B, H, W)`; output: :math:`(B, H, W)`

    Example:
        >>> cam = torch.zeros(1, 8, 8); cam[0, 2:6, 2:6] = 1.0
        >>> s = fcam_seeds(cam, n_fg=3, n_bg=5, generator=torch.Generator().manual_seed(0))
        >>> int((s == 1).sum()), int((s == 0).sum()), bool((cam[s == 1] == 1).all())
        (3, 5, True)
    """
    _check_cam(cam)
    _check_counts(n_fg, n_bg, min_p, dilation)
    check_int(erosion, "erosion", low=1)
    b, h, w = cam.shape
    u8 = (cam * 255.0).floor().clamp_(0, 255).to(torch.uint8)
    t = otsu_threshold(u8)
    roi = u8.long() > t.view(b, 1, 1)
    eroded = erode(roi, erosion)
    empty = ~eroded.flatten(1).any(1)
    roi = torch.where(empty.view(b, 1, 1), roi, eroded)
    fg = _sample(roi.flatten(1).to(cam.dtype), n_fg, generator)
    bg = _sample(_lowest(cam.flatten(1), min_p).to(cam.dtype), n_bg, generator)
    return _assemble(fg, bg, cam.shape, dilation, ignore_index)


#: sampling weights of :func:`negev_seeds`
SAMPLERS = ("cam", "reference")
_REFERENCE_EPS = 1e-6


def sampling_weights(cam: torch.Tensor, sampler: str = "cam") -> tuple[torch.Tensor, torch.Tensor]:
    """Foreground and background sampling weights of :func:`negev_seeds` per pixel (rows of ``cam``).

    - ``"cam"`` (default): foreground ∝ ``cam``, background ∝ ``1 − cam`` — background draws follow the CAM's
      low regions (the method as the NEGEV paper describes it: background "sampled ∝ low CAM activations").
    - ``"reference"``: the authors' ``_ProbaSampler`` (``sbelharbi/negev``, the seeding module that defines
      ``MBProbSeederSLCAMS``):
      ``c = (cam + ε) / Σ(cam + ε)`` with ``ε = 1e-6``; foreground ∝ ``c``, background ∝ ``1 − c``. As ``c`` sums to
      1 over ``H·W`` pixels, ``1 − c`` is within ``1/(H·W)`` of 1 everywhere: background draws are nearly uniform
      over the image (including the object).

    Shape:
        - cam: :math:`(B, N)` in ``[0, 1]``; outputs: :math:`(B, N)`

    Example:
        >>> fg, bg = sampling_weights(torch.tensor([[0.0, 1.0]]), "reference")
        >>> [round(v, 4) for v in bg[0].tolist()]
        [1.0, 0.0]
    """
    if sampler == "cam":
        return cam, 1.0 - cam
    if sampler == "reference":
        c = cam.double() + _REFERENCE_EPS
        c = c / c.sum(dim=-1, keepdim=True)
        return c.to(cam.dtype), (1.0 - c).to(cam.dtype)
    raise WSOLValueError(f"`sampler` must be one of {SAMPLERS}, got {sampler!r}")


def negev_seeds(
    cam: torch.Tensor,
    n_fg: int = 1,
    n_bg: int = 1,
    min_p: float | None = None,
    dilation: int = 1,
    generator: torch.Generator | None = None,
    ignore_index: int = 255,
    sampler: str = "cam",
) -> torch.Tensor:
    """NEGEV probability seeds: foreground drawn ∝ CAM, background ∝ 1 − CAM (optionally among the lowest ``min_p``).

    Draws are without replacement (fewer when fewer pixels have a positive probability); both sets are dilated
    with a ``dilation`` square and pixels drawn as both become ``ignore_index``. ``sampler="reference"`` uses the
    authors' nearly uniform background weights instead (see :func:`sampling_weights`).

    Args:
        cam: normalised CAMs (see :func:`seed_map`).
        n_fg: foreground seeds per image.
        n_bg: background seeds per image.
        min_p: if given, background is drawn only among the ``max(1, floor(min_p·HW))`` lowest-CAM pixels.
        dilation: dilation kernel size of the seeds (1: none).
        generator: random generator on ``cam``'s device.
        ignore_index: label of unseeded pixels.
        sampler: ``"cam"`` or ``"reference"`` (:func:`sampling_weights`).

    Returns:
        Seeds, int64 in ``{0, 1, ignore_index}``.

    Shape:
        - cam: :math:`(B, H, W)`; output: :math:`(B, H, W)`

    Example:
        >>> cam = torch.zeros(1, 8, 8); cam[0, :, :4] = 1.0
        >>> s = negev_seeds(cam, n_fg=4, n_bg=4, generator=torch.Generator().manual_seed(0))
        >>> bool((cam[s == 1] == 1).all() and (cam[s == 0] == 0).all())
        True
    """
    _check_cam(cam)
    _check_counts(n_fg, n_bg, min_p, dilation)
    flat = cam.flatten(1)
    wfg, wbg = sampling_weights(flat, sampler)
    fg = _sample(wfg, n_fg, generator)
    if min_p is not None:
        wbg = wbg * _lowest(flat, min_p).to(flat.dtype)
    bg = _sample(wbg, n_bg, generator)
    return _assemble(fg, bg, cam.shape, dilation, ignore_index)


class _Seeder(nn.Module):
    def __init__(self, seed: int, ignore_index: int):
        super().__init__()
        self.seed = check_int(seed, "seed", low=0)
        self.ignore_index = check_int(ignore_index, "ignore_index")
        self._generators: dict[str, torch.Generator] = {}

    def generator(self, device: torch.device) -> torch.Generator:
        """The seeder's random generator on ``device`` (created from ``seed`` on first use)."""
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[key]

    def reset(self) -> None:
        """Restart the random streams from ``seed``."""
        self._generators.clear()


class FCAMSeeder(_Seeder):
    """Module form of :func:`fcam_seeds` holding the hyper-parameters and a seeded generator (redraws each call).

    Shape:
        - cam: :math:`(B, H, W)` in ``[0, 1]``; output: :math:`(B, H, W)` int64

    Example:
        >>> seeder = FCAMSeeder(n_fg=2, n_bg=2, seed=0)
        >>> seeder(torch.rand(2, 16, 16)).shape
        torch.Size([2, 16, 16])
    """

    def __init__(
        self,
        n_fg: int = 1,
        n_bg: int = 1,
        min_p: float = 0.1,
        erosion: int = 3,
        dilation: int = 1,
        seed: int = 0,
        ignore_index: int = 255,
    ):
        super().__init__(seed, ignore_index)
        _check_counts(n_fg, n_bg, min_p, dilation)
        self.n_fg, self.n_bg, self.min_p = n_fg, n_bg, float(min_p)
        self.erosion, self.dilation = check_int(erosion, "erosion", low=1), dilation

    def forward(self, cam: torch.Tensor) -> torch.Tensor:
        check_tensor(cam, "cam")
        return fcam_seeds(
            cam, self.n_fg, self.n_bg, self.min_p, self.erosion, self.dilation, self.generator(cam.device),
            self.ignore_index,
        )

    def extra_repr(self) -> str:
        return (
            f"n_fg={self.n_fg}, n_bg={self.n_bg}, min_p={self.min_p}, erosion={self.erosion}, "
            f"dilation={self.dilation}, seed={self.seed}"
        )


class NEGEVSeeder(_Seeder):
    """Module form of :func:`negev_seeds` holding the hyper-parameters and a seeded generator (redraws each call).

    Shape:
        - cam: :math:`(B, H, W)` in ``[0, 1]``; output: :math:`(B, H, W)` int64

    Example:
        >>> seeder = NEGEVSeeder(n_fg=2, n_bg=2, min_p=0.3, seed=0)
        >>> seeder(torch.rand(2, 16, 16)).shape
        torch.Size([2, 16, 16])
    """

    def __init__(
        self,
        n_fg: int = 1,
        n_bg: int = 1,
        min_p: float | None = None,
        dilation: int = 1,
        seed: int = 0,
        ignore_index: int = 255,
        sampler: str = "cam",
    ):
        super().__init__(seed, ignore_index)
        _check_counts(n_fg, n_bg, min_p, dilation)
        if sampler not in SAMPLERS:
            raise WSOLValueError(f"`sampler` must be one of {SAMPLERS}, got {sampler!r}")
        self.sampler = sampler
        self.n_fg, self.n_bg = n_fg, n_bg
        self.min_p = None if min_p is None else float(min_p)
        self.dilation = dilation

    def forward(self, cam: torch.Tensor) -> torch.Tensor:
        check_tensor(cam, "cam")
        return negev_seeds(
            cam, self.n_fg, self.n_bg, self.min_p, self.dilation, self.generator(cam.device), self.ignore_index,
            self.sampler,
        )

    def extra_repr(self) -> str:
        return (f"n_fg={self.n_fg}, n_bg={self.n_bg}, min_p={self.min_p}, dilation={self.dilation}, seed={self.seed}, "
                f"sampler={self.sampler!r}")
