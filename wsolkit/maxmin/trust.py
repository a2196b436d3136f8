"""Trust coefficients of MaxMin's recursive erasing (Belharbi et al., eqs. 12-14)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from wsolkit._checks import (
    ShapeError,
    WSOLValueError,
    check_floating,
    check_int,
    check_labels,
    check_ndim,
    check_number,
)

__all__ = ["trust_coefficients", "accumulate_mask"]


def trust_coefficients(
    logits: torch.Tensor,
    labels: torch.Tensor,
    t: int,
    sigma: float = 10.0,
    loss0: torch.Tensor | None = None,
    alive: torch.Tensor | None = None,
    history: str = "label",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample trust ``Ψ(t, i) = exp(−t/σ)·Γ(t, i)`` of the mask mined at erasing step ``t`` (eqs. 13-14).

    ``Γ(t, i) = p̂ˢ(y_i | x*_i)`` when the localizer still predicts ``y_i`` on the current (erased) image ``x*_i``
    **and** its loss ``H(p_i, p̂ˢ_i)_t`` is ``<=`` the loss at ``t = 0``; else 0. A sample outside ``alive`` has
    trust 0. Computed without gradient.

    ``history`` says which samples stay alive. ``"label"`` (the authors' ``deepmil/train.py``:
    ``history = min(pred == y, history)``): only a wrong label removes a sample for good; a sample whose loss rose
    at one step has trust 0 at that step and may be trusted again later. ``"trust"`` (a reading of Alg. 1): any zero
    trust removes the sample for good (``alive & (Ψ > 0)``).

    Args:
        logits: localizer scores on the current image ``x*`` at step ``t``.
        labels: image classes.
        t: erasing step, >= 0.
        sigma: decay σ > 0 of the step trust ``exp(−t/σ)``.
        loss0: per-sample losses at ``t = 0``; ``None`` means this is step 0 (the loss is compared to itself).
        alive: samples still tracked (the history); ``None`` → all.
        history: ``"label"`` (authors) or ``"trust"`` (Alg. 1 reading), see above.

    Returns:
        ``(psi, alive)``: trusts ``Ψ(t, ·)`` (float32) and the updated history: ``alive & (argmax = y)``
        (``"label"``) or ``alive & (Ψ > 0)`` (``"trust"``).

    Shape:
        - logits: :math:`(B, C)`; labels, loss0, alive: :math:`(B,)`; outputs: :math:`(B,)`

    Example:
        >>> logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
        >>> psi, alive = trust_coefficients(logits, torch.tensor([0, 0]), t=0)
        >>> psi, alive  # sample 1 is misclassified
        (tensor([0.8808, 0.0000]), tensor([ True, False]))
    """
    check_ndim(logits, "logits", 2, "(B, C)")
    check_floating(logits, "logits")
    b = logits.shape[0]
    check_labels(labels, "labels", b, logits.shape[1])
    t = check_int(t, "t", low=0)
    sigma = check_number(sigma, "sigma", low=0.0, low_inclusive=False)
    if history not in ("label", "trust"):
        raise WSOLValueError(f"`history` must be 'label' or 'trust', got {history!r}")
    with torch.no_grad():
        z = logits.detach().float()
        loss_t = F.cross_entropy(z, labels, reduction="none")
        if loss0 is None:
            loss0 = loss_t
        elif loss0.shape != (b,):
            raise ShapeError(f"`loss0` must have shape ({b},), got {tuple(loss0.shape)}")
        if alive is None:
            alive = torch.ones(b, dtype=torch.bool, device=z.device)
        elif alive.shape != (b,) or alive.dtype != torch.bool:
            raise ShapeError(f"`alive` must be a bool tensor of shape ({b},), got {alive.dtype} {tuple(alive.shape)}")
        p_true = torch.softmax(z, dim=1).gather(1, labels[:, None])[:, 0]
        right = z.argmax(1) == labels
        ok = alive & right & (loss_t <= loss0.to(loss_t))
        gamma = torch.where(ok, p_true, torch.zeros_like(p_true))  # eq. 14
        psi = math.exp(-t / sigma) * gamma  # eq. 13
        return psi, (alive & right) if history == "label" else (alive & (psi > 0))


def accumulate_mask(acc: torch.Tensor, mask: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
    """Eq. 12: ``R⁺* ← max(R⁺*, Ψ(t, i)·R⁺ᵗ)`` per sample.

    Args:
        acc: accumulated mask ``R⁺*`` (zeros at ``t = 0``).
        mask: mask ``R⁺ᵗ`` mined at step ``t``.
        psi: per-sample trusts ``Ψ(t, ·)``.

    Shape:
        - acc, mask: :math:`(B, 1, H, W)`; psi: :math:`(B,)`; output: :math:`(B, 1, H, W)`

    Example:
        >>> accumulate_mask(torch.zeros(2, 1, 1, 2), torch.ones(2, 1, 1, 2), torch.tensor([0.5, 0.0]))[:, 0, 0]
        tensor([[0.5000, 0.5000],
                [0.0000, 0.0000]])
    """
    if acc.shape != mask.shape or acc.ndim != 4 or psi.shape != acc.shape[:1]:
        raise ShapeError(
            f"`acc` and `mask` must have the same shape (B, 1, H, W) and `psi` shape (B,), got "
            f"{tuple(acc.shape)}, {tuple(mask.shape)}, {tuple(psi.shape)}"
        )
    return torch.maximum(acc, psi.to(mask.dtype)[:, None, None, None] * mask)
