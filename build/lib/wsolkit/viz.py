"""Visualisation: CAM overlays (OpenCV colormaps, core), threshold curves and the sanity-check plot (matplotlib,
``viz`` extra)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np
import torch

from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError, check_ndim

__all__ = ["overlay", "plot_threshold_curves", "plot_sanity"]


def _to_numpy_image(image: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        check_ndim(image, "image", 3, "(3, H, W)")
        image = image.detach().cpu().permute(1, 2, 0).numpy()
    if image.ndim != 3 or image.shape[2] != 3:
        raise ShapeError(f"`image` must have shape (3, H, W) or (H, W, 3), got {image.shape}")
    if image.dtype != np.uint8:
        image = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    return image


def overlay(
    image: torch.Tensor | np.ndarray,
    cam: torch.Tensor | np.ndarray,
    mask: torch.Tensor | np.ndarray | None = None,
    alpha: float = 0.5,
    colormap: int = cv2.COLORMAP_JET,
    contour_color: tuple[int, int, int] = (0, 255, 0),
) -> np.ndarray:
    """Blend a normalised CAM (OpenCV colormap) over an image and draw the ground-truth mask contour.

    Args:
        image: RGB image in ``[0, 1]`` (float) or uint8.
        cam: map in ``[0, 1]`` at the image size.
        mask: optional binary mask; its contour is drawn.
        alpha: weight of the heat map.
        colormap: an OpenCV colormap id.
        contour_color: RGB colour of the mask contour.

    Returns:
        An RGB uint8 array ``(H, W, 3)``.

    Shape:
        - image: :math:`(3, H, W)` or :math:`(H, W, 3)`
        - cam: :math:`(H, W)`
        - mask: :math:`(H, W)`

    Example:
        >>> overlay(torch.rand(3, 32, 32), torch.rand(32, 32), torch.zeros(32, 32, dtype=torch.uint8)).shape
        (32, 32, 3)
    """
    img = _to_numpy_image(image)
    cam_np = cam.detach().cpu().float().numpy() if isinstance(cam, torch.Tensor) else np.asarray(cam, np.float32)
    if cam_np.shape != img.shape[:2]:
        raise ShapeError(f"`cam` must have shape {img.shape[:2]} to match `image`, got {cam_np.shape}")
    heat = cv2.applyColorMap((np.clip(cam_np, 0, 1) * 255).astype(np.uint8), colormap)[..., ::-1]
    out = cv2.addWeighted(img, 1.0 - alpha, np.ascontiguousarray(heat), alpha, 0.0)
    if mask is not None:
        m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
        contours, _ = cv2.findContours((m == 1).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        out = np.ascontiguousarray(out)
        cv2.drawContours(out, contours, -1, contour_color, 1)
    return out


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
        >>> from wsolkit.metrics import histogram_metrics
        >>> fig = plot_threshold_curves(histogram_metrics(torch.tensor([0, 1, 3]), torch.tensor([3, 1, 0])))
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
    for k in keys:  # curves are in percent
        ax.plot(tau, torch.as_tensor(curves[k]).cpu().numpy(), label=_LABELS.get(k, k))
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


def plot_sanity(results: Any | Mapping[str, Any], ax: Any = None, title: str | None = None) -> Any:
    """Plot the model-randomisation sanity check: mean Spearman and SSIM per cascade step (Adebayo et al. 2018).

    Args:
        results: a :class:`wsolkit.metrics.SanityResult`, or ``{method name: SanityResult}`` for several methods.
        ax: a matplotlib axes (default: a new figure with two panels).
        title: figure title.

    Returns:
        The matplotlib figure.

    Example:
        >>> from wsolkit.metrics import SanityResult
        >>> r = SanityResult(["trained", "fc", "conv"], torch.tensor([[1.0], [0.4], [0.1]]),
        ...                  torch.tensor([[1.0], [0.5], [0.2]]))
        >>> len(plot_sanity({"cam": r}).axes)
        2
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover
        raise ImportError("plot_sanity needs matplotlib: pip install 'wsolkit[viz]'") from exc
    runs = dict(results) if isinstance(results, Mapping) else {"": results}
    for name, r in runs.items():
        if not hasattr(r, "table"):
            raise WSOLTypeError(f"`results` must hold SanityResult objects, got {type(r).__name__} for {name!r}")
    if ax is None:
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), sharey=True)
    else:
        fig, axes = ax.figure, [ax, ax]
    for name, r in runs.items():
        rows = r.table()
        steps = [row["layer"] for row in rows]
        axes[0].plot(range(len(steps)), [row["spearman"] for row in rows], marker="o", label=name or None)
        axes[1].plot(range(len(steps)), [row["ssim"] for row in rows], marker="o", label=name or None)
        for a in axes[:2]:
            a.set_xticks(range(len(steps)), steps, rotation=60, ha="right", fontsize=7)
    axes[0].set_ylabel("similarity to the trained model's maps")
    axes[0].set_title("Spearman rank correlation", fontsize=9)
    axes[1].set_title("SSIM", fontsize=9)
    for a in axes[:2]:
        a.axhline(0, color="grey", lw=0.5)
        a.set_xlabel("cascading randomisation (top layer first)")
        a.grid(alpha=0.3)
    if any(runs):
        axes[1].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
