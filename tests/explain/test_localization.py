"""Localization on the synthetic benchmark: explainers of a classifier trained in the test beat the all-ones baseline.

Protocol of the survey (map of the true class, images with ROI pixels, PxAP over 1000 thresholds). The classifier
is a small CNN + GAP (CAM) trained for a few epochs on 64 px synthetic GlaS images. Measured numbers are printed
(``pytest -s``) and reported in the docs.
"""

from __future__ import annotations

import pytest
import torch

from wsolkit.backbones import create_backbone
from wsolkit.data import SyntheticHistology
from wsolkit.explain import create_explainer
from wsolkit.heads import GAP
from wsolkit.models import WSOLModel
from wsolkit.training import evaluate, fit, standardize


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    images, labels, _ = SyntheticHistology("glas", "train", n=192, size=64, seed=0).tensors()
    bb = create_backbone("smallcnn", output_stride=8, width=4)
    model = WSOLModel(bb, GAP(bb.out_channels, 2))
    fit(model, images, labels, epochs=6, batch_size=32, lr=3e-3, seed=0)
    test = SyntheticHistology("glas", "test", n=16, size=64, seed=1).tensors()
    return model.eval(), test


def _measure(model, test, name, **kw):
    images, labels, masks = test
    x = standardize(images)
    with torch.no_grad():
        logits = model(x).logits
    with create_explainer(name, model, **kw) as cam:
        maps = torch.cat([cam(x[i : i + 8], targets=labels[i : i + 8]) for i in range(0, len(x), 8)])
    res = evaluate(logits, maps, labels, masks)
    print(f"{name}: accuracy {res['accuracy']:.1f} PxAP {res['pxap']:.1f} baseline {res['pxap_baseline']:.1f} "
          f"ratio {res['pxap'] / res['pxap_baseline']:.2f} (n={res['n_loc']})")
    return res


def test_gradcam_localizes(trained):
    res = _measure(*trained, "gradcam")
    assert res["accuracy"] >= 90.0
    assert res["pxap"] >= 2.0 * res["pxap_baseline"]


@pytest.mark.parametrize("name", ["gradcam++", "smoothgradcam++", "xgradcam", "layercam", "scorecam", "ablationcam"])
def test_other_explainers_beat_baseline(trained, name):
    kw = {"batch_size": 256} if name in ("scorecam", "ablationcam") else {}
    res = _measure(*trained, name, **kw)
    assert res["pxap"] >= 1.2 * res["pxap_baseline"]


@pytest.mark.slow  # the papers' N: ~25 s (SS-CAM) and ~8 s (IS-CAM) on two free cores
@pytest.mark.parametrize("name", ["sscam", "iscam"])
def test_smoothed_score_explainers_beat_baseline(trained, name):
    res = _measure(*trained, name, batch_size=512)  # the papers' N (35 and 10): hundreds of forwards per image
    assert res["pxap"] >= 1.2 * res["pxap_baseline"]
