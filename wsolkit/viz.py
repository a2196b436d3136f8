"""Visualisation: CAM overlays (OpenCV colormaps, core); map grids, threshold and precision–recall curves, the
sanity-check plot and the taxonomy diagram (matplotlib, ``viz`` extra)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np
import torch

from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError, check_ndim

__all__ = ["overlay", "map_grid", "plot_threshold_curves", "plot_precision_recall", "plot_sanity", "plot_taxonomy"]


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
    contour_thickness: int = 1,
) -> np.ndarray:
    """Blend a normalised CAM (OpenCV colormap) over an image and draw the ground-truth mask contour.

    Args:
        image: RGB image in ``[0, 1]`` (float) or uint8.
        cam: map in ``[0, 1]`` at the image size.
        mask: optional binary mask; its contour is drawn.
        alpha: weight of the heat map.
        colormap: an OpenCV colormap id.
        contour_color: RGB colour of the mask contour.
        contour_thickness: line width of the contour in pixels.

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
        cv2.drawContours(out, contours, -1, contour_color, int(contour_thickness))
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
    threshold: float | None = None,
) -> Any:
    """Plot per-threshold curves (normalised confusion rates by default, as in the survey's Fig. 8).

    Args:
        results: the dict of :func:`wsolkit.metrics.localization_metrics` / ``LocalizationMeter.compute()``
            (or its ``"curves"`` entry).
        keys: curves to draw, among ``tp fn fp tn precision recall dice_fg dice_bg iou_fg iou_bg miou``.
        ax: a matplotlib axes (default: a new figure).
        title: axes title.
        threshold: an operating threshold to mark with a vertical line (e.g. the ``"threshold"`` of the results,
            chosen on validation).

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
    if threshold is not None:
        ax.axvline(float(threshold), color="black", ls="--", lw=1, label=f"operating τ = {float(threshold):.2f}")
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
        ax: a matplotlib axes for both curves, or a pair of axes (Spearman, SSIM); default: a new figure with two
            panels.
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
    elif isinstance(ax, Sequence) and len(ax) == 2:  # Spearman and SSIM on two given axes
        fig, axes = ax[0].figure, list(ax)
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
    if ax is None:  # given axes: the layout is the caller's
        fig.tight_layout()
    return fig


def _pyplot(name: str) -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover
        raise ImportError(f"{name} needs matplotlib: pip install 'wsolkit[viz]'") from exc
    return plt


def _as_maps(maps: Any, name: str, n: int, size: tuple[int, int]) -> np.ndarray:
    arr = maps.detach().cpu().float().numpy() if isinstance(maps, torch.Tensor) else np.asarray(maps, np.float32)
    if arr.shape != (n, *size):
        raise ShapeError(f"maps of column {name!r} must have shape {(n, *size)}, got {arr.shape}")
    return arr


def map_grid(
    images: torch.Tensor | np.ndarray,
    maps: Mapping[str, torch.Tensor | np.ndarray],
    masks: torch.Tensor | np.ndarray | None = None,
    *,
    captions: Mapping[str, str] | None = None,
    row_labels: Sequence[str] | None = None,
    image_column: str | None = "image",
    colormap: int = cv2.COLORMAP_VIRIDIS,
    alpha: float = 0.6,
    contour_color: tuple[int, int, int] = (255, 255, 255),
    cell: float = 1.25,
    title: str | None = None,
    colorbar: bool = True,
    scale: int = 1,
    fontsize: float = 8,
) -> Any:
    """A grid of maps over images: one row per image, one column per map (a method, a step…), the ground-truth
    contour drawn on every cell and a caption (e.g. the column's PxAP) under each column.

    The default colormap is viridis (perceptually uniform, readable by colour-blind readers); the contour is white.

    Args:
        images: ``(N, 3, H, W)`` in ``[0, 1]`` (or ``(N, H, W, 3)`` uint8).
        maps: ``{column title: (N, H, W) maps in [0, 1]}``, in column order.
        masks: optional ``(N, H, W)`` binary masks; their contours are drawn.
        captions: ``{column title: text under the column}``.
        row_labels: one label per row (left of the first column).
        image_column: title of a first column showing the images alone (``None``: no such column).
        colormap: an OpenCV colormap id for the maps.
        alpha: weight of the maps over the images.
        contour_color: RGB colour of the mask contours.
        cell: size of one cell in inches.
        title: figure title.
        colorbar: draw the colormap's scale (map value 0 → 1) on the right.
        scale: integer upsampling of every cell before drawing (images bicubic, maps bilinear, masks nearest), so
            that contours of small images are drawn finely.
        fontsize: size of the column titles (captions, row labels and the title are scaled from it).

    Returns:
        The matplotlib figure.

    Example:
        >>> fig = map_grid(torch.rand(2, 3, 16, 16), {"a": torch.rand(2, 16, 16), "b": torch.rand(2, 16, 16)},
        ...                torch.zeros(2, 16, 16), captions={"a": "PxAP 50.0"})
        >>> len(fig.axes)  # 2 rows x (image + 2 maps) + the colour bar
        7
    """
    plt = _pyplot("map_grid")
    if not isinstance(maps, Mapping) or not maps:
        raise WSOLTypeError(f"`maps` must be a non-empty dict {{column: (N, H, W) maps}}, got {type(maps).__name__}")
    if isinstance(images, torch.Tensor):
        check_ndim(images, "images", 4, "(N, 3, H, W)")
        imgs = [_to_numpy_image(im) for im in images]
    else:
        arr = np.asarray(images)
        if arr.ndim != 4:
            raise ShapeError(f"`images` must have shape (N, 3, H, W) or (N, H, W, 3), got {arr.shape}")
        imgs = [_to_numpy_image(im) for im in arr]
    n, size = len(imgs), imgs[0].shape[:2]
    cols = {name: _as_maps(m, name, n, size) for name, m in maps.items()}
    if masks is not None:
        mk = masks.detach().cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
        if mk.shape != (n, *size):
            raise ShapeError(f"`masks` must have shape {(n, *size)}, got {mk.shape}")
    if row_labels is not None and len(row_labels) != n:
        raise WSOLValueError(f"`row_labels` must have {n} entries (one per image), got {len(row_labels)}")
    if scale != 1:
        up = (size[1] * int(scale), size[0] * int(scale))
        imgs = [cv2.resize(im, up, interpolation=cv2.INTER_CUBIC) for im in imgs]
        cols = {k: np.stack([cv2.resize(m, up, interpolation=cv2.INTER_LINEAR) for m in v]) for k, v in cols.items()}
        if masks is not None:
            mk = np.stack([cv2.resize(m.astype(np.uint8), up, interpolation=cv2.INTER_NEAREST) for m in mk])
        size = (up[1], up[0])
    thickness = max(1, int(scale) - 1)
    names = ([image_column] if image_column is not None else []) + list(cols)
    fig, axes = plt.subplots(n, len(names), figsize=(cell * len(names) + (0.5 if colorbar else 0), cell * n + 0.6),
                             squeeze=False)
    for i in range(n):
        mask = None if masks is None else mk[i]
        for j, name in enumerate(names):
            ax = axes[i, j]
            if image_column is not None and j == 0:
                cell_img = overlay(imgs[i], np.zeros(size, np.float32), mask, alpha=0.0, contour_color=contour_color,
                                   contour_thickness=thickness)
            else:
                cell_img = overlay(imgs[i], cols[name][i], mask, alpha=alpha, colormap=colormap,
                                   contour_color=contour_color, contour_thickness=thickness)
            ax.imshow(cell_img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if i == 0:
                ax.set_title(name, fontsize=fontsize)
            if i == n - 1 and captions and name in captions:
                ax.set_xlabel(captions[name], fontsize=fontsize)
        if row_labels is not None:
            axes[i, 0].set_ylabel(row_labels[i], fontsize=fontsize * 0.9)
    if title:
        fig.suptitle(title, fontsize=fontsize * 1.1)
    top = 1.0 - (0.03 + 0.016 * fontsize * (title.count("\n") + 1)) / (cell * n + 0.6) if title else 1.0
    fig.tight_layout(rect=(0, 0, 0.97 if colorbar else 1, top), pad=0.3, w_pad=0.2, h_pad=0.2)
    if colorbar:
        lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], colormap)[::-1, :, ::-1]
        cax = fig.add_axes((0.975, 0.2, 0.008, 0.6))
        cax.imshow(lut, aspect="auto", extent=(0, 1, 0, 1))
        cax.set_xticks([])
        cax.set_yticks([0, 1], ["0", "1"], fontsize=6)
        cax.yaxis.tick_right()
    return fig


def plot_precision_recall(
    results: Mapping[str, Any],
    threshold: float | None = None,
    ax: Any = None,
    label: str | None = None,
    title: str | None = None,
) -> Any:
    """Pixel precision–recall curve over thresholds, the operating threshold marked (PxAP is its area).

    Args:
        results: the dict of :func:`wsolkit.metrics.localization_metrics` (or its ``"curves"`` entry).
        threshold: the operating threshold to mark (default: ``results["threshold"]`` when present).
        ax: a matplotlib axes (default: a new figure).
        label: legend label of the curve (e.g. ``"PxAP 61.2"``).
        title: axes title.

    Returns:
        The matplotlib figure.

    Example:
        >>> from wsolkit.metrics import histogram_metrics
        >>> r = histogram_metrics(torch.tensor([0, 1, 3]), torch.tensor([3, 1, 0]))
        >>> len(plot_precision_recall(r, threshold=0.5).axes[0].lines)
        2
    """
    plt = _pyplot("plot_precision_recall")
    if not isinstance(results, Mapping):
        raise WSOLTypeError(f"`results` must be a dict of metrics or curves, got {type(results).__name__}")
    curves = results.get("curves", results)
    missing = [k for k in ("tau", "precision", "recall") if k not in curves]
    if missing:
        raise WSOLValueError(f"`results` has no precision–recall curves (missing {missing}; keys: {sorted(results)})")
    if threshold is None and "threshold" in results:
        threshold = float(results["threshold"])
    if ax is None:
        fig, ax = plt.subplots(figsize=(4, 3.5))
    else:
        fig = ax.figure
    tau = torch.as_tensor(curves["tau"]).cpu().double().numpy()
    prec = torch.as_tensor(curves["precision"]).cpu().double().numpy()
    rec = torch.as_tensor(curves["recall"]).cpu().double().numpy()
    ax.plot(rec, prec, label=label)
    if threshold is not None:
        i = int(np.abs(tau - float(threshold)).argmin())
        ax.plot([rec[i]], [prec[i]], "o", color="black", ms=6, label=f"operating τ = {float(threshold):.2f}")
    ax.set_xlabel("recall (%)")
    ax.set_ylabel("precision (%)")
    ax.set_xlim(-2, 102)
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


#: The survey's taxonomy (Rony et al., MELBA 2023) as wsolkit implements it: (family, methods, module).
TAXONOMY: tuple[tuple[str, str, str], ...] = (
    ("Bottom-up pooling heads", "GAP/CAM · MAX · LSE · WILDCAT · PRM · Deep MIL", "wsolkit.heads"),
    ("CAM refinement / erasing", "HaS · ADL · ACoL · SPG · CutMix · TS-CAM", "wsolkit.erasing"),
    ("Top-down explainers", "CAM · Grad-CAM · Grad-CAM++ · Smooth-Grad-CAM++ · XGrad-CAM\n"
     "LayerCAM · Score-CAM · SS-CAM · IS-CAM · Ablation-CAM", "wsolkit.explain"),
    ("Localizer–classifier", "MaxMin (min-max entropy, recursive erasing)", "wsolkit.maxmin"),
    ("Decoder over a frozen classifier", "F-CAM · NEGEV", "wsolkit.decoders"),
    ("Evaluation", "PxAP · TP*/FN*/FP*/TN* · Dice/IoU · MaxBoxAcc · B-LOC/B-CL", "wsolkit.metrics"),
)


def plot_taxonomy(taxonomy: Sequence[tuple[str, str, str]] = TAXONOMY, title: str | None = None) -> Any:
    """Draw a taxonomy as boxes and arrows: each family → its methods → the module that implements them.

    Args:
        taxonomy: rows ``(family, methods, module)`` (default: :data:`TAXONOMY`, the survey's families).
        title: figure title.

    Returns:
        The matplotlib figure.

    Example:
        >>> fig = plot_taxonomy([("Family", "method A · method B", "pkg.module")])
        >>> len(fig.axes[0].patches)  # boxes: root, family, methods, module; arrows: into each of the last three
        7
    """
    plt = _pyplot("plot_taxonomy")
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    rows = list(taxonomy)
    if not rows or any(len(r) != 3 for r in rows):
        raise WSOLValueError("`taxonomy` must be a non-empty sequence of (family, methods, module) rows")
    heights = [0.55 + 0.25 * r[1].count("\n") for r in rows]
    total = sum(heights) + 0.2 * (len(rows) - 1)
    fig, ax = plt.subplots(figsize=(10, 1.0 + 0.75 * total))
    ax.set_xlim(0, 10)
    ax.set_ylim(-0.2, total + 1.1)
    ax.axis("off")
    # colour-blind-safe (Okabe–Ito) fills, light
    fills = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")

    def box(x, y, w, h, text, fill, **kw):
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08", fc=fill, ec="#333333",
                                    lw=0.8, alpha=kw.pop("alpha", 1.0)))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=kw.pop("fontsize", 8), **kw)

    def arrow(x0, y0, x1, y1):
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=9, lw=0.8, color="#333333"))

    root_y = total + 0.35
    box(0.1, root_y, 2.3, 0.6, "wsolkit.create_method(name, …)\nWSOLOutput(logits, cams, aux)", "#EEEEEE",
        fontsize=7.5)
    y, last = total, total
    for k, (family, methods, module) in enumerate(rows):
        h = heights[k]
        y -= h
        fill = fills[k % len(fills)]
        box(0.6, y, 2.2, h, family, fill, alpha=0.55, fontweight="bold")
        box(3.3, y, 4.5, h, methods, "#FFFFFF", fontsize=7.5)
        box(8.3, y, 1.6, h, module, "#F4F4F4", family="monospace", fontsize=7.5)
        arrow(0.35, y + h / 2, 0.6, y + h / 2)
        last = y + h / 2
        arrow(2.8, y + h / 2, 3.3, y + h / 2)
        arrow(7.8, y + h / 2, 8.3, y + h / 2)
        y -= 0.2
    ax.plot([0.35, 0.35], [root_y, last], color="#333333", lw=0.8)
    ax.text(1.7, total + 1.05, "family", ha="center", fontsize=8, style="italic")
    ax.text(5.55, total + 1.05 - 0.0, "methods", ha="center", fontsize=8,
            style="italic")
    ax.text(9.1, total + 1.05, "module", ha="center", fontsize=8, style="italic")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
