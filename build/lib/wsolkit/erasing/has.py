"""Hide-and-Seek (HaS, Singh & Lee 2017): hide random grid patches of each training image (survey Sec. 2.2.1)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn

from wsolkit._checks import ShapeError, WSOLTypeError, check_floating, check_int, check_ndim, check_probability

__all__ = ["HAS_GRID_SIZES", "hide_and_seek", "has_mask", "HideAndSeek"]

#: The grid sizes of the authors' code (``kkanshul/Hide-and-Seek``, ``hide_patch``), for 224 px images; 0 = no hiding.
HAS_GRID_SIZES: tuple[int, ...] = (0, 16, 32, 44, 56)


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


def _check_grid_sizes(grid_sizes: Sequence[int]) -> tuple[int, ...]:
    if isinstance(grid_sizes, (str, bytes)) or not isinstance(grid_sizes, Sequence) or len(grid_sizes) == 0:
        raise WSOLTypeError(f"`grid_sizes` must be a non-empty sequence of ints, got {grid_sizes!r}")
    return tuple(check_int(g, "grid_sizes", low=0) for g in grid_sizes)


def _draw_grid_sizes(
    batch: int, grid_sizes: Sequence[int], generator: torch.Generator | None = None
) -> torch.Tensor:
    """One grid size per image, uniformly from ``grid_sizes`` (the first draw of :func:`has_mask`)."""
    sizes = torch.tensor(grid_sizes, dtype=torch.int64)
    dev = generator.device if generator is not None else "cpu"
    return sizes[torch.randint(len(sizes), (batch,), generator=generator, device=dev).cpu()]


def _cells(grid: int, h: int, w: int, drop_rate: float, generator, device) -> torch.Tensor:
    gh, gw = math.ceil(h / grid), math.ceil(w / grid)
    hidden = torch.rand((gh, gw), generator=generator, device=device) < drop_rate
    return hidden.repeat_interleave(grid, 0).repeat_interleave(grid, 1)[:h, :w]


def has_mask(
    batch: int,
    size: Sequence[int],
    grid_size: int,
    drop_rate: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    grid_sizes: Sequence[int] | None = None,
) -> torch.Tensor:
    """Boolean "hidden" mask of Hide-and-Seek: each ``grid_size`` × ``grid_size`` cell is hidden with probability
    ``drop_rate``, independently per image.

    The grid starts at the top-left corner; when the image size is not a multiple of ``grid_size`` the last row /
    column of cells is partial (every pixel belongs to exactly one cell).

    With ``grid_sizes`` (e.g. :data:`HAS_GRID_SIZES`), each image first draws its own grid size uniformly from the
    list, as the authors' ``hide_patch`` (``kkanshul/Hide-and-Seek``) does with ``random.randint``; a drawn 0
    hides nothing in that image, and a size larger than the image makes one cell covering the whole image (the
    reference loop does the same). Draw order: the ``batch`` grid sizes, then the cells of each image in turn.

    Args:
        batch: number of images B.
        size: image size ``(H, W)``.
        grid_size: side of a square cell in pixels (survey Table 9 grid: 8, 16, 32, 44, 56); ignored when
            ``grid_sizes`` is given.
        drop_rate: probability that a cell is hidden.
        generator: random generator (reproducibility).
        device: device of the mask.
        grid_sizes: sizes to draw from, one per image (ints >= 0).

    Returns:
        ``True`` where a pixel is hidden.

    Shape:
        - output: :math:`(B, H, W)`

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> has_mask(2, (4, 6), grid_size=2, drop_rate=1.0, generator=g).all()
        tensor(True)
        >>> has_mask(3, (4, 4), 2, 1.0, generator=g, grid_sizes=(0,)).any()  # grid size 0: no hiding
        tensor(False)
    """
    check_int(batch, "batch", low=0)
    h, w = (int(s) for s in size)
    check_probability(drop_rate, "drop_rate")
    dev = generator.device if generator is not None else device
    if grid_sizes is not None:
        chosen = _draw_grid_sizes(batch, _check_grid_sizes(grid_sizes), generator)
        hidden = torch.zeros((batch, h, w), dtype=torch.bool, device=dev)
        for i, g in enumerate(chosen.tolist()):
            if g > 0:
                hidden[i] = _cells(g, h, w, drop_rate, generator, dev)
        return hidden.to(device) if device is not None else hidden
    check_int(grid_size, "grid_size", low=1)
    if grid_size > min(h, w):
        raise ShapeError(f"`grid_size`={grid_size} is larger than the image (H, W)=({h}, {w})")
    gh, gw = math.ceil(h / grid_size), math.ceil(w / grid_size)
    cells = torch.rand((batch, gh, gw), generator=generator, device=dev)
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
    grid_sizes: Sequence[int] | None = None,
) -> torch.Tensor:
    """Hide-and-Seek batch transform: hidden grid cells of each image are replaced by ``fill``.

    At training time the network only sees part of each object, so it has to find every discriminative part
    instead of the most discriminative one (Singh & Lee 2017). Identity when ``training`` is ``False``.

    The default is one fixed ``grid_size``. The authors' ``hide_patch`` (``kkanshul/Hide-and-Seek``) instead draws
    each image's grid size from ``(0, 16, 32, 44, 56)`` (0: the image is shown whole): pass
    ``grid_sizes=HAS_GRID_SIZES`` for that behaviour (see :func:`has_mask`). The reference hides a cell when
    ``random() <= 0.5``, here ``< drop_rate`` (equal with probability 0), and fills with 0 after mean subtraction,
    which is ``fill=0`` on standardised images.

    Args:
        images: batch of images (usually already standardised).
        grid_size: cell side in pixels; must not exceed the image size. Ignored when ``grid_sizes`` is given.
        drop_rate: probability that a cell is hidden, in ``[0, 1]``.
        fill: value written into hidden cells: a number (``0`` = the dataset mean after standardisation) or one
            value per channel (e.g. the dataset mean for un-standardised images).
        training: apply the transform; ``False`` returns ``images`` unchanged.
        generator: random generator for reproducible masks.
        grid_sizes: grid sizes drawn per image (ints >= 0; 0 = no hiding), e.g. :data:`HAS_GRID_SIZES`.

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
    check_probability(drop_rate, "drop_rate")
    fill_t = _fill_tensor(fill, images)
    h, w = images.shape[-2:]
    if grid_sizes is None:
        check_int(grid_size, "grid_size", low=1)
        if grid_size > min(h, w):
            raise ShapeError(
                f"`grid_size`={grid_size} is larger than the image: `images` has shape {tuple(images.shape)}"
            )
    else:
        grid_sizes = _check_grid_sizes(grid_sizes)
    if not training or drop_rate == 0.0:
        return images
    hidden = has_mask(images.shape[0], (h, w), grid_size, drop_rate, generator, grid_sizes=grid_sizes)
    return torch.where(hidden.to(images.device)[:, None], fill_t.expand_as(images), images)


class HideAndSeek(nn.Module):
    """Module form of :func:`hide_and_seek`; active in ``train()`` mode, identity in ``eval()``.

    Args:
        grid_size: cell side in pixels.
        drop_rate: probability that a cell is hidden.
        fill: value for hidden cells (number or one value per channel).
        generator: optional random generator.
        grid_sizes: grid sizes drawn per image instead of ``grid_size`` (e.g. :data:`HAS_GRID_SIZES`).

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
        grid_sizes: Sequence[int] | None = None,
    ):
        super().__init__()
        self.grid_size = check_int(grid_size, "grid_size", low=1)
        self.drop_rate = check_probability(drop_rate, "drop_rate")
        self.grid_sizes = None if grid_sizes is None else _check_grid_sizes(grid_sizes)
        self.fill = fill
        self.generator = generator

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return hide_and_seek(
            images, self.grid_size, self.drop_rate, self.fill, self.training, self.generator, self.grid_sizes
        )

    def extra_repr(self) -> str:
        sizes = f"grid_sizes={self.grid_sizes}" if self.grid_sizes is not None else f"grid_size={self.grid_size}"
        return f"{sizes}, drop_rate={self.drop_rate}, fill={self.fill}"
