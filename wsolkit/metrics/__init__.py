"""Localization metrics following the evaluation protocol of Choe et al. (2020) and the survey (Rony et al.).

- :mod:`~wsolkit.metrics.histogram`: the exact fg / bg threshold histograms (fused select → upsample → min-max).
- :mod:`~wsolkit.metrics.pixel`: PxAP, TP*/FN*/FP*/TN*, Dice/IoU/mIoU, F1+/F1− and curves from the histograms.
- :mod:`~wsolkit.metrics.pxap`: ``pxap``, ``binned_counts``, ``pxap_from_counts`` (functional shortcuts).
- :mod:`~wsolkit.metrics.boxes`: MaxBoxAcc, MaxBoxAccV2, top-1 localization.
- :mod:`~wsolkit.metrics.meters`: streaming meters with ``merge`` / ``sync`` (torch.distributed).
- :mod:`~wsolkit.metrics.selection`: B-LOC subset and B-LOC / B-CL model selection.
- ``wsolkit evaluate``: :mod:`~wsolkit.cli.evaluate`.
"""

from wsolkit.metrics.boxes import box_accuracy
from wsolkit.metrics.histogram import LocalizationHistogram, bin_index, localization_histogram
from wsolkit.metrics.meters import BoxAccuracyMeter, ClassificationMeter, LocalizationMeter
from wsolkit.metrics.pixel import (
    confusion_areas,
    confusion_curves,
    localization_metrics,
    overlap_curves,
    pxap_from_histogram,
    threshold_index,
)
from wsolkit.metrics.pxap import binned_counts, pxap, pxap_from_counts
from wsolkit.metrics.selection import BLOC_PER_CLASS, ModelSelector, bloc_subset

__all__ = [
    "pxap",
    "binned_counts",
    "pxap_from_counts",
    "bin_index",
    "localization_histogram",
    "LocalizationHistogram",
    "confusion_curves",
    "confusion_areas",
    "overlap_curves",
    "pxap_from_histogram",
    "threshold_index",
    "localization_metrics",
    "box_accuracy",
    "LocalizationMeter",
    "BoxAccuracyMeter",
    "ClassificationMeter",
    "BLOC_PER_CLASS",
    "bloc_subset",
    "ModelSelector",
]
