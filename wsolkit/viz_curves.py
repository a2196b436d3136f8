"""Threshold-curve plots of the localization metrics (survey Fig. 8); needs matplotlib (``viz`` extra)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from wsolkit._checks import WSOLTypeError, WSOLValueError

__all__ = ["plot_threshold_curves"]

_LABELS = {
    "tp": "TP(τ)",
    "fn": "FN(τ)",
    "fp": "FP(τ)",
    "tn": "TN(τ)",
    "precision": "precision",
    "recall": "recall",
    "dice_fg": "Dice fg",
    "dice_bg": "Dice bg",
    "iou_fg": "IoU fg",
    "iou_bg": "IoU bg",
    "miou": "mIoU",
}


def plot_threshold_curves(
    results: Mapping[str, Any],
    keys: Sequence[str] = ("tp", "fn", "fp", "tn"),
    ax: Any = None,
    title: str | None = None,
) -> Any:
    """Plot per-threshold curves (normalised confusion rates by default, as in the survey's Fig. 8).

    Args:
        results: the dict of :func:`wsolkit.metrics.localization_metrics` / ``LocalizationMeter.compute()``
            (or its ``"curves"`` entry).
        keys: curves to draw, among ``tp fn fp tn precision recall dice_fg dice_bg iou_fg iou_bg miou``.
        ax: a matplotlib axes (default: a new figure).
        title: axes title.

    Returns:
        The matplotlib figure.

    Example:
        >>> from wsolkit.metrics import localization_metrics
        >>> fig = plot_threshold_curves(localization_metrics(torch.tensor([0, 1, 3]), torch.tensor([3, 1, 0])))
        >>> len(fig.axes[0].lines)
        4
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover
        raise ImportError("plot_threshold_curves needs matplotlib: pip install 'wsolkit[viz]'") from exc
    if not isinstance(results, Mapping):
        raise WSOLTypeError(f"`results` must be a dict of metrics or curves, got {type(results).__name__}")
    curves = results.get("curves", results)
    if "tau" not in curves:
        raise WSOLValueError(f"`results` has no threshold curves (keys: {sorted(results)})")
    bad = [k for k in keys if k not in curves]
    if bad:
        raise WSOLValueError(f"`keys` {bad} are not curves; available: {sorted(k for k in curves if k != 'tau')}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.5))
    else:
        fig = ax.figure
    tau = torch.as_tensor(curves["tau"]).cpu().numpy()
    for k in keys:
        ax.plot(tau, 100 * torch.as_tensor(curves[k]).cpu().numpy(), label=_LABELS.get(k, k))
    ax.set_xlabel("threshold τ")
    ax.set_ylabel("%")
    ax.set_xlim(0, 1)
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
