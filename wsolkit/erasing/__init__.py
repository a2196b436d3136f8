"""CAM refinement by erasing / perturbation (HaS, ADL, ACoL, SPG, CutMix) and TS-CAM for vision transformers.

Importing this package registers the methods ``"has"``, ``"adl"``, ``"acol"``, ``"spg"``, ``"cutmix"`` and
``"tscam"`` (:func:`wsolkit.create_method`, family ``"refinement"``) and the heads ``"acol"`` and ``"spg"``
(:func:`wsolkit.heads.create_head`).
"""

from wsolkit.erasing.acol import ACoL, acol_erase, acol_loss
from wsolkit.erasing.adl import ADL, adl, insert_adl
from wsolkit.erasing.cutmix import CutMix, CutMixBatch, cutmix, cutmix_box, cutmix_loss
from wsolkit.erasing.has import HAS_GRID_SIZES, HideAndSeek, has_mask, hide_and_seek
from wsolkit.erasing.methods import CutMixModel, HaSModel, default_adl_positions
from wsolkit.erasing.spg import SPG, SPG_GUIDANCE, SPG_THRESHOLDS, masked_bce, spg_loss, spg_seeds
from wsolkit.erasing.tscam import TSCAM, TSCAM_DEFAULT_BACKBONE, class_token_attention
from wsolkit.erasing.tscam import create_tscam as create_tscam  # deprecated (wsolkit._deprecation): out of __all__

__all__ = [
    "HAS_GRID_SIZES",
    "hide_and_seek",
    "has_mask",
    "HideAndSeek",
    "HaSModel",
    "adl",
    "ADL",
    "insert_adl",
    "default_adl_positions",
    "acol_erase",
    "ACoL",
    "acol_loss",
    "SPG_GUIDANCE",
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
    "CutMixModel",
    "class_token_attention",
    "TSCAM",
    "TSCAM_DEFAULT_BACKBONE",
]
