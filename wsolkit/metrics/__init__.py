"""Localization and faithfulness metrics (Choe et al. 2020 protocol; the survey of Rony et al.; explainer metrics).

Units and keys: every metric is in **percent** (PxAP, TP*/FN*/FP*/TN*, Dice/IoU/mIoU, F1±, BoxAcc, accuracy,
Average Drop / Increase, Deletion / Insertion, ROAD; curves too). Thresholds ``τ`` are scores in ``[0, 1]``; the
sanity check's Spearman, SSIM and HOG similarities are coefficients in ``[-1, 1]``. Keys are snake_case (``tp_star``,
``f1_pos``, ``boxacc_v2_iou50``, ``n_images``).

- :mod:`~wsolkit.metrics.histogram`: the exact fg / bg threshold histograms (fused select → upsample → min-max).
- :mod:`~wsolkit.metrics.pixel`: PxAP, TP*/FN*/FP*/TN*, Dice/IoU/mIoU, F1+/F1− and curves from the histograms;
  ``localization_metrics`` (maps → every metric).
- :mod:`~wsolkit.metrics.pxap`: ``pxap`` (maps → PxAP in one pass).
- :mod:`~wsolkit.metrics.boxes`: MaxBoxAcc, MaxBoxAccV2, top-1 localization.
- :mod:`~wsolkit.metrics.meters`: ``torchmetrics.Metric`` meters (global ``compute()`` under DDP, ``merge``).
- :mod:`~wsolkit.metrics.scalars`: one-number meters (``PxAP``, ``PeakIoU``, ``F1Pos``, ``F1Neg``) whose
  ``compute()`` is a tensor: Lightning's ``self.log(name, metric)`` and ``MetricCollection`` take them.
- :mod:`~wsolkit.metrics.faithfulness`, :mod:`~wsolkit.metrics.road`: Average Drop / Increase, Deletion / Insertion,
  ROAD MoRF / LeRF and their meters.
- :mod:`~wsolkit.metrics.froc`: CAMELYON16's lesion FROC and slide AUC (the organisers' ``Evaluation_FROC.py``).
- :mod:`~wsolkit.metrics.sanity`: the model-randomisation sanity check.
- :mod:`~wsolkit.metrics.selection`: B-LOC subset and B-LOC / B-CL model selection.
- ``wsolkit evaluate``: :mod:`~wsolkit.cli.evaluate`.

Functional twins: ``localization_metrics`` ↔ ``LocalizationMeter``, ``box_accuracy`` ↔ ``BoxAccuracyMeter``,
``classification_metrics`` ↔ ``ClassificationMeter``, ``confidence_change`` ↔ ``ConfidenceChangeMeter``,
``deletion_insertion`` ↔ ``DeletionInsertionMeter``, ``road`` ↔ ``ROADMeter``.
"""

from wsolkit.metrics._base import MetricDict
from wsolkit.metrics.boxes import box_accuracy
from wsolkit.metrics.faithfulness import (
    ConfidenceChangeMeter,
    DeletionInsertionMeter,
    confidence_change,
    deletion_insertion,
)
from wsolkit.metrics.froc import FROCResult, evaluation_mask, froc, itc_labels, slide_auc
from wsolkit.metrics.histogram import LocalizationHistogram, bin_index, localization_histogram
from wsolkit.metrics.meters import BoxAccuracyMeter, ClassificationMeter, LocalizationMeter, classification_metrics
from wsolkit.metrics.pixel import (
    confusion_areas,
    confusion_curves,
    histogram_metrics,
    localization_metrics,
    overlap_curves,
    pxap_from_histogram,
    threshold_index,
)
from wsolkit.metrics.pxap import binned_counts as binned_counts  # deprecated (wsolkit._deprecation): out of __all__
from wsolkit.metrics.pxap import pxap
from wsolkit.metrics.pxap import pxap_from_counts as pxap_from_counts
from wsolkit.metrics.road import ROADMeter, noisy_linear_imputation, road
from wsolkit.metrics.sanity import (
    SanityResult,
    hog,
    hog_similarity,
    model_randomization,
    spearman,
    spearman_abs,
    ssim,
)
from wsolkit.metrics.scalars import F1Neg, F1Pos, LocalizationScalar, PeakIoU, PxAP
from wsolkit.metrics.selection import BLOC_PER_CLASS, ModelSelector, bloc_subset

__all__ = [
    "froc",
    "FROCResult",
    "evaluation_mask",
    "itc_labels",
    "slide_auc",
    "pxap",
    "bin_index",
    "localization_histogram",
    "LocalizationHistogram",
    "confusion_curves",
    "confusion_areas",
    "overlap_curves",
    "pxap_from_histogram",
    "threshold_index",
    "histogram_metrics",
    "localization_metrics",
    "box_accuracy",
    "classification_metrics",
    "LocalizationMeter",
    "BoxAccuracyMeter",
    "ClassificationMeter",
    "LocalizationScalar",
    "PxAP",
    "PeakIoU",
    "F1Pos",
    "F1Neg",
    "MetricDict",
    "confidence_change",
    "deletion_insertion",
    "road",
    "noisy_linear_imputation",
    "ConfidenceChangeMeter",
    "DeletionInsertionMeter",
    "ROADMeter",
    "model_randomization",
    "SanityResult",
    "spearman",
    "spearman_abs",
    "ssim",
    "hog",
    "hog_similarity",
    "BLOC_PER_CLASS",
    "bloc_subset",
    "ModelSelector",
]
