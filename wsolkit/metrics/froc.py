"""CAMELYON16's own evaluation: lesion-level FROC (Task 2) and slide-level ROC AUC (Task 1).

The functions reproduce the organisers' ``Evaluation_FROC.py`` (computationalpathologygroup/Camelyon16, Python 2):

- :func:`evaluation_mask` — ``computeEvaluationMask``: the tumour mask at ``level`` (a pixel is tumour when its value
  is 255, as ``255 - mask == 0`` in the script; a bool mask is taken as it is), dilated to the pixels whose Euclidean
  distance to tumour is ``< 75 / (resolution · 2**level · 2)`` (37.5 µm: the script halves the 75 µm it names),
  holes filled (4-connected background not reaching the border), connected components with 8-connectivity, labelled
  in raster order of their first pixel (``skimage.measure.label``'s numbering);
- :func:`itc_labels` — ``computeITCList``: labels whose major axis (``4·sqrt`` of the largest eigenvalue of the
  region's second central moments, as ``regionprops.major_axis_length``) is ``< 275 / (resolution · 2**level)``
  pixels: isolated tumour cells, neither counted nor penalised;
- :func:`fp_tp_probs` — ``compute_FP_TP_Probs``: a detection ``(p, x, y)`` (level-0 pixels) hits label
  ``mask[y // 2**level, x // 2**level]``; 0 is a false positive, an ITC is ignored, a lesion keeps its highest
  probability; every detection of a slide without tumour is a false positive;
- :func:`froc_curve` — ``computeFROC``: for every distinct probability but the lowest, the false positives per slide
  and the sensitivity at ``p >= threshold``, then the point ``(0, 0)``;
- :func:`froc` — all of it over a set of slides, and the challenge's score: the mean sensitivity at 1/4, 1/2, 1, 2, 4
  and 8 false positives per slide.

The script's quirks are matched by default (``quirks=True``), stated here once:

1. coordinates are mapped with Python 2 integer division by ``2**level`` (not by the file's level downsample);
2. a lesion's probability is stored as **float32** (``TP_probs`` is a float32 array) and a detection replaces it only
   when strictly greater — a detection of probability 0 on a lesion is not a true positive;
3. the curve skips the lowest distinct probability (``all_probs[1:]``), so it never reaches the point where every
   detection is accepted; thresholds are compared in float32 against the lesions' probabilities and in float64
   against the false positives' (what numpy does with the script's lists), and the thresholds are ordered by exact
   value (numpy 1.x, the script's; numpy 2 compares a float32 scalar with a Python float in float32 and would order
   a few of them differently);
4. only the exact value 255 of an integer mask is tumour.

``quirks=False`` keeps float64 probabilities, a hit of probability 0 counts (every hit lesion is a true positive at
threshold 0) and the curve starts at the lowest probability. The official script stops at the curve; the score at the
six rates is read by linear interpolation of the curve (``np.interp`` over increasing false positives, the reading of
the challenge paper, Ehteshami Bejnordi et al., JAMA 2017, and of common re-implementations); documented here as
ours; beyond the largest rate reached the curve's last sensitivity is used. The slide AUC (Task 1) is the area under
the ROC curve of slide scores against slide labels, ties counted 1/2 (Mann-Whitney), as
``sklearn.metrics.roc_auc_score``.

Only numpy and OpenCV are used (the script needs scipy, scikit-image and OpenSlide).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError, check_int, check_number

__all__ = [
    "CAMELYON16_LEVEL",
    "CAMELYON16_RESOLUTION",
    "FP_RATES",
    "evaluation_mask",
    "itc_labels",
    "fp_tp_probs",
    "SlideFROC",
    "froc_curve",
    "froc_score",
    "froc",
    "FROCResult",
    "slide_auc",
]

#: ``EVALUATION_MASK_LEVEL`` of the official script
CAMELYON16_LEVEL = 5
#: ``L0_RESOLUTION`` of the official script (µm per level-0 pixel)
CAMELYON16_RESOLUTION = 0.243
#: false positives per slide at which the challenge averages the sensitivity
FP_RATES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def _tumour(mask: Any) -> np.ndarray:
    a = np.asarray(mask)
    if a.ndim == 3:  # an RGB(A) read of a mask pyramid: the script reads channel 0
        a = a[:, :, 0]
    if a.ndim != 2:
        raise ShapeError(f"`mask` must be a 2-D array (or (H, W, C), channel 0 used), got shape {a.shape}")
    if a.dtype == bool:
        return a
    if not np.issubdtype(a.dtype, np.integer):
        raise WSOLTypeError(f"`mask` must be bool or integer (tumour = 255, as the official script reads it), got "
                            f"{a.dtype}")
    t = a == 255
    if not t.any() and (a != 0).any():
        raise WSOLValueError(f"`mask` has non-zero values but no 255 (values {np.unique(a)[:5].tolist()}...): the "
                             f"official evaluation takes only 255 as tumour; pass `mask != 0` (bool) for a 0/1 mask")
    return t


def _raster_order(labels: np.ndarray, n: int) -> np.ndarray:
    """Renumber components 1..n by the raster position of their first pixel (scikit-image's numbering)."""
    if n == 0:
        return labels
    flat = labels.ravel()
    vals, first = np.unique(flat, return_index=True)
    keep = vals > 0
    order = np.argsort(first[keep], kind="stable")
    lut = np.zeros(int(vals.max()) + 1, np.int32)
    lut[vals[keep][order]] = np.arange(1, len(order) + 1, dtype=np.int32)
    return lut[labels]


def evaluation_mask(mask: Any, resolution: float = CAMELYON16_RESOLUTION, level: int = CAMELYON16_LEVEL) -> np.ndarray:
    """``computeEvaluationMask``: the labelled lesions at ``level`` (int32, 0 = no lesion).

    Args:
        mask: the tumour mask read at ``level`` (bool, or integer with tumour = 255; ``(H, W, C)``: channel 0).
        resolution: µm per level-0 pixel.
        level: the level the mask was read at (its downsample is taken as ``2**level``, as in the script).

    Example:
        >>> m = np.zeros((20, 20), bool); m[5:8, 5:8] = True; m[15, 15] = True
        >>> lab = evaluation_mask(m, resolution=0.243, level=5)  # dilation radius 75 / (0.243 * 64) = 4.82 px
        >>> int(lab.max()), int((lab == 1).sum()), int((lab == 2).sum())
        (2, 109, 69)
    """
    t = _tumour(mask)
    check_number(resolution, "resolution", 0.0, low_inclusive=False)
    check_int(level, "level", 0)
    if not t.any():
        return np.zeros(t.shape, np.int32)
    threshold = 75 / (resolution * 2**level * 2)
    d = cv2.distanceTransform((~t).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE).astype(np.float64)
    # the exact transform's float32 values are sqrt(integer): recover the integer, compare sqrt(k) in float64 as scipy
    near = d < threshold + 1.0
    binary = np.zeros(t.shape, bool)
    binary[near] = np.sqrt(np.rint(d[near] ** 2)) < threshold
    # fill holes: background components (4-connected) that do not touch the border become foreground
    n_bg, bg = cv2.connectedComponents((~binary).astype(np.uint8), connectivity=4, ltype=cv2.CV_32S)
    border = np.unique(np.concatenate([bg[0], bg[-1], bg[:, 0], bg[:, -1]]))
    outside = np.isin(bg, border[border > 0])
    filled = ~outside
    n, lab = cv2.connectedComponents(filled.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    return _raster_order(lab, n - 1).astype(np.int32)


def _major_axis_lengths(labels: np.ndarray) -> np.ndarray:
    """``regionprops(labels).major_axis_length`` for labels 1..max (0 for an absent label)."""
    n = int(labels.max()) if labels.size else 0
    out = np.zeros(n, np.float64)
    if n == 0:
        return out
    # bounding boxes of every label from one pass
    ys, xs = np.nonzero(labels)
    lv = labels[ys, xs]
    y0 = np.full(n + 1, np.iinfo(np.int64).max)
    x0 = y0.copy()
    y1 = np.full(n + 1, -1)
    x1 = y1.copy()
    np.minimum.at(y0, lv, ys)
    np.minimum.at(x0, lv, xs)
    np.maximum.at(y1, lv, ys)
    np.maximum.at(x1, lv, xs)
    for k in range(1, n + 1):
        if y1[k] < 0:
            continue
        crop = (labels[y0[k] : y1[k] + 1, x0[k] : x1[k] + 1] == k).astype(np.uint8)
        m = cv2.moments(crop, binaryImage=True)
        a, b, c = m["mu20"] / m["m00"], m["mu11"] / m["m00"], m["mu02"] / m["m00"]
        l1 = (a + c) / 2 + math.sqrt(4 * b * b + (a - c) ** 2) / 2
        out[k - 1] = 4 * math.sqrt(max(l1, 0.0))
    return out


def itc_labels(evaluation_mask: np.ndarray, resolution: float = CAMELYON16_RESOLUTION,
               level: int = CAMELYON16_LEVEL) -> list[int]:
    """``computeITCList``: the labels of isolated tumour cells (major axis ``< 275 / (resolution · 2**level)`` px).

    Example:
        >>> lab = np.zeros((60, 60), np.int32); lab[2:5, 2:5] = 1; lab[10:58, 10:50] = 2
        >>> itc_labels(lab, 0.243, 5)  # threshold 35.4 px
        [1]
    """
    lab = np.asarray(evaluation_mask)
    if lab.ndim != 2 or not np.issubdtype(lab.dtype, np.integer):
        raise ShapeError(f"`evaluation_mask` must be a 2-D integer label array, got {lab.shape} {lab.dtype}")
    check_number(resolution, "resolution", 0.0, low_inclusive=False)
    threshold = 275 / (resolution * 2**level)
    return [i + 1 for i, v in enumerate(_major_axis_lengths(lab)) if v < threshold]


@dataclass
class SlideFROC:
    """What ``compute_FP_TP_Probs`` returns for one slide.

    Attributes:
        fp_probs: probabilities of the false-positive detections.
        tp_probs: ``(num_labels,)`` highest probability that hit each label (0 when missed; ITC labels stay 0).
        num_tumors: lesions to find (labels minus ITCs; 0 for a slide without tumour).
        detection_summary: ``{"Label i": [p, x, y]}`` for every non-ITC lesion (``[]`` when missed).
        fp_summary: ``{"FP j": [p, x, y]}``.
        hit: ``(num_labels,)`` whether a detection hit each label (for ``quirks=False``).
    """

    fp_probs: list[float]
    tp_probs: np.ndarray
    num_tumors: int
    detection_summary: dict[str, list] = field(default_factory=dict)
    fp_summary: dict[str, list] = field(default_factory=dict)
    hit: np.ndarray | None = None


def _detections(detections: Any) -> tuple[list[float], list[int], list[int]]:
    if hasattr(detections, "probs") and hasattr(detections, "xy"):
        p = np.asarray(detections.probs, np.float64).reshape(-1)
        xy = np.asarray(detections.xy).reshape(-1, 2)
        return p.tolist(), [int(v) for v in xy[:, 0]], [int(v) for v in xy[:, 1]]
    a = np.asarray(detections, np.float64) if len(detections) else np.zeros((0, 3))
    if a.ndim != 2 or a.shape[1] != 3:
        raise ShapeError(f"`detections` must be (N, 3) rows (prob, x, y) or a Detections, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise WSOLValueError("`detections` must be finite")
    if (a[:, 1:] != np.floor(a[:, 1:])).any():
        raise WSOLValueError("`detections` coordinates must be integers (level-0 pixels), as in the official CSV")
    return a[:, 0].tolist(), [int(v) for v in a[:, 1]], [int(v) for v in a[:, 2]]


def fp_tp_probs(detections: Any, evaluation_mask: np.ndarray | None = None, itc: Sequence[int] = (),
                level: int = CAMELYON16_LEVEL, *, quirks: bool = True) -> SlideFROC:
    """``compute_FP_TP_Probs`` for one slide.

    Args:
        detections: ``(N, 3)`` rows ``(prob, x, y)`` with level-0 integer coordinates, or a
            :class:`~wsolkit.wsi.Detections`.
        evaluation_mask: the slide's :func:`evaluation_mask`; ``None`` for a slide without tumour (every detection
            is a false positive).
        itc: :func:`itc_labels` of that mask.
        level: the mask's level (coordinates are divided by ``2**level``).
        quirks: match the official script (float32 lesion probabilities, strict ``>``); see the module docstring.

    Raises:
        WSOLValueError: a detection falls outside the evaluation mask (the script would index out of range, or
            wrap around for a negative coordinate).
    """
    probs, xs, ys = _detections(detections)
    itc_set = {int(i) for i in itc}
    if evaluation_mask is None:
        fp = list(probs)
        return SlideFROC(fp, np.zeros(0, np.float32 if quirks else np.float64), 0, {},
                         {f"FP {j}": [p, x, y] for j, (p, x, y) in enumerate(zip(probs, xs, ys))}, np.zeros(0, bool))
    lab = np.asarray(evaluation_mask)
    if lab.ndim != 2 or not np.issubdtype(lab.dtype, np.integer):
        raise ShapeError(f"`evaluation_mask` must be a 2-D integer label array, got {lab.shape} {lab.dtype}")
    max_label = int(lab.max()) if lab.size else 0
    tp = np.zeros(max_label, np.float32 if quirks else np.float64)
    hit = np.zeros(max_label, bool)
    summary: dict[str, list] = {f"Label {i}": [] for i in range(1, max_label + 1) if i not in itc_set}
    fp_probs: list[float] = []
    fp_summary: dict[str, list] = {}
    d = 2**level
    for p, x, y in zip(probs, xs, ys):
        r, c = y // d, x // d
        if not (0 <= r < lab.shape[0] and 0 <= c < lab.shape[1]):
            raise WSOLValueError(f"detection (prob {p}, x {x}, y {y}) lies outside the evaluation mask of shape "
                                 f"{lab.shape} at level {level} (level-0 size about {lab.shape[1] * d} x "
                                 f"{lab.shape[0] * d}); are the coordinates level-0 pixels of this slide?")
        k = int(lab[r, c])
        if k == 0:
            fp_summary[f"FP {len(fp_probs)}"] = [p, x, y]
            fp_probs.append(p)
        elif k not in itc_set:
            better = p > float(tp[k - 1]) if (quirks or hit[k - 1]) else True
            if better:
                summary[f"Label {k}"] = [p, x, y]
                tp[k - 1] = p
                hit[k - 1] = True
    return SlideFROC(fp_probs, tp, max_label - len(itc_set & set(range(1, max_label + 1))), summary, fp_summary, hit)


def froc_curve(slides: Sequence[SlideFROC], *, quirks: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``computeFROC``: ``(fps_per_slide, sensitivity)`` over the distinct probabilities (decreasing thresholds).

    Args:
        slides: one :class:`SlideFROC` per slide evaluated (normal slides included: they set the per-slide rate).
        quirks: skip the lowest probability as the script does (``all_probs[1:]``); ``False`` keeps it.
    """
    if len(slides) == 0:
        raise WSOLValueError("`slides` is empty: the FROC needs at least one slide")
    num_tumors = sum(int(s.num_tumors) for s in slides)
    if num_tumors == 0:
        raise WSOLValueError("no lesion to detect (every slide is tumour-free or has only isolated tumour cells): the "
                             "sensitivity is undefined")
    fps = np.asarray([p for s in slides for p in s.fp_probs], np.float64)
    tp_dtype = np.float32 if quirks else np.float64
    tps = np.concatenate([np.asarray(s.tp_probs, tp_dtype).reshape(-1) for s in slides])
    if not quirks:  # only the lesions hit: a missed lesion has no probability
        hit = [np.ones(len(s.tp_probs), bool) if s.hit is None else np.asarray(s.hit, bool) for s in slides]
        tps = tps[np.concatenate(hit)]
    # the script's set mixes python floats (FPs) and float32 scalars (TPs): equal values merge, others stay apart
    values = sorted({float(v) for v in fps} | {float(v) for v in tps})
    thresholds = values[1:] if quirks else values
    total_fp, total_tp = [], []
    for t in thresholds:
        total_fp.append(int((fps >= t).sum()))
        total_tp.append(int((tps >= tp_dtype(t)).sum()))
    total_fp.append(0)
    total_tp.append(0)
    return np.asarray(total_fp) / float(len(slides)), np.asarray(total_tp) / float(num_tumors)


def froc_score(fps: np.ndarray, sensitivity: np.ndarray, fp_rates: Sequence[float] = FP_RATES
               ) -> tuple[float, np.ndarray]:
    """Mean sensitivity at ``fp_rates`` false positives per slide (linear interpolation of the curve).

    Example:
        >>> froc_score(np.array([2.0, 1.0, 0.0]), np.array([1.0, 0.5, 0.0]), (0.5, 1.0))
        (0.375, array([0.25, 0.5 ]))
    """
    x = np.asarray(fps, np.float64)[::-1]
    y = np.asarray(sensitivity, np.float64)[::-1]
    order = np.argsort(x, kind="stable")
    sens = np.interp(np.asarray(fp_rates, np.float64), x[order], y[order])
    return float(sens.mean()), sens


@dataclass
class FROCResult:
    """The FROC of a set of slides.

    Attributes:
        score: mean sensitivity at :data:`FP_RATES` (the challenge's Task 2 score).
        sensitivities: ``{rate: sensitivity}`` at those rates.
        fps, sensitivity: the curve (:func:`froc_curve`).
        slides: ``{name: SlideFROC}``.
        num_tumors: lesions to find over all slides.
    """

    score: float
    sensitivities: dict[float, float]
    fps: np.ndarray
    sensitivity: np.ndarray
    slides: dict[str, SlideFROC]
    num_tumors: int


def froc(detections: Mapping[str, Any], masks: Mapping[str, Any], *, resolution: float = CAMELYON16_RESOLUTION,
         level: int = CAMELYON16_LEVEL, fp_rates: Sequence[float] = FP_RATES, quirks: bool = True) -> FROCResult:
    """CAMELYON16 FROC of detections over slides.

    Args:
        detections: ``{slide: (N, 3) (prob, x, y) rows or Detections}`` — every slide evaluated.
        masks: ``{slide: tumour mask at level}`` (see :func:`evaluation_mask`; an :func:`evaluation_mask` label
            array is not accepted here — pass the tumour mask); a slide missing or ``None`` is tumour-free.
        resolution: the script's ``L0_RESOLUTION`` (µm per level-0 pixel).
        level: the script's ``EVALUATION_MASK_LEVEL`` (the masks are read at downsample ``2**level``).
        fp_rates: the false-positive rates averaged.
        quirks: see the module docstring.

    Example:
        >>> m = np.zeros((60, 60), bool); m[10:50, 10:50] = True  # one lesion of 40 x 40 px at level 5
        >>> dets = {"tumor_001": [(0.9, 640, 640), (0.4, 32, 32)], "normal_001": [(0.2, 100, 100)]}
        >>> r = froc(dets, {"tumor_001": m})
        >>> r.num_tumors, round(r.score, 4)
        (1, 1.0)
    """
    if not isinstance(detections, Mapping) or not isinstance(masks, Mapping):
        raise WSOLTypeError(f"`detections` and `masks` must be mappings slide -> value, got "
                            f"{type(detections).__name__} and {type(masks).__name__}")
    unknown = set(masks) - set(detections)
    if unknown:
        raise WSOLValueError(f"`masks` names slides with no detections entry: {sorted(unknown)[:5]} (give an empty "
                             f"list for a slide without detections)")
    per: dict[str, SlideFROC] = {}
    for name, dets in detections.items():
        m = masks.get(name)
        if m is None:
            per[name] = fp_tp_probs(dets, None, (), level, quirks=quirks)
        else:
            lab = evaluation_mask(m, resolution, level)
            per[name] = fp_tp_probs(dets, lab, itc_labels(lab, resolution, level), level, quirks=quirks)
    fps, sens = froc_curve(list(per.values()), quirks=quirks)
    score, at = froc_score(fps, sens, fp_rates)
    return FROCResult(score, {float(r): float(s) for r, s in zip(fp_rates, at)}, fps, sens, per,
                      sum(s.num_tumors for s in per.values()))


def slide_auc(scores: Any, labels: Any) -> float:
    """Task 1: ROC AUC of slide scores against slide labels (1 = tumour), ties counted 1/2.

    Example:
        >>> slide_auc([0.9, 0.2, 0.4, 0.4], [1, 0, 0, 1])
        0.875
    """
    s = np.asarray(scores, np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    if s.shape != y.shape:
        raise ShapeError(f"`scores` and `labels` must have the same length, got {s.shape} and {y.shape}")
    if not np.isfinite(s).all():
        raise WSOLValueError("`scores` must be finite")
    if not np.isin(y, (0, 1)).all():
        raise WSOLValueError(f"`labels` must be 0 / 1, got values {np.unique(y)[:5].tolist()}")
    pos, neg = s[y == 1], s[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        raise WSOLValueError(f"the AUC needs both tumour and normal slides, got {len(pos)} tumour and {len(neg)} "
                             f"normal")
    # Mann-Whitney U with mid-ranks
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), np.float64)
    sv = s[order]
    i = 0
    while i < len(sv):
        j = i
        while j + 1 < len(sv) and sv[j + 1] == sv[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    u = ranks[y == 1].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))
