"""Localization on the synthetic benchmark: explainers of a classifier trained in the test beat the all-ones baseline.

Protocol of the survey (map of the true class, images with ROI pixels, PxAP over 1000 thresholds): a small CNN + GAP
is trained for a few epochs on 64 px synthetic GlaS images, each method wraps it (``create_method(name,
classifier=...)``) and its raw ``out.cams`` go through ``wsolkit.cams.postprocess``. Measured numbers are printed
(``pytest -s``) and reported in the docs.
"""

from __future__ import annotations

import pytest
import torch

import wsolkit
from wsolkit.backbones import create_backbone
from wsolkit.cams import postprocess
from wsolkit.data import SyntheticHistology
from wsolkit.training import evaluate_maps, fit_tensors, standardize


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    images, labels, _ = SyntheticHistology("glas", "train", n=192, size=64, seed=0).tensors()
    model = wsolkit.create_method("gap", 2, backbone=create_backbone("smallcnn", output_stride=8, width=4))
    fit_tensors(model, images, labels, epochs=6, batch_size=32, lr=3e-3, seed=0)
    test = SyntheticHistology("glas", "test", n=16, size=64, seed=1).tensors()
    return model.eval(), test


def _measure(model, test, name, **kw):
    images, labels, masks = test
    x = standardize(images)
    method = wsolkit.create_method(name, classifier=model, **kw)
    logits, maps = [], []
    with torch.no_grad():
        for i in range(0, len(x), 8):
            out = method(x[i : i + 8], labels[i : i + 8])
            logits.append(out.logits)
            maps.append(postprocess(out.cams, None, x.shape[-2:]))
    res = evaluate_maps(torch.cat(logits), torch.cat(maps), labels, masks)
    print(f"{name}: accuracy {res['accuracy']:.1f} PxAP {res['pxap']:.1f} baseline {res['pxap_baseline']:.1f} "
          f"ratio {res['pxap'] / res['pxap_baseline']:.2f} (n={res['n_loc']})")
    return res


@pytest.fixture(scope="module")
def own_cam(trained):
    return _measure(*trained, "cam")


def test_own_cam_localizes(own_cam):
    assert own_cam["accuracy"] >= 90.0
    assert own_cam["pxap"] >= 1.5 * own_cam["pxap_baseline"]


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
