"""MaxMin training step: erasing depth u = 4 against u = 0 — time and peak memory per step (CPU).

Two memory figures: the peak bytes of tensors saved for backward that are alive at once (exact, counted with
``torch.autograd.graph.saved_tensors_hooks``), and the peak resident set size of a fresh process running the
steps (``ru_maxrss``, includes the interpreter and weights). The localizer is made confident (bias on class 0, all
labels 0) so that no trust drops and all ``u + 1`` localizer passes run: the worst case for time and memory.

Usage: ``python wsolkit/benchmarks/bench_maxmin.py [--size 96] [--batch 16] [--steps 5] [--width 16] [--head wildcat]``
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch


class _SavedBytes:
    def __init__(self):
        self.live = self.peak = 0

    def pack(self, t):
        owner = self

        class Holder:
            def __init__(self, t):
                self.t, self.n = t, t.numel() * t.element_size()
                owner.live += self.n
                owner.peak = max(owner.peak, owner.live)

            def __del__(self):
                owner.live -= self.n

        return Holder(t)

    @staticmethod
    def unpack(h):
        return h.t


def _model(u: int, width: int, head: str):
    import wsolkit

    torch.manual_seed(0)
    model = wsolkit.create_method("maxmin", 2, backbone=wsolkit.create_backbone("smallcnn", output_stride=8,
                                                                                width=width), head=head, u=u)
    # WILDCAT: the first half of the 1x1 conv's channels are class 0's modalities; GAP: one bias per class
    bias = model.localizer.head.classifier.bias if head == "wildcat" else model.localizer.head.bias
    n = bias.numel() // 2
    with torch.no_grad():
        bias.copy_(torch.tensor([100.0] * n + [-100.0] * n))
    return model


def _step(model, x, y) -> int:
    """One batch through the shared loop; returns the number of localizer passes (yielded steps − 1)."""
    n = 0
    for step in model.training_steps(x, y):
        step.total.backward()
        n += 1
    return n - 1


def run_one(u: int, size: int, batch: int, steps: int, width: int, head: str) -> dict:
    """Time ``steps`` training steps (after one warm-up) and measure memory; runs in the current process."""
    torch.set_num_threads(1)
    model = _model(u, width, head)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x, y = torch.randn(batch, 3, size, size), torch.zeros(batch, dtype=torch.long)
    _step(model, x, y)
    opt.zero_grad()
    tracker = _SavedBytes()
    with torch.autograd.graph.saved_tensors_hooks(tracker.pack, tracker.unpack):
        passes = _step(model, x, y)
    opt.zero_grad()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        _step(model, x, y)
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t)
    times.sort()
    return {
        "u": u,
        "localizer_passes": passes,
        "median_s": times[len(times) // 2],
        "saved_peak_mb": tracker.peak / 2**20,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--head", default="wildcat")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child is not None:
        print(json.dumps(run_one(a.child, a.size, a.batch, a.steps, a.width, a.head)))
        return {}
    res = {}
    for u in (0, 4):  # a fresh process each, so that ru_maxrss is that configuration's peak
        cmd = [sys.executable, __file__, "--child", str(u), "--size", str(a.size), "--batch", str(a.batch),
               "--steps", str(a.steps), "--width", str(a.width), "--head", a.head]
        res[u] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip())
        print(res[u])
    ratio = {
        "time": res[4]["median_s"] / res[0]["median_s"],
        "saved_peak": res[4]["saved_peak_mb"] / res[0]["saved_peak_mb"],
        "maxrss": res[4]["maxrss_mb"] / res[0]["maxrss_mb"],
    }
    print(f"u=4 / u=0: time {ratio['time']:.2f}x (target <= 2.2x), saved-tensor peak {ratio['saved_peak']:.2f}x, "
          f"max RSS {ratio['maxrss']:.2f}x (target <= 1.3x)")
    return ratio


if __name__ == "__main__":
    main()
