"""MaxMin (Belharbi et al.): localizer–classifier with min-max entropy and recursive erasing with trust."""

from wsolkit.maxmin.losses import localizer_ce, maxmin_loss, negative_uniform_ce, positive_ce, size_prior
from wsolkit.maxmin.mask import MaxMinMask, maxmin_mask
from wsolkit.maxmin.model import WILDCAT_DEFAULTS, MaxMin, build_maxmin, maxmin_train_step
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
    "maxmin_train_step",
    "negative_uniform_ce",
    "positive_ce",
    "size_prior",
    "trust_coefficients",
]
