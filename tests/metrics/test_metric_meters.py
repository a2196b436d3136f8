"""Stateful meters: streaming, state_dict, merge, reset, and 2-process gloo synchronisation."""

from __future__ import annotations

import math
import os
import socket
import tempfile

import pytest
import torch

from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError
from wsolkit.metrics import localization_histogram, localization_metrics
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
    got, want = meter.compute(), localization_metrics(fg, bg)
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
    assert r["n"] == 6 and int(r["confusion"].sum()) == 6
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
        x.merge(y)
        sd = x.state_dict()
        fresh = type(x)(**sd["config"]) if not isinstance(x, ClassificationMeter) else ClassificationMeter(2)
        fresh.load_state_dict(sd)
        for k in z._state:
            assert torch.equal(fresh._state[k], z._state[k]), k
    with pytest.raises(WSOLValueError, match="num_thresholds"):
        LocalizationMeter(100).merge(LocalizationMeter(200))
    with pytest.raises(WSOLTypeError):
        LocalizationMeter(100).merge(ClassificationMeter(2))
    with pytest.raises(WSOLValueError, match="configuration"):
        LocalizationMeter(100).load_state_dict(LocalizationMeter(10).state_dict())
    with pytest.raises(WSOLValueError, match="num_thresholds"):
        LocalizationMeter(0)
    assert "num_thresholds=100" in repr(LocalizationMeter(100))
    # sync without a process group: an identical copy
    loc = a[0]
    assert torch.equal(loc.sync().fg, loc.fg) and loc.sync() is not loc


# ----------------------------------------------------------------------------- distributed (gloo, 2 processes)


def _ddp_worker(rank, world, port, out_dir):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        meters = _new()
        _fill(meters, [s for s in range(4) if s % world == rank])  # uneven shards: rank 0 gets 2 batches
        synced = [m.sync() for m in meters]
        torch.save([m.state_dict() for m in synced], os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sync_in_a_one_process_gloo_group():
    """Fast in-process check of the all_reduce path (world size 1: the synced state equals the local one)."""
    import torch.distributed as dist

    if not dist.is_available() or dist.is_initialized():
        pytest.skip("torch.distributed unavailable or already initialised")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    try:
        meters = _new()
        _fill(meters, [0])
        for m in meters:
            synced = m.sync()
            assert all(torch.equal(synced._state[k], v) for k, v in m._state.items())
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two spawned interpreters: ~10-25 s on 2 busy cores
def test_two_process_gloo_sync_equals_single_process():
    import torch.distributed as dist
    import torch.multiprocessing as mp

    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    with tempfile.TemporaryDirectory() as d:
        mp.spawn(_ddp_worker, args=(2, _free_port(), d), nprocs=2, join=True)
        states = [torch.load(os.path.join(d, f"rank{r}.pt"), weights_only=False) for r in range(2)]
    single = _new()
    _fill(single, range(4))
    for r in range(2):
        for m, sd in zip(single, states[r]):
            for k, v in m._state.items():
                assert torch.equal(sd[k], v), (r, type(m).__name__, k)
