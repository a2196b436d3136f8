"""Localization metrics following the evaluation protocol of Choe et al. (2020)."""

from wsolkit.metrics.pxap import binned_counts, pxap, pxap_from_counts

__all__ = ["pxap", "binned_counts", "pxap_from_counts"]
