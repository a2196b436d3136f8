"""Visualisation: CAM overlays with OpenCV colormaps (core) and threshold-curve plots (``viz`` extra)."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from wsolkit._checks import ShapeError, check_ndim
from wsolkit.viz_curves import plot_threshold_curves

__all__ = ["overlay", "plot_threshold_curves"]


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
