"""MaxMin losses (Belharbi et al., eqs. 3, 6, 8, 9) and the TMI size priors on the masks."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from wsolkit._checks import ShapeError, check_floating, check_labels, check_ndim
from wsolkit.losses.elb import ELB

__all__ = ["positive_ce", "negative_uniform_ce", "localizer_ce", "size_prior", "maxmin_loss"]


def _check_logits(logits: torch.Tensor, name: str = "logits") -> torch.Tensor:
    check_ndim(logits, name, 2, "(B, C)")
    check_floating(logits, name)
    return logits


def positive_ce(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Eq. 3: ``H(p, p̂)⁺ = −log p̂(y | x⊙R⁺)``, the cross-entropy of the classifier on the foreground image.

    Args:
        logits: classifier scores on ``x ⊙ R⁺``.
        labels: image classes.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Shape:
        - logits: :math:`(B, C)`; labels: :math:`(B,)`; output: scalar or :math:`(B,)`

    Example:
        >>> round(float(positive_ce(torch.tensor([[0.0, 0.0]]), torch.tensor([1]))), 4)
        0.6931
    """
    _check_logits(logits)
    check_labels(labels, "labels", logits.shape[0], logits.shape[1])
    return F.cross_entropy(logits.float(), labels, reduction=reduction)


def negative_uniform_ce(logits: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Eq. 6: ``H(q, p̂)⁻ = −(1/c)·Σ_y log p̂(y | x⊙R⁻)``, the cross-entropy to the uniform distribution.

    Minimal (``= log c``) when the classifier cannot decide on the background image.

    Args:
        logits: classifier scores on ``x ⊙ R⁻``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Shape:
        - logits: :math:`(B, C)`; output: scalar or :math:`(B,)`

    Example:
        >>> round(float(negative_uniform_ce(torch.zeros(1, 4))), 4)  # log 4
        1.3863
    """
    _check_logits(logits)
    out = -torch.log_softmax(logits.float(), dim=1).mean(dim=1)
    return _reduce(out, reduction)


def localizer_ce(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Eq. 8: ``H(p, p̂ˢ) = −log p̂ˢ(y | x)``, the secondary classification loss of the localizer.

    Args:
        logits: localizer scores on ``x`` (or on the erased image during recursive erasing).
        labels: image classes.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Shape:
        - logits: :math:`(B, C)`; labels: :math:`(B,)`; output: scalar or :math:`(B,)`

    Example:
        >>> round(float(localizer_ce(torch.tensor([[2.0, 0.0]]), torch.tensor([0]))), 4)
        0.1269
    """
    _check_logits(logits)
    check_labels(labels, "labels", logits.shape[0], logits.shape[1])
    return F.cross_entropy(logits.float(), labels, reduction=reduction)


def size_prior(mask: torch.Tensor, barrier: ELB) -> torch.Tensor:
    """TMI size priors: extended log-barrier on ``−Σ R⁺ <= 0`` and ``−Σ R⁻ <= 0`` per sample (neither mask empty).

    ``barrier(−ΣR⁺) + barrier(−ΣR⁻)`` with sums over the pixels of each sample; the barrier's reduction
    (mean over samples by default) and ``t`` schedule apply.

    Args:
        mask: foreground mask ``R⁺`` in ``[0, 1]`` (``R⁻ = 1 − R⁺``).
        barrier: an :class:`~wsolkit.losses.ELB` (``t`` advanced by the user with ``barrier.step()`` each epoch).

    Shape:
        - mask: :math:`(B, 1, H, W)` or :math:`(B, H, W)`; output: scalar (or :math:`(2, B)` for ``"none"``)

    Example:
        >>> float(size_prior(torch.full((2, 1, 4, 4), 0.5), ELB(t0=1.0))) < 0  # sums of 8 pixels: feasible
        True
    """
    check_ndim(mask, "mask", (3, 4), "(B, 1, H, W) or (B, H, W)")
    check_floating(mask, "mask")
    if mask.ndim == 4 and mask.shape[1] != 1:
        raise ShapeError(f"`mask` must have one channel, got shape {tuple(mask.shape)}")
    pos = mask.flatten(1).sum(1)
    neg = (1.0 - mask).flatten(1).sum(1)
    z = torch.stack([-pos, -neg])
    out = barrier(z)
    if barrier.reduction == "mean":  # mean over (2, B) values -> mean over samples of the two penalties' sum
        return 2.0 * out
    return out


def maxmin_loss(
    logits_pos: torch.Tensor,
    logits_neg: torch.Tensor,
    logits_loc: torch.Tensor,
    labels: torch.Tensor,
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> torch.Tensor:
    """Eq. 9: ``w⁺·H(p, p̂)⁺ + w⁻·H(q, p̂)⁻ + wˢ·H(p, p̂ˢ)``, each term a batch mean.

    Args:
        logits_pos: classifier scores on ``x ⊙ R⁺``.
        logits_neg: classifier scores on ``x ⊙ R⁻``.
        logits_loc: localizer scores on ``x``.
        labels: image classes.
        weights: ``(w⁺, w⁻, wˢ)`` (the paper uses ones).

    Shape:
        - logits_*: :math:`(B, C)`; labels: :math:`(B,)`; output: scalar

    Example:
        >>> z = torch.zeros(2, 2)
        >>> round(float(maxmin_loss(z, z, z, torch.tensor([0, 1]))), 4)  # 3 · log 2
        2.0794
    """
    for name, t in (("logits_neg", logits_neg), ("logits_loc", logits_loc)):
        _check_logits(t, name)
        if t.shape != logits_pos.shape:
            raise ShapeError(f"`{name}` must have the shape of `logits_pos` {tuple(logits_pos.shape)}, "
                             f"got {tuple(t.shape)}")
    w_pos, w_neg, w_loc = weights
    return (
        w_pos * positive_ce(logits_pos, labels)
        + w_neg * negative_uniform_ce(logits_neg)
        + w_loc * localizer_ce(logits_loc, labels)
    )


def _reduce(x: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return x.mean()
    if reduction == "sum":
        return x.sum()
    if reduction == "none":
        return x
    from wsolkit._checks import WSOLValueError

    raise WSOLValueError(f"`reduction` must be 'mean', 'sum' or 'none', got {reduction!r}")
