"""MaxMin (Belharbi et al.): localizer–classifier with min-max entropy and recursive erasing with trust.

Registered as ``"maxmin"``: ``wsolkit.create_method("maxmin", K, backbone=...)``.
"""

from wsolkit.maxmin.factory import WILDCAT_DEFAULTS, maxmin_method
from wsolkit.maxmin.factory import build_maxmin as build_maxmin  # deprecated (wsolkit._deprecation): out of __all__
from wsolkit.maxmin.losses import localizer_ce, maxmin_loss, negative_uniform_ce, positive_ce, size_prior
from wsolkit.maxmin.mask import MaxMinMask, maxmin_mask
from wsolkit.maxmin.model import MaxMin
from wsolkit.maxmin.model import (
    maxmin_train_step as maxmin_train_step,  # deprecated (wsolkit._deprecation): out of __all__
)
from wsolkit.maxmin.trust import accumulate_mask, trust_coefficients

__all__ = [
    "MaxMin",
    "MaxMinMask",
    "WILDCAT_DEFAULTS",
    "accumulate_mask",
    "localizer_ce",
    "maxmin_loss",
    "maxmin_mask",
    "maxmin_method",
    "negative_uniform_ce",
    "positive_ce",
    "size_prior",
    "trust_coefficients",
]
