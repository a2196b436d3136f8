"""Training-step time of each pooling method relative to GAP (target: <= 1.10x).

A training step is one pass of the protocol's loop — ``for step in method.training_steps(x, y):
step.total.backward()`` then an SGD step — on ``wsolkit.create_method(name, classes, backbone=...)``.
Default setting of the issue: resnet18 (random init), batch 16, 224 px, CPU. Steps of different heads are
interleaved round-robin and the median per head is reported, which makes the ratios less sensitive to other
processes on a shared machine.

Usage::

    python wsolkit/benchmarks/bench_heads.py                       # resnet18, batch 16, 224 px, 5 timed steps per head
    python wsolkit/benchmarks/bench_heads.py --iters 3 --threads 2
    python wsolkit/benchmarks/bench_heads.py --backbone smallcnn --size 96   # quick check
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

import wsolkit

DEFAULT_HEADS = ["gap", "max", "lse", "wildcat", "prm", "deepmil"]


def _step(method: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    t = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    for step in method.training_steps(x, y):
        step.total.backward()
    opt.step()
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--classes", type=int, default=2)
    p.add_argument("--iters", type=int, default=5, help="timed steps per head (after one warm-up step)")
    p.add_argument("--head-iters", type=int, default=20, help="timed head-only forward/backward passes")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--heads", default=",".join(DEFAULT_HEADS), help=f"comma separated, from {wsolkit.list_methods()}")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    names = [h.strip() for h in args.heads.split(",") if h.strip()]
    if "gap" not in names:
        names.insert(0, "gap")
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = torch.randint(0, args.classes, (args.batch,))
    models, opts = {}, {}
    for name in names:
        kw = {"output_stride": 8, "width": 16} if args.backbone == "smallcnn" else {}
        bb = wsolkit.create_backbone(args.backbone, **kw)
        models[name] = wsolkit.create_method(name, args.classes, backbone=bb).train()
        opts[name] = torch.optim.SGD(models[name].parameters(), lr=1e-3, momentum=0.9)
        _step(models[name], opts[name], x, y)  # warm-up
    times: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(args.iters):
        for name in names:
            times[name].append(_step(models[name], opts[name], x, y))
    med = {n: statistics.median(t) for n, t in times.items()}
    # head alone (forward + backward on the backbone's features): isolates the pooling cost from the backbone noise
    with torch.no_grad():
        feats = models[names[0]].backbone(x)
    head_ms: dict[str, float] = {}
    for name in names:
        head = models[name].head
        f = feats.clone().requires_grad_(True)
        ts = []
        for _ in range(args.head_iters):
            t = time.perf_counter()
            F.cross_entropy(head(f).logits, y).backward()
            ts.append(time.perf_counter() - t)
        head_ms[name] = 1000 * statistics.median(ts)
    print(
        f"backbone={args.backbone} batch={args.batch} size={args.size} iters={args.iters} "
        f"threads={args.threads} (median step time)"
    )
    print(f"features {tuple(feats.shape)}; head-only = forward + backward of the head alone")
    print(f"{'head':10s} {'step (ms)':>10s} {'x GAP':>7s} {'head-only (ms)':>15s}")
    for n in names:
        print(f"{n:10s} {1000 * med[n]:10.1f} {med[n] / med['gap']:7.3f} {head_ms[n]:15.2f}")
    return {n: med[n] / med["gap"] for n in names}


if __name__ == "__main__":
    main()
