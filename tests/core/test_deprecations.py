"""Deprecations go through one mechanism (``wsolkit._deprecation``): out of ``__all__``, still working, one warning."""

from __future__ import annotations

import importlib

import pytest
import torch

import wsolkit
from wsolkit._deprecation import DEPRECATIONS

# (module, name, call): deprecated names kept for one release, and how to use them
DEPRECATED = [
    ("wsolkit.training", "standardize", lambda f: f(torch.rand(1, 3, 4, 4))),
    ("wsolkit.training", "IMAGENET_MEAN", None),
    ("wsolkit.training", "IMAGENET_STD", None),
    ("wsolkit.metrics", "binned_counts", lambda f: f(torch.rand(1, 4, 4), torch.ones(1, 4, 4, dtype=torch.uint8))),
    ("wsolkit.metrics", "pxap_from_counts", None),
    ("wsolkit.maxmin", "build_maxmin", None),
    ("wsolkit.maxmin", "maxmin_train_step", None),
    ("wsolkit.erasing", "create_tscam", lambda f: f("test_vit", 2, img_size=32)),
    ("wsolkit.decoders", "create_fcam", None),
    ("wsolkit.explain", "list_explainers", lambda f: f()),
    ("wsolkit.explain", "create_explainer", None),
    ("wsolkit", "list_explainers", lambda f: f()),
    ("wsolkit", "create_explainer", None),
]


@pytest.mark.parametrize(("module", "name", "call"), DEPRECATED, ids=[f"{m}.{n}" for m, n, _ in DEPRECATED])
def test_deprecated_names_are_out_of_all_and_warn_in_one_format(module, name, call):
    mod = importlib.import_module(module)
    assert name not in mod.__all__
    if call is None:  # an attribute of the module (or a function whose warning is tested by its own tests)
        with pytest.warns(DeprecationWarning, match=r"deprecated since wsolkit 0\.3 and will be removed in 0\.4: use") \
                if name.isupper() or module == "wsolkit.training" else _nothing():
            assert getattr(mod, name) is not None
        return
    with pytest.warns(DeprecationWarning, match=r"deprecated since wsolkit 0\.3 and will be removed in 0\.4: use"):
        call(getattr(mod, name))


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_the_registry_lists_every_warned_name():
    wsolkit.training.IMAGENET_MEAN  # noqa: B018 - resolving the name registers nothing new: listed at import
    assert "wsolkit.training.standardize" in DEPRECATIONS and "wsolkit.training.IMAGENET_MEAN" in DEPRECATIONS
    with pytest.warns(DeprecationWarning):
        wsolkit.explain.list_explainers()
    assert "wsolkit.list_explainers" in DEPRECATIONS
