"""CutMix (Yun et al. 2019): paste a random box of another image of the batch and mix the labels by area."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from wsolkit._checks import (
    ShapeError,
    WSOLTypeError,
    check_floating,
    check_integer,
    check_ndim,
    check_number,
    check_probability,
)
from wsolkit.output import LossOutput, WSOLOutput

__all__ = ["CutMixBatch", "cutmix_box", "cutmix", "cutmix_loss", "CutMix"]


class CutMixBatch(NamedTuple):
    """Result of :func:`cutmix`.

    Attributes:
        images: mixed images ``(B, C, H, W)``.
        labels_a: labels of the images that receive the box ``(B,)``.
        labels_b: labels of the images the box comes from ``(B,)``.
        lam: fraction of each image that still shows its own pixels (area-corrected λ).
        box: ``(y0, y1, x0, x1)`` of the pasted box (empty box when nothing was pasted).
    """

    images: torch.Tensor
    labels_a: torch.Tensor
    labels_b: torch.Tensor
    lam: float
    box: tuple[int, int, int, int]


def _sample_lam(beta: float, generator: torch.Generator | None) -> float:
    """``λ ~ Beta(β, β)``; torch has no seeded Beta sampler, so a numpy seed is drawn from ``generator``."""
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    return float(np.random.default_rng(seed).beta(beta, beta))


def cutmix_box(size: tuple[int, int], lam: float, cy: int, cx: int) -> tuple[int, int, int, int]:
    """The CutMix box of area ratio ``1 - lam`` centred at ``(cy, cx)``, clipped to the image.

    Side lengths are ``H·sqrt(1 - λ)`` and ``W·sqrt(1 - λ)`` (truncated to integers), as in Yun et al. (2019).

    Args:
        size: image size ``(H, W)``.
        lam: the sampled λ in ``[0, 1]``.
        cy: box centre row.
        cx: box centre column.

    Returns:
        ``(y0, y1, x0, x1)`` with ``0 <= y0 <= y1 <= H`` and ``0 <= x0 <= x1 <= W``.

    Example:
        >>> cutmix_box((10, 10), lam=0.75, cy=0, cx=5)
        (0, 2, 3, 7)
    """
    h, w = size
    cut = math.sqrt(1.0 - check_probability(lam, "lam"))
    ch, cw = int(h * cut), int(w * cut)
    y0, y1 = min(max(cy - ch // 2, 0), h), min(max(cy + ch // 2, 0), h)
    x0, x1 = min(max(cx - cw // 2, 0), w), min(max(cx + cw // 2, 0), w)
    return y0, y1, x0, x1


def cutmix(
    images: torch.Tensor,
    labels: torch.Tensor,
    beta: float = 1.0,
    prob: float = 1.0,
    training: bool = True,
    generator: torch.Generator | None = None,
) -> CutMixBatch:
    """CutMix batch transform.

    ``λ ~ Beta(β, β)``; a box of area ``(1 - λ)·H·W`` centred at a uniform random pixel (clipped to the image) is
    cut from a randomly permuted copy of the batch and pasted into every image. λ is then corrected to the true
    visible area, ``λ = 1 - |box| / (H·W)``, so that the label weights match the pixels. With probability
    ``1 - prob`` (and whenever ``training`` is ``False``) the batch is returned unchanged with ``λ = 1``.

    Args:
        images: batch of images.
        labels: class indices.
        beta: parameter of the Beta distribution (the survey uses 1: λ uniform).
        prob: probability of applying CutMix to a batch.
        training: apply the transform.
        generator: random generator; λ, the box centre and the permutation all come from it.

    Returns:
        A :class:`CutMixBatch` ``(images, labels_a, labels_b, lam, box)``.

    Shape:
        - images: :math:`(B, C, H, W)`; labels: :math:`(B,)`
        - output images: :math:`(B, C, H, W)`

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.arange(2.0).view(2, 1, 1, 1).expand(2, 1, 8, 8)
        >>> out = cutmix(x, torch.tensor([0, 1]), generator=g)
        >>> y0, y1, x0, x1 = out.box
        >>> out.lam == 1 - (y1 - y0) * (x1 - x0) / 64
        True
    """
    check_ndim(images, "images", 4, "(B, C, H, W)")
    check_floating(images, "images")
    check_integer(labels, "labels")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ShapeError(
            f"`labels` must have shape ({images.shape[0]},) to match `images` {tuple(images.shape)}, "
            f"got {tuple(labels.shape)}"
        )
    beta = check_number(beta, "beta", low=0.0, low_inclusive=False)
    prob = check_probability(prob, "prob")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise WSOLTypeError(f"`generator` must be a torch.Generator or None, got {type(generator).__name__}")
    h, w = images.shape[-2:]
    empty = (0, 0, 0, 0)
    if not training or prob == 0.0:
        return CutMixBatch(images, labels, labels, 1.0, empty)
    if float(torch.rand((), generator=generator)) >= prob:
        return CutMixBatch(images, labels, labels, 1.0, empty)
    lam = _sample_lam(beta, generator)
    cy = int(torch.randint(0, h, (), generator=generator))
    cx = int(torch.randint(0, w, (), generator=generator))
    perm = torch.randperm(images.shape[0], generator=generator).to(images.device)
    y0, y1, x0, x1 = cutmix_box((h, w), lam, cy, cx)
    mixed = images.clone()
    mixed[:, :, y0:y1, x0:x1] = images[perm][:, :, y0:y1, x0:x1]
    lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
    return CutMixBatch(mixed, labels, labels[perm.to(labels.device)], lam, (y0, y1, x0, x1))


def cutmix_loss(
    output: WSOLOutput | torch.Tensor, labels_a: torch.Tensor, labels_b: torch.Tensor, lam: float
) -> LossOutput:
    """CutMix loss ``λ·CE(s, y_a) + (1 - λ)·CE(s, y_b)``.

    Args:
        output: a :class:`~wsolkit.output.WSOLOutput` or logits ``(B, C)``.
        labels_a: labels of the receiving images.
        labels_b: labels of the pasted images.
        lam: visible fraction of the receiving images (from :func:`cutmix`).

    Returns:
        ``LossOutput(total, {"ce_a", "ce_b", "lam"})`` (``ce_a`` / ``ce_b`` unweighted).

    Example:
        >>> logits = torch.tensor([[2.0, 0.0]])
        >>> a, b = torch.tensor([0]), torch.tensor([1])
        >>> bool(torch.isclose(cutmix_loss(logits, a, b, 1.0).total, F.cross_entropy(logits, a)))
        True
    """
    logits = output.logits if isinstance(output, WSOLOutput) else output
    check_ndim(logits, "logits", 2, "(B, C)")
    lam = check_probability(lam, "lam")
    ce_a, ce_b = F.cross_entropy(logits, labels_a), F.cross_entropy(logits, labels_b)
    total = lam * ce_a + (1.0 - lam) * ce_b
    return LossOutput(total, {"ce_a": ce_a.detach(), "ce_b": ce_b.detach(), "lam": total.new_tensor(lam)})


class CutMix(nn.Module):
    """Module form of :func:`cutmix` (active in ``train()`` mode); ``forward(images, labels) -> CutMixBatch``.

    Args:
        beta: Beta distribution parameter.
        prob: probability of mixing a batch.
        generator: optional random generator.

    Example:
        >>> cm = CutMix().eval()
        >>> out = cm(torch.zeros(2, 3, 8, 8), torch.tensor([0, 1]))
        >>> out.lam
        1.0
    """

    def __init__(self, beta: float = 1.0, prob: float = 1.0, generator: torch.Generator | None = None):
        super().__init__()
        self.beta = check_number(beta, "beta", low=0.0, low_inclusive=False)
        self.prob = check_probability(prob, "prob")
        self.generator = generator

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> CutMixBatch:
        return cutmix(images, labels, self.beta, self.prob, self.training, self.generator)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, prob={self.prob}"
