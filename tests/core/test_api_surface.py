"""The public API: every name in ``__all__`` exists, and removals from the top level are deliberate."""

import importlib

import pytest

import wsolkit

SUBPACKAGES = [
    "wsolkit.backbones", "wsolkit.cams", "wsolkit.data", "wsolkit.decoders", "wsolkit.erasing", "wsolkit.explain",
    "wsolkit.heads", "wsolkit.losses", "wsolkit.maxmin", "wsolkit.metrics", "wsolkit.output", "wsolkit.models",
    "wsolkit.viz", "wsolkit.method", "wsolkit.registry", "wsolkit.training", "wsolkit.wsi", "wsolkit.cli",
    "wsolkit.inference", "wsolkit.loading",
]

TOP_LEVEL = {
    "__version__", "WSOLOutput", "LossOutput", "WSOLMethod", "NotTrainableError", "LifecycleWarning", "create_method",
    "list_methods",
    "method_info", "register_method", "WSOLModel", "create_backbone", "list_backbones", "register_backbone",
    "create_head", "list_heads", "register_head", "backbones", "cams", "data",
    "heads", "metrics", "erasing", "losses", "maxmin", "decoders", "explain", "wsi", "training",
    "localize", "Localization",
}


def test_top_level_names():
    assert set(wsolkit.__all__) == TOP_LEVEL
    assert wsolkit.__version__ == "0.3.0"


@pytest.mark.parametrize("module", SUBPACKAGES)
def test_all_names_resolve_and_are_documented(module):
    mod = importlib.import_module(module)
    assert mod.__all__, module
    for name in mod.__all__:
        obj = getattr(mod, name)
        if callable(obj) or isinstance(obj, type):
            assert (obj.__doc__ or "").strip(), f"{module}.{name} has no docstring"


def test_registries_cover_the_taxonomy():
    assert {"gap", "max", "lse", "wildcat", "prm", "deepmil", "acol", "spg"} <= set(wsolkit.list_heads())
    families = {n: wsolkit.method_info(n)["family"] for n in wsolkit.list_methods()}
    assert {n for n, f in families.items() if f == "explainer"} == {
        "gradcam", "gradcam++", "smoothgradcam++", "xgradcam", "layercam", "scorecam", "sscam", "iscam",
        "ablationcam"}
    assert {n for n, f in families.items() if f == "pooling"} == {"gap", "max", "lse", "wildcat", "prm", "deepmil"}
