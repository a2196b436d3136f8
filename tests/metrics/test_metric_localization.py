"""The metrics on the synthetic histology benchmark: consistency with wsolkit.training and B-LOC model selection."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from wsolkit.data import SyntheticHistology
from wsolkit.metrics import ClassificationMeter, LocalizationMeter, ModelSelector, bloc_subset
from wsolkit.training import evaluate_maps


def _blurred(masks: torch.Tensor, noise: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    k = torch.ones(1, 1, 9, 9) / 81
    soft = F.conv2d((masks == 1).float()[:, None], k, padding=4)[:, 0]
    return soft + noise * torch.rand(soft.shape, generator=g)


@pytest.mark.parametrize("kind", ["glas", "camelyon"])
def test_meter_agrees_with_training_evaluate_on_synthetic(kind):
    x, y, masks = SyntheticHistology(kind, "test", n=16, size=64, seed=1).tensors()
    keep = (masks == 1).flatten(1).any(1)
    raw = _blurred(masks, 0.5)[:, ::4, ::4].contiguous()  # low-resolution "CAMs"
    meter = LocalizationMeter(normalize=True)
    for i in range(0, len(x), 5):
        sl = slice(i, i + 5)
        meter.update(raw[sl][keep[sl]], masks[sl][keep[sl]])
    res = meter.compute()
    # the protocol pipeline of wsolkit.training: cams.postprocess then pxap
    from wsolkit.cams import postprocess

    maps = postprocess(raw[:, None], None, (64, 64))
    ev = evaluate_maps(torch.zeros(len(x), 2), maps, y, masks)
    assert math.isclose(res["pxap"], ev["pxap"], rel_tol=1e-9)
    # a map that follows the ROIs localises far better than the all-ones baseline; a random map does not
    assert res["pxap"] >= 2.0 * ev["pxap_baseline"], (res["pxap"], ev["pxap_baseline"])
    rnd = LocalizationMeter(normalize=True)
    rnd.update(torch.rand(int(keep.sum()), 16, 16), masks[keep])
    assert rnd.compute()["pxap"] < 1.3 * ev["pxap_baseline"]
    assert res["tp_star"] > rnd.compute()["tp_star"] - 100  # defined
    assert res["max_miou"] > rnd.compute()["max_miou"]


@pytest.mark.slow
def test_bloc_model_selection_on_synthetic_training():
    """Train smallcnn+GAP a few epochs; B-LOC (3 masks per class) and B-CL choices, test PxAP vs baseline."""
    from wsolkit.backbones import create_backbone
    from wsolkit.heads import GAP
    from wsolkit.models import WSOLModel
    from wsolkit.training import fit_tensors, predict_maps

    torch.manual_seed(0)
    x, y, _ = SyntheticHistology("glas", "train", n=320, size=96, seed=0).tensors()
    xv, yv, mv = SyntheticHistology("glas", "valid", n=40, size=96, seed=0).tensors()
    xt, yt, mt = SyntheticHistology("glas", "test", n=80, size=96, seed=0).tensors()
    sub = bloc_subset(yv, 3, seed=0)
    backbone = create_backbone("smallcnn", output_stride=8, width=16)
    model = WSOLModel(backbone, GAP(backbone.out_channels, 2))
    sel = ModelSelector(keep_states=True)
    for epoch in range(3):  # three "checkpoints", each after a 3-epoch one-cycle run
        fit_tensors(model, x, y, epochs=3, batch_size=32, lr=3e-3, seed=epoch)
        logits, maps = predict_maps(model, xv, yv)
        loc = LocalizationMeter()
        loc.update(maps[sub], mv[sub])
        cls = ClassificationMeter(2)
        cls.update(logits, yv)
        sel.update(epoch, loc.compute()["pxap"], cls.compute()["accuracy"], model=model)
    model.load_state_dict(sel.state("b-loc"))
    logits, maps = predict_maps(model, xt, yt)
    ev = evaluate_maps(logits, maps, yt, mt)
    assert ev["accuracy"] >= 90.0, ev
    assert ev["pxap"] >= 1.5 * ev["pxap_baseline"], ev
    assert sel.best("b-cl")["cls"] >= sel.best("b-loc")["cls"]
