"""Stateful meters: streaming, state_dict, merge, reset, and 2-process gloo synchronisation."""

from __future__ import annotations

import math
import os
import socket
import tempfile

import pytest
import torch

from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError
from wsolkit.metrics import classification_metrics, histogram_metrics, localization_histogram, localization_metrics
from wsolkit.metrics.boxes import box_accuracy
from wsolkit.metrics.meters import BoxAccuracyMeter, ClassificationMeter, LocalizationMeter


def _batch(seed, b=4):
    g = torch.Generator().manual_seed(seed)
    raw = torch.randn(b, 2, 6, 6, generator=g)
    masks = torch.randint(0, 2, (b, 24, 24), generator=g, dtype=torch.uint8)
    masks[:, :2] = 255
    labels = torch.randint(0, 2, (b,), generator=g)
    boxes = [torch.tensor([[3, 4, 15, 20]]) for _ in range(b)]
    logits = torch.randn(b, 2, generator=g)
    return raw, masks, labels, boxes, logits


def _fill(meters, seeds):
    loc, box, cls = meters
    for s in seeds:
        raw, masks, labels, boxes, logits = _batch(s)
        loc.update(raw, masks, labels)
        box.update(raw, boxes, labels=labels, preds=logits.argmax(1), image_size=(24, 24))
        cls.update(logits, labels)


def _new():
    return (LocalizationMeter(200, normalize=True), BoxAccuracyMeter(50, normalize=True), ClassificationMeter(2))


def test_localization_meter_streaming_equals_functional():
    raws, masks, labels = zip(*[_batch(s)[:3] for s in range(3)])
    raw, mask, label = torch.cat(raws), torch.cat(masks), torch.cat(labels)
    meter = LocalizationMeter(200, normalize=True)
    meter.update(raw[:0], mask[:0], label[:0])  # empty update
    for i in range(0, raw.shape[0], 5):
        meter.update(raw[i : i + 5], mask[i : i + 5], label[i : i + 5])
    fg, bg = localization_histogram(raw, mask, 200, labels=label, normalize=True)
    assert torch.equal(meter.fg, fg) and torch.equal(meter.bg, bg)
    got, want = meter.compute(), histogram_metrics(fg, bg)
    assert got["pxap"] == want["pxap"] and got["miou"] == want["miou"] and got["n_images"] == raw.shape[0]
    assert meter.compute(threshold=0.3)["threshold"] == 0.3
    meter.reset()
    assert int(meter.fg.sum()) == 0


def test_box_and_classification_meters():
    raw, masks, labels, boxes, logits = _batch(0, b=6)
    box = BoxAccuracyMeter(50, normalize=True)
    box.update(raw[:2], boxes[:2], labels=labels[:2], image_size=(24, 24))
    box.update(raw[2:], boxes[2:], labels=labels[2:], image_size=(24, 24))
    sel = raw[torch.arange(6), labels]
    want = box_accuracy(sel, boxes, 50, normalize=True, image_size=(24, 24))
    assert box.compute()["maxboxacc_v2"] == want["maxboxacc_v2"]
    cls = ClassificationMeter(2)
    cls.update(logits[:4], labels[:4])
    cls.update(logits[4:].argmax(1), labels[4:])
    r = cls.compute()
    assert r["accuracy"] == pytest.approx(100.0 * float((logits.argmax(1) == labels).float().mean()))
    assert r["n_images"] == 6 and int(r["confusion"].sum()) == 6
    with pytest.raises(ShapeError):
        cls.update(torch.randn(2, 3), labels[:2])
    with pytest.raises(WSOLTypeError, match="labels"):
        box.update(raw[:1], boxes[:1], preds=torch.tensor([0]))
    assert math.isnan(ClassificationMeter(3).compute()["accuracy"])


def test_state_dict_merge_and_config_checks():
    a, b, full = _new(), _new(), _new()
    _fill(a, [0, 1])
    _fill(b, [2])
    _fill(full, [0, 1, 2])
    for x, y, z in zip(a, b, full):
        assert x.merge(y) is x
        sd = x.state_dict()
        cfg = sd["_extra_state"]["config"]
        fresh = type(x)(**cfg)
        fresh.load_state_dict(sd)
        for k in z._state:
            assert torch.equal(fresh._state[k], z._state[k]), k
            assert fresh._state[k].dtype == torch.int64
        # the previous release's {"config": ..., <states>} form still loads
        old = {"config": cfg, **{k: v.clone() for k, v in z._state.items()}}
        again = type(x)(**cfg)
        again.load_state_dict(old)
        assert all(torch.equal(again._state[k], v) for k, v in z._state.items())
    with pytest.raises(WSOLValueError, match="num_thresholds"):
        LocalizationMeter(100).merge(LocalizationMeter(200))
    with pytest.raises(WSOLTypeError):
        LocalizationMeter(100).merge(ClassificationMeter(2))
    with pytest.raises(WSOLValueError, match="configuration"):
        LocalizationMeter(100).load_state_dict(LocalizationMeter(10).state_dict())
    with pytest.raises(WSOLValueError, match="num_thresholds"):
        LocalizationMeter(0)
    assert "num_thresholds=100" in repr(LocalizationMeter(100))
    # deprecated sync() without a process group: an identical copy
    loc = a[0]
    with pytest.warns(DeprecationWarning):
        copy_ = loc.sync()
    assert torch.equal(copy_.fg, loc.fg) and copy_ is not loc


def test_meters_are_torchmetrics_and_work_in_a_collection():
    from torchmetrics import Metric, MetricCollection

    raw, masks, labels, _, logits = _batch(0)
    col = MetricCollection({"loc": LocalizationMeter(100), "cls": ClassificationMeter(2)}, compute_groups=False)
    assert all(isinstance(m, Metric) for m in col.values())
    col["loc"].update(raw, masks, labels)
    col["cls"].update(logits, labels)
    r = col.compute()
    fg, bg = localization_histogram(raw, masks, 100, labels=labels, normalize=True)
    # snake_case keys flatten into loggable names (Lightning's self.log_dict(col.compute()) style)
    assert r["loc_pxap"] == histogram_metrics(fg, bg)["pxap"] and "loc_tp_star" in r and "loc_f1_pos" in r
    assert r["cls_accuracy"] == classification_metrics(logits, labels, 2)["accuracy"]
    # defaults: the meter takes any method's raw cams (normalize=True), the twin too
    assert LocalizationMeter().normalize and BoxAccuracyMeter().normalize
    m = LocalizationMeter(100)
    m.update(raw, masks, labels)
    assert m.compute()["pxap"] == localization_metrics(raw, masks, labels, num_thresholds=100)["pxap"]
    with pytest.warns(DeprecationWarning):
        assert m.compute()["tp*"] == m.compute()["tp_star"]


# ----------------------------------------------------------------------------- distributed (gloo, 2 processes)


def _ddp_worker(rank, world, port, out_dir):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        meters = _new()
        _fill(meters, [s for s in range(4) if s % world == rank])  # uneven shards: rank 0 gets 2 batches
        results = [m.compute() for m in meters]  # global with no extra call
        local = [{k: v.clone() for k, v in m._state.items()} for m in meters]  # left local after compute()
        torch.save({"results": results, "local": local}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_compute_in_a_one_process_gloo_group():
    """Fast in-process check of the distributed path (world size 1: the global value equals the local one)."""
    import torch.distributed as dist

    if not dist.is_available() or dist.is_initialized():
        pytest.skip("torch.distributed unavailable or already initialised")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    try:
        meters = _new()
        _fill(meters, [0])
        ref = _new()
        _fill(ref, [0])
        for m, r in zip(meters, ref):
            assert m.compute()["n_images"] == r.compute()["n_images"]
    finally:
        dist.destroy_process_group()


def test_two_process_gloo_compute_is_global():
    import torch.distributed as dist
    import torch.multiprocessing as mp

    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    with tempfile.TemporaryDirectory() as d:
        mp.spawn(_ddp_worker, args=(2, _free_port(), d), nprocs=2, join=True)
        out = [torch.load(os.path.join(d, f"rank{r}.pt"), weights_only=False) for r in range(2)]
    single = _new()
    _fill(single, range(4))
    want = [m.compute() for m in single]
    for r in range(2):
        got = out[r]["results"]
        assert got[0]["pxap"] == want[0]["pxap"] and got[0]["n_images"] == 16
        assert got[1]["maxboxacc_v2"] == want[1]["maxboxacc_v2"]
        assert torch.equal(got[2]["confusion"], want[2]["confusion"])
    # local states stay local (summing them gives the single-process state)
    for k, v in single[0]._state.items():
        assert torch.equal(out[0]["local"][0][k] + out[1]["local"][0][k], v)
