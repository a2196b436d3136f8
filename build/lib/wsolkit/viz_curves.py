"""Deprecated: the threshold-curve plots moved to :mod:`wsolkit.viz` (this alias is removed in the next release)."""

import warnings

from wsolkit.viz import plot_threshold_curves

__all__ = ["plot_threshold_curves"]

warnings.warn("`wsolkit.viz_curves` is deprecated: use `wsolkit.viz`", DeprecationWarning, stacklevel=2)
