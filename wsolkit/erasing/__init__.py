"""CAM refinement by erasing / perturbation (HaS, ADL, ACoL, SPG, CutMix) and TS-CAM for vision transformers.

Importing this package registers the ``"acol"`` and ``"spg"`` heads with :func:`wsolkit.heads.create_head`.
"""

from wsolkit.erasing._common import labelled_step
from wsolkit.erasing.acol import ACoL, acol_erase, acol_loss
from wsolkit.erasing.adl import ADL, adl, insert_adl
from wsolkit.erasing.cutmix import CutMix, CutMixBatch, cutmix, cutmix_box, cutmix_loss
from wsolkit.erasing.has import HideAndSeek, has_mask, hide_and_seek
from wsolkit.erasing.spg import SPG, SPG_THRESHOLDS, masked_bce, spg_loss, spg_seeds
from wsolkit.erasing.tscam import TSCAM, class_token_attention, create_tscam

__all__ = [
    "hide_and_seek",
    "has_mask",
    "HideAndSeek",
    "adl",
    "ADL",
    "insert_adl",
    "acol_erase",
    "ACoL",
    "acol_loss",
    "SPG_THRESHOLDS",
    "spg_seeds",
    "masked_bce",
    "SPG",
    "spg_loss",
    "CutMixBatch",
    "cutmix_box",
    "cutmix",
    "cutmix_loss",
    "CutMix",
    "class_token_attention",
    "TSCAM",
    "create_tscam",
    "labelled_step",
]
