"""MaxMin under DistributedDataParallel (2 gloo processes on CPU)."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

from wsolkit.backbones import create_backbone
from wsolkit.maxmin import maxmin_method
from wsolkit.training import training_steps


def _model(passes: int):
    torch.manual_seed(0)
    model = maxmin_method(2, backbone=create_backbone("smallcnn", output_stride=8, width=4), head="gap", passes=passes,
                          share_backbone=False)
    with torch.no_grad():  # the localizer starts right on class 0 so that erasing steps run
        model.localizer.head.bias.copy_(torch.tensor([4.0, -4.0]))
    for m in model.modules():  # per-rank batch statistics would be fine too; eval BN keeps the reference simple
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
    return model


def _data(rank: int):
    g = torch.Generator().manual_seed(100 + rank)
    return torch.randn(4, 3, 32, 32, generator=g), torch.zeros(4, dtype=torch.long)


def _worker(rank: int, world: int, port: int, passes: int, out_dir: str):
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model = _model(passes)
        ddp = nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
        x, y = _data(rank)
        steps = 0
        for step in training_steps(ddp, x, y):  # the user's loop, unchanged under DDP
            step.total.backward()
            steps += 1
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        torch.save({"grads": grads, "steps": steps},
                   os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("passes", [3])
def test_ddp_gradients_identical_and_equal_to_mean_of_local(tmp_path, passes):
    world = 2
    mp.spawn(_worker, args=(world, _free_port(), passes, str(tmp_path)), nprocs=world, join=True)
    res = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]
    steps = [r["steps"] for r in res]
    g0, g1 = res[0]["grads"], res[1]["grads"]
    assert g0.keys() == g1.keys() and len(g0) > 0
    # single-process reference: mean over ranks of the gradients of each rank's step
    local = []
    # one thread as in the workers: the same kernels, so the trust tests (loss_t <= loss_0 on a confident localizer,
    # where erasing moves the loss by little more than rounding) take the same branches
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    counts = []
    try:
        for r in range(world):
            m = _model(passes)
            counts.append(sum(step.total.backward() is None for step in m.training_steps(*_data(r))))
            local.append({n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None})
    finally:
        torch.set_num_threads(n_threads)
    assert counts == steps  # the inner passes need no communication: steps may differ
    assert set(local[0]) == set(g0)
    for n in g0:
        torch.testing.assert_close(g0[n], g1[n], rtol=0, atol=0)  # identical on all ranks
        torch.testing.assert_close(g0[n], (local[0][n] + local[1][n]) / 2, rtol=1e-4, atol=1e-6)
    # the localizer head's gradient comes only from the inner (no_sync) passes and is still averaged
    name = "localizer.head.classifier.weight"
    assert not torch.allclose(local[0][name], local[1][name])
    assert max(steps) > 2  # erasing steps ran under no_sync (localizer steps + the final one)
