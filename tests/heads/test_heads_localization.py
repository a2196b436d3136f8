"""Proven localization: every head, trained with image labels only, localizes above the all-ones baseline.

smallcnn + head trained from scratch on the synthetic benchmark (glas and camelyon); the test maps of the true
class must reach PxAP >= 1.2x the all-ones baseline and the classifier >= 85% accuracy.
"""

from __future__ import annotations

import pytest
import torch

from wsolkit.backbones import create_backbone
from wsolkit.data import SyntheticHistology
from wsolkit.heads import create_head
from wsolkit.models import WSOLModel
from wsolkit.training import evaluate, fit, predict_maps

HEADS = ["gap", "max", "lse", "wildcat", "prm", "deepmil"]
# Hyper-parameters from the survey's grids (Table 9). LSE uses q = 1: measured in this setting (glas, seed 0),
# q = 5 gives PxAP 25.0 and q = 10 gives 23.2 against an all-ones baseline of 25.0 (no localization), q = 1 gives 76.6.
HEAD_KWARGS = {"lse": {"q": 1.0}}


def train_and_evaluate(head, kind, n_train, size, epochs, width=16, seed=0, n_test=80, **kw):
    x, y, _ = SyntheticHistology(kind, "train", n=n_train, size=size, seed=seed).tensors()
    xt, yt, mt = SyntheticHistology(kind, "test", n=n_test, size=size, seed=seed).tensors()
    torch.manual_seed(seed)
    bb = create_backbone("smallcnn", output_stride=8, width=width)
    model = WSOLModel(bb, create_head(head, bb.out_channels, 2, **kw))
    fit(model, x, y, epochs=epochs, batch_size=32, lr=3e-3, seed=seed)
    logits, maps = predict_maps(model, xt, yt)
    return evaluate(logits, maps, yt, mt)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["glas", "camelyon"])
@pytest.mark.parametrize("head", HEADS)
def test_localization(head, kind):
    res = train_and_evaluate(head, kind, n_train=320, size=96, epochs=6, n_test=100, **HEAD_KWARGS.get(head, {}))
    assert res["accuracy"] >= 85.0, res
    assert res["pxap"] >= 1.2 * res["pxap_baseline"], res


def test_localization_smoke():
    """Fast end-to-end check (default suite): WILDCAT with the MaxMin pooling settings (no dropout), tiny setting."""
    res = train_and_evaluate(
        "wildcat", "glas", n_train=256, size=64, epochs=6, width=8, modalities=5, kmax=0.09, kmin=0.09, alpha=0.0
    )
    assert res["accuracy"] >= 85.0, res
    assert res["pxap"] >= 1.2 * res["pxap_baseline"], res
