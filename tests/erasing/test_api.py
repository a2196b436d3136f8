import pytest

import wsolkit
import wsolkit.erasing as erasing
from wsolkit.heads import create_head, list_heads

PUBLIC = {
    "HAS_GRID_SIZES", "hide_and_seek", "has_mask", "HideAndSeek", "HaSModel",
    "adl", "ADL", "insert_adl", "default_adl_positions",
    "acol_erase", "ACoL", "acol_loss",
    "SPG_GUIDANCE", "SPG_THRESHOLDS", "spg_seeds", "masked_bce", "SPG", "spg_loss",
    "CutMixBatch", "cutmix_box", "cutmix", "cutmix_loss", "CutMix", "CutMixModel",
    "class_token_attention", "TSCAM", "TSCAM_DEFAULT_BACKBONE",
}


def test_public_names():
    assert set(erasing.__all__) == PUBLIC
    assert all(hasattr(erasing, n) for n in PUBLIC)
    assert not hasattr(erasing, "labelled_step")  # removed: create_method + the shared loop replace it


def test_heads_registered_on_import():
    assert {"acol", "spg"} <= set(list_heads())
    assert type(create_head("acol", 4, 2, mid_channels=None)).__name__ == "ACoL"


def test_methods_registered_in_the_refinement_family():
    names = ["has", "adl", "acol", "spg", "cutmix", "tscam"]
    assert wsolkit.list_methods("*") == sorted(wsolkit.list_methods("*"))
    for n in names:
        assert wsolkit.method_info(n) == {"name": n, "needs": "backbone", "family": "refinement"}


def test_create_tscam_is_deprecated():
    with pytest.deprecated_call():
        m = erasing.create_tscam("test_vit", 2, img_size=32)
    assert isinstance(m, erasing.TSCAM)
