"""Hide-and-Seek (HaS, Singh & Lee 2017): hide random grid patches of each training image (survey Sec. 2.2.1)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn

from wsolkit._checks import ShapeError, WSOLTypeError, check_floating, check_int, check_ndim, check_probability

__all__ = ["hide_and_seek", "has_mask", "HideAndSeek"]


def _fill_tensor(fill: float | Sequence[float] | torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    if isinstance(fill, (bool, str)):
        raise WSOLTypeError(f"`fill` must be a number, a per-channel sequence or a tensor, got {fill!r}")
    if isinstance(fill, (int, float)):
        return images.new_full((1, 1, 1, 1), float(fill))
    if isinstance(fill, torch.Tensor):
        t = fill.to(device=images.device, dtype=images.dtype)
    elif isinstance(fill, Sequence):
        t = images.new_tensor([float(v) for v in fill])
    else:
        raise WSOLTypeError(f"`fill` must be a number, a per-channel sequence or a tensor, got {type(fill).__name__}")
    channels = images.shape[1]
    if t.numel() == 1:
        return t.reshape(1, 1, 1, 1)
    if t.ndim != 1 or t.numel() != channels:
        raise ShapeError(
            f"`fill` must be a scalar or have one value per channel ({channels}), got shape {tuple(t.shape)}"
        )
    return t.view(1, channels, 1, 1)


def has_mask(
    batch: int,
    size: Sequence[int],
    grid_size: int,
    drop_rate: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Boolean "hidden" mask of Hide-and-Seek: each ``grid_size`` × ``grid_size`` cell is hidden with probability
    ``drop_rate``, independently per image.

    The grid starts at the top-left corner; when the image size is not a multiple of ``grid_size`` the last row /
    column of cells is partial (every pixel belongs to exactly one cell).

    Args:
        batch: number of images B.
        size: image size ``(H, W)``.
        grid_size: side of a square cell in pixels (survey Table 9 grid: 8, 16, 32, 44, 56).
        drop_rate: probability that a cell is hidden.
        generator: random generator (reproducibility).
        device: device of the mask.

    Returns:
        ``True`` where a pixel is hidden.

    Shape:
        - output: :math:`(B, H, W)`

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> has_mask(2, (4, 6), grid_size=2, drop_rate=1.0, generator=g).all()
        tensor(True)
    """
    check_int(batch, "batch", low=0)
    h, w = (int(s) for s in size)
    check_int(grid_size, "grid_size", low=1)
    if grid_size > min(h, w):
        raise ShapeError(f"`grid_size`={grid_size} is larger than the image (H, W)=({h}, {w})")
    check_probability(drop_rate, "drop_rate")
    gh, gw = math.ceil(h / grid_size), math.ceil(w / grid_size)
    cells = torch.rand((batch, gh, gw), generator=generator, device=generator.device if generator else device)
    hidden = cells < drop_rate
    hidden = hidden.repeat_interleave(grid_size, 1).repeat_interleave(grid_size, 2)[:, :h, :w]
    return hidden.to(device) if device is not None else hidden


def hide_and_seek(
    images: torch.Tensor,
    grid_size: int = 32,
    drop_rate: float = 0.5,
    fill: float | Sequence[float] | torch.Tensor = 0.0,
    training: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Hide-and-Seek batch transform: hidden grid cells of each image are replaced by ``fill``.

    At training time the network only sees part of each object, so it has to find every discriminative part
    instead of the most discriminative one (Singh & Lee 2017). Identity when ``training`` is ``False``.

    Args:
        images: batch of images (usually already standardised).
        grid_size: cell side in pixels; must not exceed the image size.
        drop_rate: probability that a cell is hidden, in ``[0, 1]``.
        fill: value written into hidden cells: a number (``0`` = the dataset mean after standardisation) or one
            value per channel (e.g. the dataset mean for un-standardised images).
        training: apply the transform; ``False`` returns ``images`` unchanged.
        generator: random generator for reproducible masks.

    Returns:
        The transformed batch (a new tensor; the input is not modified).

    Shape:
        - images: :math:`(B, C, H, W)`
        - output: :math:`(B, C, H, W)`

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> out = hide_and_seek(torch.ones(2, 3, 8, 8), grid_size=4, drop_rate=0.5, generator=g)
        >>> out.shape, bool(((out == 0) | (out == 1)).all())
        (torch.Size([2, 3, 8, 8]), True)
    """
    check_ndim(images, "images", 4, "(B, C, H, W)")
    check_floating(images, "images")
    check_int(grid_size, "grid_size", low=1)
    check_probability(drop_rate, "drop_rate")
    fill_t = _fill_tensor(fill, images)
    h, w = images.shape[-2:]
    if grid_size > min(h, w):
        raise ShapeError(f"`grid_size`={grid_size} is larger than the image: `images` has shape {tuple(images.shape)}")
    if not training or drop_rate == 0.0:
        return images
    hidden = has_mask(images.shape[0], (h, w), grid_size, drop_rate, generator).to(images.device)
    return torch.where(hidden[:, None], fill_t.expand_as(images), images)


class HideAndSeek(nn.Module):
    """Module form of :func:`hide_and_seek`; active in ``train()`` mode, identity in ``eval()``.

    Args:
        grid_size: cell side in pixels.
        drop_rate: probability that a cell is hidden.
        fill: value for hidden cells (number or one value per channel).
        generator: optional random generator.

    Shape:
        - input: :math:`(B, C, H, W)`
        - output: :math:`(B, C, H, W)`

    Example:
        >>> has = HideAndSeek(grid_size=16, drop_rate=0.5).eval()
        >>> x = torch.randn(2, 3, 32, 32)
        >>> torch.equal(has(x), x)
        True
    """

    def __init__(
        self,
        grid_size: int = 32,
        drop_rate: float = 0.5,
        fill: float | Sequence[float] | torch.Tensor = 0.0,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.grid_size = check_int(grid_size, "grid_size", low=1)
        self.drop_rate = check_probability(drop_rate, "drop_rate")
        self.fill = fill
        self.generator = generator

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return hide_and_seek(images, self.grid_size, self.drop_rate, self.fill, self.training, self.generator)

    def extra_repr(self) -> str:
        return f"grid_size={self.grid_size}, drop_rate={self.drop_rate}, fill={self.fill}"
