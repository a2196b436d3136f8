"""Localization metrics following the evaluation protocol of Choe et al. (2020) and the survey (Rony et al.).

- :mod:`~wsolkit.metrics.histogram`: the exact fg / bg threshold histograms (fused select → upsample → min-max).
- :mod:`~wsolkit.metrics.pixel`: PxAP, TP*/FN*/FP*/TN*, Dice/IoU/mIoU, F1+/F1− and curves from the histograms.
- :mod:`~wsolkit.metrics.pxap`: ``pxap``, ``binned_counts``, ``pxap_from_counts`` (functional shortcuts).
"""

from wsolkit.metrics.histogram import LocalizationHistogram, bin_index, localization_histogram
from wsolkit.metrics.pixel import (
    confusion_areas,
    confusion_curves,
    localization_metrics,
    overlap_curves,
    pxap_from_histogram,
    threshold_index,
)
from wsolkit.metrics.pxap import binned_counts, pxap, pxap_from_counts

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
]
