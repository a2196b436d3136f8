"""Distributed data-parallel training of any method (GAP by default, or MaxMin) with synchronised localization metrics.

Two processes (gloo backend, CPU) each train on half of the synthetic benchmark with DDP; each evaluates its half of
the test set into a ``LocalizationMeter`` and ``ClassificationMeter``; ``sync()`` all-reduces the integer histograms,
so every rank reports exactly the metrics of the whole test set. On GPUs use ``backend="nccl"`` and one device per
rank; nothing else changes.

The training loop is the one of every method, with ``wsolkit.training.training_steps(ddp_model, x, y)`` so that the
forward passes run through the wrapper (MaxMin's erasing steps run under ``no_sync()``).

Run: ``python examples/ddp_training.py [--quick] [--world-size 2] [--method maxmin]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel as DDP

import wsolkit
from wsolkit.data import SyntheticHistology
from wsolkit.metrics import ClassificationMeter, LocalizationMeter
from wsolkit.training import training_steps


def run(rank: int, world: int, init_file: str, args: argparse.Namespace) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    torch.manual_seed(0)  # same initial weights on every rank (DDP also broadcasts them)
    n_train, n_test, epochs = (96, 32, 2) if args.quick else (400, 200, 8)
    train = SyntheticHistology("glas", "train", n=n_train, size=args.size, seed=0)
    test = SyntheticHistology("glas", "test", n=n_test, size=args.size, seed=0)
    # each rank renders and trains on its own shard
    x, y, _ = train.tensors()
    x, y = x[rank::world], y[rank::world]
    backbone = wsolkit.create_backbone("smallcnn", width=16, depth=2)
    options = {"passes": 3, "head": "gap"} if args.method == "maxmin" else {}
    # MaxMin: the localizer's head is unused by the final (synchronising) pass -> find_unused_parameters
    model = DDP(wsolkit.create_method(args.method, 2, backbone=backbone, **options),
                find_unused_parameters=args.method == "maxmin")
    prep = wsolkit.data.preprocessing(model.module)  # the statistics the model declares
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(rank)
    for epoch in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 16):
            idx = perm[i : i + 16]
            opt.zero_grad()
            loss = 0.0
            for step in training_steps(model, prep(x[idx]), y[idx]):
                step.total.backward()  # gradients are all-reduced at the last step
                loss += float(step.total.detach())
            opt.step()
        if rank == 0:
            print(f"epoch {epoch + 1}/{epochs} loss {loss:.3f}", flush=True)
    # distributed evaluation: every rank measures its shard, then the integer states are all-reduced
    loc, cls = LocalizationMeter(normalize=True), ClassificationMeter(num_classes=2)
    xt, yt, mt = test.tensors()
    xt, yt, mt = xt[rank::world], yt[rank::world], mt[rank::world]
    model.eval()
    with torch.no_grad():
        out = model(prep(xt))
    cls.update(out.logits.argmax(1), yt)
    loc.update(out.cams, mt, labels=yt)  # fused select -> upsample -> min-max -> histogram
    r, c = loc.compute(), cls.compute()  # global under torch.distributed: every rank gets the same figures
    if rank == 0:
        print(f"world {world}: accuracy {c['accuracy']:.1f}%  PxAP {r['pxap']:.2f}  TP* {r['tp_star']:.1f}  "
              f"FP* {r['fp_star']:.1f}  on {r['n_images']} test images")
    dist.destroy_process_group()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--world-size", type=int, default=2)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--method", default="gap", help="a trainable method name, e.g. gap or maxmin")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "rendezvous")
        mp.spawn(run, args=(args.world_size, init_file, args), nprocs=args.world_size, join=True)


if __name__ == "__main__":
    main()
