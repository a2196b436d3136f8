"""Faithfulness metrics against torchcam 0.5 / pytorch-grad-cam on the same model and maps, and float64 formulas."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from torch import nn

import wsolkit
from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError
from wsolkit.metrics import (
    ConfidenceChangeMeter,
    DeletionInsertionMeter,
    ROADMeter,
    confidence_change,
    deletion_insertion,
    noisy_linear_imputation,
    road,
)
from wsolkit.output import WSOLOutput


def _model(seed=0, k=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, k)).eval()


def _torchcam_maps(model, extractor, x):
    scores = torch.softmax(model(x), -1)
    cam = extractor.fuse_cams(extractor(scores.argmax(1).tolist(), scores))
    up = torch.nn.functional.interpolate(cam[:, None], x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return up.detach(), scores.argmax(1)


def test_confidence_change_equals_torchcam_classification_metric():
    pytest.importorskip("torchcam")
    from torchcam.methods import CAM
    from torchcam.metrics import ClassificationMetric

    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2, padding=1),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    torch.manual_seed(1)
    for p in model.parameters():
        nn.init.normal_(p, std=0.8)
    x = torch.rand(6, 3, 16, 16)
    ex = CAM(model, target_layer="3", fc_layer="6")
    ref = ClassificationMetric(ex, functools.partial(torch.softmax, dim=-1))
    ref.update(x)
    want = ref.summary()
    maps, _ = _torchcam_maps(model, ex, x)
    ex.remove_hooks()
    got = confidence_change(model, x, maps)
    assert got["avg_drop"] == pytest.approx(100 * want["avg_drop"], rel=1e-5, abs=1e-6)
    assert got["increase"] == pytest.approx(100 * want["conf_increase"], abs=1e-9)
    # float64 formula: relu(Y - O) / (Y + 1e-7) and Y < O
    with torch.no_grad():
        p = torch.softmax(model(x).double(), -1)
        t = p.argmax(1)
        y = p[torch.arange(6), t]
        o = torch.softmax(model(x * maps[:, None]).double(), -1)[torch.arange(6), t]
    per = confidence_change(model, x, maps, reduction="none")
    torch.testing.assert_close(per["avg_drop"], 100 * torch.relu(y - o) / (y + 1e-7), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(per["increase"], 100 * (y < o).double())


def test_deletion_insertion_equals_torchcam_metric():
    pytest.importorskip("torchcam")
    from torchcam.methods import CAM
    from torchcam.metrics import DeletionInsertionMetric

    model = _model(2)
    for p in model.parameters():
        nn.init.normal_(p, std=1.0)
    x = torch.rand(3, 3, 7, 9)  # 63 pixels, 5 steps: step 13, points 0, 13, 26, 39, 52, 63
    for baseline in (None, torch.full((1, 3, 1, 1), 0.5)):
        ex = CAM(model, target_layer="1", fc_layer="4")
        ref = DeletionInsertionMetric(ex, functools.partial(torch.softmax, dim=-1), steps=5, baseline=baseline,
                                      batch_size=4)
        ref.update(x)
        want = ref.summary()
        maps, _ = _torchcam_maps(model, ex, x)
        ex.remove_hooks()
        maps = (maps - maps.amin((1, 2), keepdim=True)) / (maps.amax((1, 2), keepdim=True)
                                                           - maps.amin((1, 2), keepdim=True))
        got = deletion_insertion(model, x, maps, steps=5, baseline=baseline, batch_size=4)
        assert got["deletion"] == pytest.approx(100 * want["deletion_auc"], rel=1e-5)
        assert got["insertion"] == pytest.approx(100 * want["insertion_auc"], rel=1e-5)
    per = deletion_insertion(model, x, maps, steps=5, reduction="none")
    assert per["fractions"].tolist() == pytest.approx([0, 13 / 63, 26 / 63, 39 / 63, 52 / 63, 1])
    # both curves share the all-baseline input and the clean input
    torch.testing.assert_close(per["deletion_curve"][:, -1], per["insertion_curve"][:, 0])
    torch.testing.assert_close(per["deletion_curve"][:, 0], per["insertion_curve"][:, -1])


def test_deletion_hand_values_on_a_pixel_counting_model():
    # logits = (sum of channel 0 over the top-left pixel, 0): softmax score of class 0 is sigmoid(v)
    class Pick(nn.Module):
        def forward(self, x):
            v = x[:, 0, 0, 0]
            return torch.stack([v, torch.zeros_like(v)], 1)

    x = torch.full((1, 1, 2, 2), 3.0)
    maps = torch.tensor([[[1.0, 0.5], [0.2, 0.1]]])  # top-left pixel ranked first
    r = deletion_insertion(Pick(), x, maps, targets=0, steps=4, score="logit", reduction="none")
    # deletion curve: 3 (k=0), then 0 for k = 1..4; trapezoid over fractions 0, .25, .5, .75, 1
    assert r["deletion_curve"][0].tolist() == [300.0, 0.0, 0.0, 0.0, 0.0]
    assert float(r["deletion"][0]) == pytest.approx(100 * 3 * 0.25 / 2)
    assert float(r["insertion"][0]) == pytest.approx(100 * (3 * 0.25 / 2 + 3 * 0.75))


def test_road_equals_pytorch_grad_cam():
    pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.metrics.road import ROADLeastRelevantFirst, ROADMostRelevantFirst
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    model = _model(3)
    for p in model.parameters():
        nn.init.normal_(p, std=1.0)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 10, 12, generator=g)
    maps = torch.rand(2, 10, 12, generator=g)
    pcts = (20, 50)
    with torch.no_grad():
        tg = model(x).argmax(1)
    targets = [ClassifierOutputSoftmaxTarget(int(t)) for t in tg]
    torch.manual_seed(7)  # grad-cam draws its noise from the global RNG, in this order
    want_m = [ROADMostRelevantFirst(percentile=100 - p)(x, maps.numpy(), targets, model) for p in pcts]
    want_l = [ROADLeastRelevantFirst(percentile=100 - p)(x, maps.numpy(), targets, model) for p in pcts]
    got = road(model, x, maps, percentages=pcts, seed=7, reduction="none")
    np.testing.assert_allclose(got["morf_change"].numpy(), 100 * np.stack(want_m, 1), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got["lerf_change"].numpy(), 100 * np.stack(want_l, 1), rtol=1e-4, atol=1e-4)
    mean = road(model, x, maps, percentages=pcts, seed=7)
    assert mean["road"] == pytest.approx((mean["lerf"] - mean["morf"]) / 2)


def test_noisy_linear_imputation_solves_the_neighbour_average():
    g = torch.Generator().manual_seed(0)
    img = torch.rand(2, 5, 6, generator=g)
    keep = torch.rand(5, 6, generator=g) > 0.4
    out = noisy_linear_imputation(img, keep, noise=0.0).double()
    w = {(1, 1): 1 / 12, (0, 1): 1 / 6, (-1, 1): 1 / 12, (1, -1): 1 / 12, (0, -1): 1 / 6, (-1, -1): 1 / 12,
         (1, 0): 1 / 6, (-1, 0): 1 / 6}
    assert torch.equal(out[:, keep], img[:, keep].double())
    for i, j in zip(*torch.nonzero(~keep, as_tuple=True)):  # each imputed value = weighted mean of its neighbours
        tot, acc = 0.0, torch.zeros(2, dtype=torch.float64)
        for (dy, dx), wt in w.items():
            r, c = int(i) + dy, int(j) + dx
            if 0 <= r < 5 and 0 <= c < 6:
                tot += wt
                acc += wt * out[:, r, c]
        torch.testing.assert_close(out[:, i, j], acc / tot, rtol=1e-5, atol=1e-6)


def test_wsol_output_models_meters_and_bad_inputs():
    model = wsolkit.create_method("gap", 2, backbone="smallcnn").eval()
    x = torch.rand(3, 3, 32, 32)
    out = model(x)
    assert isinstance(out, WSOLOutput)
    maps = wsolkit.cams.postprocess(out.cams.detach(), out.logits.argmax(1), (32, 32))

    class Logits(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m(x).logits

    a = confidence_change(model, x, maps)
    b = confidence_change(Logits(model), x, maps)
    assert a == b
    model.train()
    deletion_insertion(model, x, maps, steps=4)
    assert model.training  # mode restored
    meter = DeletionInsertionMeter(model, steps=4)
    meter.update(x[:2], maps[:2])
    meter.update(x[2:], maps[2:])
    full = deletion_insertion(model, x, maps, steps=4)
    assert meter.compute()["deletion"] == pytest.approx(full["deletion"])
    cc = ConfidenceChangeMeter(model)
    cc.update(x, maps)
    assert cc.compute()["avg_drop"] == pytest.approx(a["avg_drop"])
    rm = ROADMeter(model, percentages=(50,))
    rm.update(x, maps)
    assert rm.compute()["n_images"] == 3
    with pytest.raises(WSOLValueError, match=r"\[0, 1\]"):
        confidence_change(model, x, maps * 3)
    with pytest.raises(ShapeError, match="maps"):
        deletion_insertion(model, x, maps[:, :5])
    with pytest.raises(WSOLTypeError, match="targets"):
        confidence_change(model, x, maps, targets=torch.tensor([0.5, 1.0, 0.0]))
    with pytest.raises(WSOLValueError, match="baseline"):
        deletion_insertion(model, x, maps, baseline="mean")
    r = deletion_insertion(model, x, maps, steps=4, baseline="blur")
    assert 0 <= r["insertion"] <= 100
