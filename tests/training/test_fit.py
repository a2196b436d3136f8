"""Streaming fit / evaluate: the protocol loop, accumulation, checkpoints + resume, selection, logging, old forms."""

import csv

import pytest
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

import wsolkit
from wsolkit.metrics.meters import LocalizationMeter
from wsolkit.output import LossOutput, WSOLOutput
from wsolkit.training import evaluate, evaluate_maps, fit, load_checkpoint, load_method


def _data(n=16, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size, size, generator=g)
    y = torch.arange(n) % 2
    m = torch.zeros(n, size, size, dtype=torch.uint8)
    m[:, 8:24, 8:24] = 1
    x[y == 1, 0, 8:24, 8:24] += 1.0  # class 1: a bright square in the ROI
    return x, y, m


def _gap(seed=0):
    torch.manual_seed(seed)
    return wsolkit.create_method("gap", 2, backbone="smallcnn", backbone_options={"width": 4})


def test_checkpoints_resume_selection_logging(tmp_path):
    x, y, m = _data()
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    val = DataLoader(TensorDataset(x, y, m), batch_size=8)
    seen = []
    method = _gap()
    res = fit(method, loader, epochs=3, val_loader=val, checkpoint_dir=tmp_path / "a", metrics_csv=tmp_path / "m.csv",
              callbacks=[lambda rec, mod: seen.append(rec["epoch"])], method_name="gap",
              method_options={"backbone": "smallcnn", "backbone_options": {"width": 4}})
    assert [r["epoch"] for r in res["history"]] == seen == [0, 1, 2]
    rows = list(csv.DictReader(open(tmp_path / "m.csv")))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2] and {"loss", "accuracy", "pxap"} <= set(rows[0])
    ckpt = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    assert {"method", "num_classes", "options", "state_dict", "optimizer", "scaler", "epoch", "history"} <= set(ckpt)
    assert ckpt["method"] == "gap" and ckpt["num_classes"] == 2 and ckpt["epoch"] == 3
    # the method ends with the B-LOC epoch's weights, which best.pt holds
    best = res["selector"].best("b-loc")
    assert load_checkpoint(tmp_path / "a" / "best.pt")["epoch"] == best["epoch"] + 1
    rebuilt = load_method(tmp_path / "a" / "best.pt")
    assert torch.equal(rebuilt(x[:4]).logits, method.eval()(x[:4]).logits)
    # resume: 2 epochs then 1 more == 3 straight (same data order, optimizer state restored)
    straight = _gap(1)
    fit(straight, loader, epochs=3)
    resumed = _gap(1)
    fit(resumed, loader, epochs=2, checkpoint_dir=tmp_path / "b")
    fit(resumed, loader, epochs=3, resume=tmp_path / "b" / "last.pt")
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)


def test_gradient_accumulation_equals_the_large_batch():
    x, y, _ = _data()

    def make():
        torch.manual_seed(0)
        bb = nn.Conv2d(3, 4, 3, padding=1)  # no batch norm: per-batch statistics would differ
        bb.out_channels = 4
        return wsolkit.create_method("gap", 2, backbone=bb)

    a, b = make(), make()
    fit(a, DataLoader(TensorDataset(x, y), batch_size=16), torch.optim.SGD(a.parameters(), lr=0.5), epochs=2)
    fit(b, DataLoader(TensorDataset(x, y), batch_size=8), torch.optim.SGD(b.parameters(), lr=0.5), epochs=2,
        accumulate=2)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-6)


class _TwoSteps(wsolkit.WSOLMethod):
    """Yields two steps; the second checks that the first was back-propagated before it was computed."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))
        self.grads_seen = []

    def forward(self, x, labels=None):
        logits = torch.stack([x.mean((1, 2, 3)) * self.w, -x.mean((1, 2, 3)) * self.w], 1)
        return WSOLOutput(logits, x.mean(1, keepdim=True), {})

    def training_steps(self, x, labels, *, forward=None):
        yield LossOutput(self.w * 2.0, {})
        self.grads_seen.append(float(self.w.grad))
        yield LossOutput(self.w * 3.0, {})


def test_each_step_is_backpropagated_before_the_next():
    m = _TwoSteps()
    fit(m, [(torch.rand(2, 3, 4, 4), torch.tensor([0, 1]))], torch.optim.SGD(m.parameters(), lr=0.1), epochs=1)
    assert m.grads_seen == [2.0]
    assert float(m.w.detach()) == pytest.approx(1.0 - 0.1 * 5.0)


def test_evaluate_over_a_loader_equals_one_meter_over_everything():
    x, y, m = _data(12)
    method = _gap().eval()
    m[0] = 255  # an image without a mask: skipped by localization, counted by accuracy
    y_eval = y.clone()
    y_eval[1] = -1  # an unlabelled image: skipped by both
    res = evaluate(method, DataLoader(TensorDataset(x, y_eval, m), batch_size=5))
    with torch.no_grad():
        out = method(x)
    keep = torch.ones(12, dtype=torch.bool)
    keep[:2] = False
    ref = LocalizationMeter(normalize=True)
    ref.update(out.cams[keep], m[keep], y[keep])
    assert res["pxap"] == ref.compute()["pxap"] and res["n_loc"] == 10
    labelled = y_eval >= 0
    acc = 100.0 * float((out.logits[labelled].argmax(1) == y[labelled]).double().mean())
    assert res["accuracy"] == pytest.approx(acc)


def test_old_tensor_forms_still_work():
    x, y, m = _data()
    method = _gap()
    losses = fit(method, x, y, epochs=2, batch_size=8, lr=1e-2, seed=0, augment=True, progress=False, device="cpu")
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    logits, maps = wsolkit.training.predict_maps(method, x, y)
    res = evaluate_maps(logits, maps, y, m)
    assert {"accuracy", "pxap", "pxap_baseline", "n_loc"} == set(res) and res["n_loc"] == 16
