"""Augmentations that move masks with images, and stain jitter in HED space for histology.

Every transform is called as ``transform(image, mask) -> (image, mask)`` with ``image`` a float ``(3, H, W)`` tensor
in ``[0, 1]`` and ``mask`` a ``(H, W)`` uint8 tensor (0 / 1 / 255) or ``None``. Geometric transforms apply the same
draw to both; photometric ones leave the mask alone. Randomness comes from torch's global generator, which a
:class:`~torch.utils.data.DataLoader` seeds per worker, so the transforms work with ``num_workers > 0``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError, check_number

__all__ = ["Compose", "RandomDihedral", "RandomCrop", "HEDJitter", "RGB_FROM_HED", "rgb_to_hed", "hed_to_rgb",
           "default_augmentation"]

Pair = tuple[torch.Tensor, "torch.Tensor | None"]

#: Ruifrok & Johnston (2001) stain optical-density vectors (rows: haematoxylin, eosin, DAB), as in scikit-image
RGB_FROM_HED = ((0.65, 0.70, 0.29), (0.07, 0.99, 0.11), (0.27, 0.57, 0.78))
_EPS = 1e-6


def _check(image: torch.Tensor, mask: torch.Tensor | None) -> None:
    if not isinstance(image, torch.Tensor) or image.ndim != 3:
        raise ShapeError(f"`image` must be a (C, H, W) tensor, got {getattr(image, 'shape', type(image).__name__)}")
    if mask is not None and tuple(mask.shape) != tuple(image.shape[-2:]):
        raise ShapeError(f"`mask` must have shape {tuple(image.shape[-2:])} to match `image`, got {tuple(mask.shape)}")


class Compose:
    """Apply transforms in order.

    Example:
        >>> t = Compose([RandomDihedral(), HEDJitter(0.0, 0.0)])
        >>> image, mask = t(torch.rand(3, 8, 8), torch.zeros(8, 8, dtype=torch.uint8))
        >>> image.shape, mask.shape
        (torch.Size([3, 8, 8]), torch.Size([8, 8]))
    """

    def __init__(self, transforms: Sequence[Callable[[torch.Tensor, torch.Tensor | None], Pair]]):
        self.transforms = list(transforms)

    def __call__(self, image: torch.Tensor, mask: torch.Tensor | None = None) -> Pair:
        for t in self.transforms:
            image, mask = t(image, mask)
        return image, mask

    def __repr__(self) -> str:
        return f"Compose({self.transforms})"


class RandomDihedral:
    """A uniform element of the dihedral group: random horizontal flip, vertical flip and transpose (8 outcomes).

    Histology has no canonical orientation, so every flip / 90° rotation of a patch is as likely as the patch.
    The transpose (rot90 composed with a flip) needs square images; non-square images get flips only.

    Example:
        >>> image = torch.arange(4.0).view(1, 2, 2).expand(3, 2, 2)
        >>> mask = torch.tensor([[1, 0], [0, 0]], dtype=torch.uint8)
        >>> out, m = RandomDihedral()(image, mask)
        >>> bool((out[0] == 0).eq(m == 1).all())  # the mask still marks pixel value 0
        True
    """

    def __call__(self, image: torch.Tensor, mask: torch.Tensor | None = None) -> Pair:
        _check(image, mask)
        flips = torch.rand(3) < 0.5
        if flips[0]:
            image, mask = image.flip(-1), (mask.flip(-1) if mask is not None else None)
        if flips[1]:
            image, mask = image.flip(-2), (mask.flip(-2) if mask is not None else None)
        if flips[2] and image.shape[-1] == image.shape[-2]:
            image, mask = image.transpose(-1, -2), (mask.transpose(-1, -2) if mask is not None else None)
        return image.contiguous(), (mask.contiguous() if mask is not None else None)

    def __repr__(self) -> str:
        return "RandomDihedral()"


class RandomCrop:
    """A random ``size`` crop at the same place in the image and the mask.

    Args:
        size: ``(h, w)`` or an int; must not exceed the image.

    Example:
        >>> image, mask = RandomCrop(4)(torch.rand(3, 8, 8), torch.ones(8, 8, dtype=torch.uint8))
        >>> image.shape, mask.shape
        (torch.Size([3, 4, 4]), torch.Size([4, 4]))
    """

    def __init__(self, size: int | tuple[int, int]):
        hw = (size, size) if isinstance(size, int) else tuple(size)
        if len(hw) != 2 or any(not isinstance(v, int) or v < 1 for v in hw):
            raise WSOLValueError(f"`size` must be a positive int or (h, w), got {size!r}")
        self.size = hw

    def __call__(self, image: torch.Tensor, mask: torch.Tensor | None = None) -> Pair:
        _check(image, mask)
        h, w = self.size
        H, W = image.shape[-2:]
        if h > H or w > W:
            raise ShapeError(f"crop size {(h, w)} exceeds the image size {(H, W)}")
        top = int(torch.randint(0, H - h + 1, ()))
        left = int(torch.randint(0, W - w + 1, ()))
        image = image[:, top : top + h, left : left + w]
        return image, (mask[top : top + h, left : left + w] if mask is not None else None)

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size})"


def _matrices(dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    m = torch.tensor(RGB_FROM_HED, dtype=torch.float64)
    return m.to(dtype=dtype, device=device), torch.linalg.inv(m).to(dtype=dtype, device=device)


def rgb_to_hed(image: torch.Tensor) -> torch.Tensor:
    """Stain concentrations ``(3, H, W)`` (H, E, D) of an RGB image in ``[0, 1]``: ``OD = -ln(max(rgb, 1e-6))``,
    ``hed = OD · M⁻¹`` with ``M`` = :data:`RGB_FROM_HED` (Ruifrok & Johnston colour deconvolution)."""
    m, inv = _matrices(image.dtype, image.device)
    od = -torch.log(image.clamp_min(_EPS))
    return torch.einsum("chw,cd->dhw", od, inv)


def hed_to_rgb(hed: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_hed`: ``rgb = exp(-hed · M)`` clipped to ``[0, 1]``."""
    m, _ = _matrices(hed.dtype, hed.device)
    return torch.exp(-torch.einsum("dhw,dc->chw", hed, m)).clamp(0.0, 1.0)


class HEDJitter:
    """Stain augmentation in HED space (Tellez et al. 2018): ``hed'_c = alpha_c · hed_c + beta_c``.

    ``alpha_c ~ U(1 - sigma, 1 + sigma)`` and ``beta_c ~ U(-bias, bias)`` per stain channel, drawn per image. The
    concentrations come from :func:`rgb_to_hed`. Masks are unchanged.

    Args:
        sigma: range of the multiplicative jitter.
        bias: range of the additive jitter (optical density units).

    Example:
        >>> image = torch.rand(3, 8, 8) * 0.8 + 0.1
        >>> torch.allclose(HEDJitter(0.0, 0.0)(image)[0], image, atol=1e-5)
        True
    """

    def __init__(self, sigma: float = 0.05, bias: float = 0.05):
        self.sigma = check_number(sigma, "sigma", 0.0, 1.0)
        self.bias = check_number(bias, "bias", 0.0, 1.0)

    def __call__(self, image: torch.Tensor, mask: torch.Tensor | None = None) -> Pair:
        _check(image, mask)
        if image.shape[0] != 3:
            raise ShapeError(f"`image` must be RGB (3, H, W), got {tuple(image.shape)}")
        if not image.is_floating_point():
            raise WSOLTypeError(f"`image` must be floating point in [0, 1], got {image.dtype}")
        alpha = 1.0 + (torch.rand(3) * 2 - 1) * self.sigma
        beta = (torch.rand(3) * 2 - 1) * self.bias
        hed = rgb_to_hed(image)
        hed = hed * alpha.to(hed).view(3, 1, 1) + beta.to(hed).view(3, 1, 1)
        return hed_to_rgb(hed), mask

    def __repr__(self) -> str:
        return f"HEDJitter(sigma={self.sigma}, bias={self.bias})"


def default_augmentation(stain: bool = True) -> Compose:
    """Flips / 90° rotations, plus HED stain jitter when ``stain``: a sensible start for histology patches.

    Example:
        >>> default_augmentation()
        Compose([RandomDihedral(), HEDJitter(sigma=0.05, bias=0.05)])
    """
    return Compose([RandomDihedral()] + ([HEDJitter()] if stain else []))
