import wsolkit.erasing as erasing
from wsolkit.heads import create_head, list_heads

PUBLIC = {
    "hide_and_seek", "has_mask", "HideAndSeek",
    "adl", "ADL", "insert_adl",
    "acol_erase", "ACoL", "acol_loss",
    "SPG_THRESHOLDS", "spg_seeds", "masked_bce", "SPG", "spg_loss",
    "CutMixBatch", "cutmix_box", "cutmix", "cutmix_loss", "CutMix",
    "class_token_attention", "TSCAM", "create_tscam",
    "labelled_step",
}


def test_public_names():
    assert set(erasing.__all__) == PUBLIC
    assert all(hasattr(erasing, n) for n in PUBLIC)


def test_heads_registered_on_import():
    assert {"acol", "spg"} <= set(list_heads())
    assert type(create_head("acol", 4, 2, mid_channels=None)).__name__ == "ACoL"
