"""Streaming meters (``torchmetrics.Metric``): localization, boxes and classification.

Every meter keeps only int64 sum states (histograms and counters), so

- streaming over any batch split gives exactly the one-shot result of its functional twin
  (:func:`~wsolkit.metrics.localization_metrics`, :func:`~wsolkit.metrics.box_accuracy`,
  :func:`~wsolkit.metrics.classification_metrics`);
- ``compute()`` is global under ``torch.distributed`` (the states are summed over the processes), and
  ``merge(other)`` is exact;
- memory is O(T) whatever the dataset size.

``compute()`` returns a dict of metrics, which Lightning's ``self.log(name, meter)`` refuses (it needs a tensor),
and a ``MetricCollection`` mixing meters of different ``update`` signatures needs keyword arguments. For Lightning
and ``MetricCollection`` use the scalar meters of :mod:`wsolkit.metrics.scalars` (``PxAP``, ``PeakIoU``, ``F1Pos``,
``F1Neg``: one tensor each, all updated as ``update(cams, masks, labels)``), or log the numbers of ``compute()``
at the end of the epoch.

Results are in percent, with snake_case keys (see :mod:`wsolkit.metrics`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from wsolkit._checks import (
    ShapeError,
    WSOLTypeError,
    WSOLValueError,
    check_int,
    check_labels,
    check_ndim,
    check_number,
)
from wsolkit.metrics._base import MetricDict, WSOLMetric
from wsolkit.metrics.boxes import IOU_LEVELS_V2, _box_compute, _box_update
from wsolkit.metrics.histogram import _histogram_update, _histogram_validate
from wsolkit.metrics.pixel import _localization_compute, threshold_index

__all__ = ["LocalizationMeter", "BoxAccuracyMeter", "ClassificationMeter", "classification_metrics"]


class LocalizationMeter(WSOLMetric):
    """Streaming pixel metrics: PxAP, TP*/FN*/FP*/TN*, Dice/IoU/mIoU, F1+/F1− and curves.

    Args:
        num_thresholds: T (thresholds ``i / T``).
        ignore_index: mask value left out.
        normalize: per-image min-max normalisation (after selection / upsampling) in :meth:`update` — the
            protocol's post-processing, so ``meter.update(out.cams, masks, labels)`` takes any method's raw cams.
            With ``False``, maps must lie in ``[0, 1]`` (else a :class:`~wsolkit._checks.WSOLValueError`).
        f1_threshold: threshold of F1+/F1− (MaxMin paper: 0.5).
        **kwargs: ``torchmetrics.Metric`` options (``process_group``, ``sync_on_compute``, ...).

    Example:
        >>> meter = LocalizationMeter(num_thresholds=100)
        >>> masks = torch.zeros(2, 16, 16, dtype=torch.uint8); masks[:, 4:12, 4:12] = 1
        >>> meter.update(masks.float()[:, ::2, ::2] + 0.1 * torch.rand(2, 8, 8), masks)
        >>> r = meter.compute()
        >>> r["pxap"] > 90, r["tp_star"] + r["fn_star"]
        (True, 100.0)
    """

    def __init__(
        self,
        num_thresholds: int = 1000,
        ignore_index: int | None = 255,
        normalize: bool = True,
        f1_threshold: float = 0.5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_thresholds = check_int(num_thresholds, "num_thresholds", low=1)
        self.ignore_index = ignore_index
        self.normalize = bool(normalize)
        self.f1_threshold = check_number(f1_threshold, "f1_threshold", 0.0, 1.0)
        #: foreground / background counts per bin ``(T + 1,)`` and the number of images
        self._add_int_state("fg", (self.num_thresholds + 1,))
        self._add_int_state("bg", (self.num_thresholds + 1,))
        self._add_int_state("n_images", ())

    def _config(self) -> dict[str, Any]:
        return {"num_thresholds": self.num_thresholds, "ignore_index": self.ignore_index, "normalize": self.normalize}

    def update(
        self,
        cams: torch.Tensor,
        masks: torch.Tensor,
        labels: torch.Tensor | int | None = None,
        validate_args: bool = True,
    ) -> None:
        """Add a batch (see :func:`wsolkit.metrics.localization_histogram` for the shapes)."""
        if validate_args:
            _histogram_validate(cams, masks, self.num_thresholds, self.ignore_index, labels)
        if cams.shape[0] == 0:
            return
        fg, bg = _histogram_update(cams, masks, self.num_thresholds, self.ignore_index, labels, self.normalize,
                                   check_range=validate_args)
        self.fg += fg.to(self.fg.device)
        self.bg += bg.to(self.bg.device)
        self.n_images += cams.shape[0]

    def compute(self, threshold: float | None = None) -> MetricDict:
        """All metrics (see :func:`wsolkit.metrics.histogram_metrics`); ``threshold`` fixes the operating τ."""
        t = self.num_thresholds
        if threshold is not None:
            threshold_index(threshold, t)
        out = _localization_compute(self.fg, self.bg, threshold, self.f1_threshold)
        out["n_images"] = int(self.n_images)
        return out


class BoxAccuracyMeter(WSOLMetric):
    """Streaming MaxBoxAcc / MaxBoxAccV2 / top-1 localization (see :mod:`wsolkit.metrics.boxes`).

    Args:
        num_thresholds: T (CAM thresholds ``np.arange(0, 1, 1 / T)``).
        iou_levels: IoU levels δ (percent) of MaxBoxAccV2.
        normalize: per-image min-max normalisation in :meth:`update`.

        **kwargs: ``torchmetrics.Metric`` options.

    Example:
        >>> meter = BoxAccuracyMeter(num_thresholds=20)
        >>> cams = torch.zeros(1, 16, 16); cams[0, 4:8, 2:10] = 1.0
        >>> meter.update(cams, [torch.tensor([[2, 4, 9, 7]])])
        >>> meter.compute()["maxboxacc"]
        100.0
    """

    def __init__(
        self,
        num_thresholds: int = 1000,
        iou_levels: Sequence[int] = IOU_LEVELS_V2,
        normalize: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_thresholds = check_int(num_thresholds, "num_thresholds", low=1)
        self.iou_levels = tuple(check_int(v, "iou_levels", 0, 100) for v in iou_levels)
        if not self.iou_levels:
            raise WSOLValueError("`iou_levels` must not be empty")
        self.normalize = bool(normalize)
        t = self.num_thresholds
        self._add_int_state("correct_v1", (t,))
        self._add_int_state("correct_v2", (len(self.iou_levels), t))
        self._add_int_state("correct_top1", (t,))
        self._add_int_state("n_images", ())
        self._add_int_state("n_cls_correct", ())

    def _config(self) -> dict[str, Any]:
        return {"num_thresholds": self.num_thresholds, "iou_levels": self.iou_levels, "normalize": self.normalize}

    def update(
        self,
        cams: torch.Tensor,
        boxes: Sequence,
        labels: torch.Tensor | int | None = None,
        preds: torch.Tensor | None = None,
        image_size: tuple[int, int] | None = None,
    ) -> None:
        """Add a batch: maps ``(B, H, W)`` or ``(B, C, h, w)`` (with ``labels``), boxes per image ``(M, 4)``.

        With ``preds`` (predicted classes ``(B,)``) and ``labels``, top-1 localization is counted.
        """
        correct = None
        if preds is not None:
            if not isinstance(labels, torch.Tensor):
                raise WSOLTypeError("`labels` (a (B,) tensor) is required with `preds`")
            correct = preds.to(labels.device) == labels
        st = _box_update(cams, boxes, self.num_thresholds, self.iou_levels, labels, correct, self.normalize,
                         image_size)
        for k in self._defaults:
            setattr(self, k, getattr(self, k) + st[k].to(getattr(self, k).device))

    def compute(self) -> MetricDict:
        """``{"maxboxacc", "maxboxacc_v2", "boxacc_v2_iou<δ>", "best_threshold", "top1_loc", "n_images", "curves"}``."""
        return _box_compute(self._state, self.iou_levels)


class ClassificationMeter(WSOLMetric):
    """Streaming classification accuracy (survey eq. 13) and confusion matrix.

    Args:
        num_classes: number of classes C.
        **kwargs: ``torchmetrics.Metric`` options.

    Example:
        >>> meter = ClassificationMeter(num_classes=2)
        >>> meter.update(torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]]), torch.tensor([0, 1, 1]))
        >>> round(meter.compute()["accuracy"], 4)
        66.6667
    """

    def __init__(self, num_classes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_classes = check_int(num_classes, "num_classes", low=1)
        self._add_int_state("confusion", (self.num_classes, self.num_classes))

    def _config(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes}

    def update(self, preds: torch.Tensor, labels: torch.Tensor) -> None:
        """Add a batch: logits ``(B, C)`` (argmax is taken) or predicted classes ``(B,)``, true ``labels (B,)``."""
        cm = _classification_update(preds, labels, self.num_classes)
        self.confusion += cm.to(self.confusion.device)

    def compute(self) -> MetricDict:
        """``{"accuracy", "per_class_accuracy", "confusion", "n_images"}``; rows of ``confusion`` are true classes."""
        return _classification_compute(self.confusion)


def _classification_update(preds: torch.Tensor, labels: torch.Tensor, c: int) -> torch.Tensor:
    check_ndim(preds, "preds", (1, 2), "(B,) or (B, C)")
    if preds.ndim == 2:
        if preds.shape[1] != c:
            raise ShapeError(f"`preds` must have shape (B, {c}), got {tuple(preds.shape)}")
        preds = preds.argmax(1)
    check_labels(preds, "preds", preds.shape[0], c)
    check_labels(labels, "labels", preds.shape[0], c)
    idx = labels.long().cpu() * c + preds.long().cpu()
    return torch.bincount(idx, minlength=c * c).view(c, c)


def _classification_compute(cm: torch.Tensor) -> MetricDict:
    cm = cm.cpu()
    n = int(cm.sum())
    acc = float(cm.diag().sum()) * 100.0 / n if n else float("nan")
    rows = cm.sum(1).double()
    per = torch.where(rows > 0, cm.diag().double() * 100.0 / rows.clamp_min(1), torch.full_like(rows, float("nan")))
    return MetricDict(accuracy=acc, per_class_accuracy=per.tolist(), confusion=cm.clone(), n_images=n)


def classification_metrics(preds: torch.Tensor, labels: torch.Tensor, num_classes: int) -> MetricDict:
    """Accuracy (survey eq. 13, percent), per-class accuracy and confusion matrix: the twin of
    :class:`ClassificationMeter`.

    Args:
        preds: logits ``(B, C)`` (argmax is taken) or predicted classes ``(B,)``.
        labels: true classes ``(B,)``.
        num_classes: C.

    Example:
        >>> r = classification_metrics(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]), 2)
        >>> round(r["accuracy"], 2), r["confusion"].tolist()
        (66.67, [[1, 1], [0, 1]])
    """
    c = check_int(num_classes, "num_classes", low=1)
    return _classification_compute(_classification_update(preds, labels, c))
