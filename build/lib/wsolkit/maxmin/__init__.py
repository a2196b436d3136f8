"""MaxMin (Belharbi et al.): localizer–classifier with min-max entropy and recursive erasing with trust.

Registered as ``"maxmin"``: ``wsolkit.create_method("maxmin", K, backbone=...)``.
"""

from wsolkit.maxmin.factory import WILDCAT_DEFAULTS, build_maxmin, maxmin_method
from wsolkit.maxmin.losses import localizer_ce, maxmin_loss, negative_uniform_ce, positive_ce, size_prior
from wsolkit.maxmin.mask import MaxMinMask, maxmin_mask
from wsolkit.maxmin.model import MaxMin, maxmin_train_step
from wsolkit.maxmin.trust import accumulate_mask, trust_coefficients

__all__ = [
    "MaxMin",
    "MaxMinMask",
    "WILDCAT_DEFAULTS",
    "accumulate_mask",
    "build_maxmin",
    "localizer_ce",
    "maxmin_loss",
    "maxmin_mask",
    "maxmin_method",
    "maxmin_train_step",
    "negative_uniform_ce",
    "positive_ce",
    "size_prior",
    "trust_coefficients",
]
