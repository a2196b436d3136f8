"""Box localization metrics MaxBoxAcc and MaxBoxAccV2 (Choe et al. 2020), and top-1 localization.

The protocol, per image and for each CAM threshold ``τ`` of the list ``[0, 1/T, ..., (T-1)/T]`` (computed as the
protocol's ``np.arange(0, 1, 1 / T)``):

1. quantise the normalised map ``q = uint8(s · 255)`` (truncation);
2. binarise with ``cv2.threshold(q, int(τ · max(q)), 255, THRESH_BINARY)`` i.e. ``q > int(τ · max(q))``;
3. ``cv2.findContours`` (``RETR_TREE``, ``CHAIN_APPROX_SIMPLE``); the box of a contour is its bounding
   rectangle ``(x, y, min(x + w, W − 1), min(y + h, H − 1))`` (kept as the protocol defines it, although with
   inclusive coordinates it extends one pixel past the contour); no contour gives the box ``(0, 0, 0, 0)``;
   MaxBoxAcc keeps the largest contour (``cv2.contourArea``), MaxBoxAccV2 keeps all contours;
4. IoU with inclusive pixel coordinates (``area = (x1 − x0 + 1)(y1 − y0 + 1)``), best over the estimated boxes
   and the ground-truth boxes of the image;
5. a counter per threshold and IoU level δ is incremented when ``IoU >= δ / 100``.

After the whole dataset, ``BoxAcc(δ) = max_τ 100 · correct(τ, δ) / n`` — the threshold is chosen once for the
dataset, never per image. MaxBoxAcc uses δ = 50; MaxBoxAccV2 is the mean of the maxima over δ ∈ {30, 50, 70}.
Top-1 localization counts images that are correctly classified and localised (IoU ≥ 0.5, largest contour) and is
reported at the threshold maximising MaxBoxAcc.

Speed: the binary mask ``q > k`` only depends on how many distinct values of ``q`` are ``<= k``, so an image has at
most (number of distinct uint8 values + 1) ≤ 257 distinct masks whatever ``T``; contours are computed once per
distinct mask and the IoUs are broadcast back to the thresholds. The masks are nested, so each contour search is
restricted to the bounding box of the previous (lower-threshold) mask plus a zero margin — same contours, less work.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from wsolkit._checks import (
    ShapeError,
    WSOLTypeError,
    WSOLValueError,
    check_finite,
    check_floating,
    check_int,
    check_ndim,
)
from wsolkit.metrics._base import MetricDict
from wsolkit.metrics.histogram import _normalize_with, _prepare_scores

__all__ = ["box_thresholds", "box_iou_inclusive", "box_accuracy", "scoremap_best_ious"]

IOU_LEVELS_V2 = (30, 50, 70)


def box_thresholds(num_thresholds: int) -> np.ndarray:
    """The protocol's CAM thresholds for boxes: ``np.arange(0, 1, 1 / T)`` (T values, float64).

    Example:
        >>> box_thresholds(4).tolist()
        [0.0, 0.25, 0.5, 0.75]
    """
    t = check_int(num_thresholds, "num_thresholds", low=1)
    return np.arange(t, dtype=np.float64) * (1.0 / t)


def box_iou_inclusive(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every pair of boxes ``(x0, y0, x1, y1)`` with inclusive pixel coordinates.

    Shape:
        - a: :math:`(N, 4)`; b: :math:`(M, 4)`; output: :math:`(N, M)`

    Example:
        >>> box_iou_inclusive(np.array([[0, 0, 1, 1]]), np.array([[1, 1, 2, 2], [0, 0, 1, 1]])).tolist()
        [[0.14285714285714285, 1.0]]
    """
    a = np.asarray(a, dtype=np.float64)[:, None, :]
    b = np.asarray(b, dtype=np.float64)[None, :, :]
    iw = np.maximum(0.0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1)
    ih = np.maximum(0.0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    return inter / (area_a + area_b - inter)


def _contour_boxes(
    binary: np.ndarray, offset: tuple[int, int], h: int, w: int
) -> tuple[list[tuple[int, int, int, int]], int]:
    """Boxes (full-image coordinates) of all contours of a uint8 0/255 mask crop and the index of the largest.

    ``binary`` is a crop of the full mask at ``offset = (x0, y0)`` that contains every foreground pixel and a
    zero margin (or the image border), so the contours are those of the full mask, in the same order.
    """
    contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE, offset=offset)[-2]
    if len(contours) == 0:
        return [(0, 0, 0, 0)], 0
    boxes = []
    for c in contours:
        x, y, bw, bh = cv2.boundingRect(c)
        boxes.append((x, y, min(x + bw, w - 1), min(y + bh, h - 1)))
    largest = 0
    if len(contours) > 1:  # as max(contours, key=cv2.contourArea): the first contour of maximal area
        areas = [cv2.contourArea(c) for c in contours]
        largest = areas.index(max(areas))
    return boxes, largest


def _best_iou(boxes: list[tuple[int, int, int, int]], gts: list[tuple[float, ...]]) -> float:
    """Best inclusive-pixel IoU between estimated and ground-truth boxes (plain Python: few boxes)."""
    best = 0.0
    for x0, y0, x1, y1 in boxes:
        area = (x1 - x0 + 1) * (y1 - y0 + 1)
        for g0, h0, g1, h1 in gts:
            iw = min(x1, g1) - max(x0, g0) + 1
            ih = min(y1, h1) - max(y0, h0) + 1
            inter = iw * ih if iw > 0 and ih > 0 else 0.0
            iou = inter / (area + (g1 - g0 + 1) * (h1 - h0 + 1) - inter)
            if iou > best:
                best = iou
    return best


def scoremap_best_ious(scoremap: np.ndarray, gt_boxes: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, ...]:
    """Best IoU per CAM threshold for one normalised map: (largest contour, all contours).

    Args:
        scoremap: normalised map in ``[0, 1]`` (float array ``(H, W)``).
        gt_boxes: ground-truth boxes ``(M, 4)`` inclusive ``(x0, y0, x1, y1)``.
        thresholds: CAM thresholds (see :func:`box_thresholds`).

    Returns:
        ``(iou_largest, iou_all)``, two float64 arrays of length ``len(thresholds)``.

    Example:
        >>> s = np.zeros((8, 8), np.float32); s[2:5, 3:7] = 1.0
        >>> v1, v2 = scoremap_best_ious(s, np.array([[3, 2, 6, 4]]), box_thresholds(2))
        >>> v1.tolist()  # the protocol's box ends at x + w (one pixel past the blob): IoU 12 / 20
        [0.6, 0.6]
    """
    q = (scoremap * 255).astype(np.uint8)
    q_max = q.max()
    k = (thresholds * q_max).astype(np.int64)  # int(τ · max): truncation, values are >= 0
    values = np.unique(q)
    # mask q > k only depends on j = #{distinct values <= k}
    j = np.searchsorted(values, k, side="right")
    uniq, inverse = np.unique(j, return_inverse=True)
    gts = [tuple(float(v) for v in g) for g in np.asarray(gt_boxes).reshape(-1, 4)]
    v1 = np.empty(len(uniq))
    v2 = np.empty(len(uniq))
    h, w = q.shape
    # masks are nested (increasing threshold -> shrinking mask): contours of the next mask are searched in the
    # bounding box of the current one plus a one-pixel zero margin, which gives the same contours much faster
    cx0, cy0, cx1, cy1 = 0, 0, w, h
    for u, jj in enumerate(uniq):  # increasing j = increasing threshold
        if jj >= len(values) or cx1 <= cx0:  # empty mask: no contour, the protocol's box (0, 0, 0, 0)
            boxes, largest = [(0, 0, 0, 0)], 0
        else:
            cut = int(values[jj - 1]) if jj > 0 else -1
            binary = cv2.threshold(q[cy0:cy1, cx0:cx1], cut, 255, cv2.THRESH_BINARY)[1]
            boxes, largest = _contour_boxes(binary, (cx0, cy0), h, w)
            bx, by, bw, bh = cv2.boundingRect(binary)
            if bw == 0:
                cx1 = cx0  # nothing left above this threshold
            else:
                cx0, cy0, cx1, cy1 = (max(0, cx0 + bx - 1), max(0, cy0 + by - 1),
                                      min(w, cx0 + bx + bw + 1), min(h, cy0 + by + bh + 1))
        v1[u] = _best_iou(boxes[largest : largest + 1], gts)
        v2[u] = _best_iou(boxes, gts) if len(boxes) > 1 else v1[u]
    return v1[inverse], v2[inverse]


def _boxes_validate(boxes: Sequence, batch: int) -> list[np.ndarray]:
    if isinstance(boxes, torch.Tensor) and boxes.ndim == 2:
        boxes = [b[None] for b in boxes]
    if not isinstance(boxes, (list, tuple, torch.Tensor)):
        raise WSOLTypeError(f"`boxes` must be a list of (M, 4) tensors/arrays, got {type(boxes).__name__}")
    if len(boxes) != batch:
        raise ShapeError(f"`boxes` must hold one entry per image ({batch}), got {len(boxes)}")
    out = []
    for i, b in enumerate(boxes):
        arr = b.detach().cpu().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
        if arr.ndim == 1 and arr.shape[0] == 4:
            arr = arr[None]
        if arr.ndim != 2 or arr.shape[1] != 4 or arr.shape[0] == 0:
            raise ShapeError(f"`boxes[{i}]` must have shape (M, 4) with M >= 1, got {tuple(arr.shape)}")
        if not np.all(np.isfinite(arr)):
            raise WSOLValueError(f"`boxes[{i}]` must be finite, got {arr.tolist()}")
        if np.any(arr[:, 2] < arr[:, 0]) or np.any(arr[:, 3] < arr[:, 1]):
            raise WSOLValueError(
                f"`boxes[{i}]` must satisfy x1 >= x0 and y1 >= y0 (x0, y0, x1, y1), got {arr.tolist()}"
            )
        out.append(arr.astype(np.float64))
    return out


def _box_update(
    cams: torch.Tensor,
    boxes: Sequence,
    num_thresholds: int,
    iou_levels: Sequence[int] = IOU_LEVELS_V2,
    labels: torch.Tensor | int | None = None,
    correct: torch.Tensor | None = None,
    normalize: bool = False,
    image_size: tuple[int, int] | None = None,
    validate_args: bool = True,
) -> dict[str, torch.Tensor]:
    """Per-threshold counters of one batch (int64 tensors)."""
    if validate_args:
        check_ndim(cams, "cams", (3, 4), "(B, h, w) or (B, C, h, w)")
        check_floating(cams, "cams")
        check_finite(cams, "cams")
        check_int(num_thresholds, "num_thresholds", low=1)
    b = cams.shape[0]
    gt = _boxes_validate(boxes, b) if validate_args else [np.asarray(x, dtype=np.float64).reshape(-1, 4) for x in boxes]
    if correct is not None and (correct.ndim != 1 or correct.shape[0] != b):
        raise ShapeError(f"`correct` must have shape ({b},), got {tuple(correct.shape)}")
    size = image_size if image_size is not None else tuple(cams.shape[-2:])
    ref = torch.empty(b, *size, dtype=torch.uint8)
    scores, lo, hi = _prepare_scores(cams.detach().cpu(), ref, labels, normalize)
    if lo is not None:
        scores = _normalize_with(scores, lo, hi)
    elif validate_args and scores.numel() and (float(scores.min()) < 0 or float(scores.max()) > 1):
        raise WSOLValueError(
            f"`cams` must be normalised to [0, 1] for box metrics (or pass normalize=True), got values in "
            f"[{float(scores.min()):.4g}, {float(scores.max()):.4g}]"
        )
    thresholds = box_thresholds(num_thresholds)
    n_lv = len(iou_levels)
    levels = np.asarray([lv / 100 for lv in iou_levels], dtype=np.float64)
    v1 = np.zeros(num_thresholds, dtype=np.int64)
    v2 = np.zeros((n_lv, num_thresholds), dtype=np.int64)
    top1 = np.zeros(num_thresholds, dtype=np.int64)
    s_np = scores.numpy()
    ok = correct.cpu().numpy().astype(bool) if correct is not None else None
    for i in range(b):
        i1, i2 = scoremap_best_ious(s_np[i], gt[i], thresholds)
        hit = i1 >= 0.5
        v1 += hit
        v2 += i2[None, :] >= levels[:, None]
        if ok is not None and ok[i]:
            top1 += hit
    return {
        "correct_v1": torch.from_numpy(v1),
        "correct_v2": torch.from_numpy(v2),
        "correct_top1": torch.from_numpy(top1),
        "n_images": torch.tensor(b, dtype=torch.int64),
        "n_cls_correct": torch.tensor(int(ok.sum()) if ok is not None else 0, dtype=torch.int64),
    }


def _box_compute(state: dict[str, torch.Tensor], iou_levels: Sequence[int] = IOU_LEVELS_V2) -> dict:
    n = int(state["n_images"])
    t = state["correct_v1"].shape[0]
    if n == 0:
        nan = float("nan")
        return MetricDict(maxboxacc=nan, maxboxacc_v2=nan, best_threshold=nan, top1_loc=nan, n_images=0)
    acc1 = state["correct_v1"].double() * 100.0 / n
    acc2 = state["correct_v2"].double() * 100.0 / n
    best = int(torch.argmax(acc1))
    out = MetricDict({
        "maxboxacc": float(acc1.max()),
        "maxboxacc_v2": float(acc2.max(dim=1).values.mean()),
        "best_threshold": best / t,
        "top1_loc": float(state["correct_top1"][best].double() * 100.0 / n),
        "n_images": n,
    })
    for k, lv in enumerate(iou_levels):
        out[f"boxacc_v2_iou{lv}"] = float(acc2[k].max())
    out["curves"] = {"tau": torch.from_numpy(box_thresholds(t)), "boxacc": acc1, "boxacc_v2": acc2}
    return out


def box_accuracy(
    cams: torch.Tensor,
    boxes: Sequence,
    num_thresholds: int = 1000,
    labels: torch.Tensor | int | None = None,
    correct: torch.Tensor | None = None,
    normalize: bool = True,
    image_size: tuple[int, int] | None = None,
) -> dict:
    """MaxBoxAcc, MaxBoxAccV2 and top-1 localization over a set of maps (Choe et al. 2020 protocol).

    Args:
        cams: raw maps (``normalize=True``: per-image min-max after optional upsampling) or maps in ``[0, 1]``.
        boxes: per image, ground-truth boxes ``(M, 4)`` as inclusive ``(x0, y0, x1, y1)`` pixel coordinates.
        num_thresholds: T (thresholds ``np.arange(0, 1, 1 / T)``).
        labels: class of each image, to select its map when ``cams`` has ``C > 1`` maps.
        correct: ``(B,)`` bool, image correctly classified (for top-1 localization).
        normalize: per-image min-max normalisation.
        image_size: ``(H, W)`` to upsample the maps to (default: their size).

    Returns:
        ``{"maxboxacc", "maxboxacc_v2", "boxacc_v2_iou30/50/70", "best_threshold", "top1_loc", "n_images",
        "curves"}`` (percentages; the twin of :class:`~wsolkit.metrics.BoxAccuracyMeter`).

    Shape:
        - cams: :math:`(B, H, W)` or :math:`(B, C, h, w)`

    Example:
        >>> cams = torch.zeros(1, 16, 16); cams[0, 4:8, 2:10] = 1.0
        >>> box_accuracy(cams, [torch.tensor([[2, 4, 9, 7]])], num_thresholds=10)["maxboxacc"]
        100.0
    """
    state = _box_update(cams, boxes, num_thresholds, IOU_LEVELS_V2, labels, correct, normalize, image_size)
    return _box_compute(state)
