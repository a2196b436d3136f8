"""What one ``wsolkit reproduce`` run costs, per method and survey backbone, at 224 px: measured here, estimated on GPU.

For each method and backbone it measures, on this machine's CPU (random initialisation, batch ``--batch``):

- the FLOPs of one training step per image (forward + backward of ``training_steps``; for ``cam`` and the
  explainers, the CAM classifier they wrap) and of one map per image (:func:`wsolkit.cli.reproduce.
  localization_maps`), counted with :class:`torch.utils.flop_counter.FlopCounterMode`;
- the wall time of the same two operations (median of ``--repeats``).

A run is ``epochs × (n_train × step + (n_valcl + n_valpx) × map) + 2 × n_test × map`` (both selections evaluated on
test) with the survey's split sizes (GlaS: 67 / 18 / 6 / 80 images, 1000 epochs; CAMELYON16 fold 0:
24,348 / 8,858 / 10 / 15,664 patches, 20 epochs — Sec. 3.3). The GPU figure is an **estimate**: FLOPs divided by an
assumed sustained throughput (``--gpu-tflops``, default 30 TFLOP/s, a mixed-precision figure for an A100-class GPU
at realistic utilisation), data loading ignored. The CPU figure extrapolates the measured time the same way.

Usage::

    python -m wsolkit.benchmarks.bench_reproduce_cost         # Table 1's methods × VGG16 / Inception / ResNet
    python -m wsolkit.benchmarks.bench_reproduce_cost --methods gap,negev --backbones resnet50 --out cost.json
    python -m wsolkit.benchmarks.bench_reproduce_cost --table cost.json    # the table of saved measurements
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import wsolkit
from wsolkit.cli.reproduce import _backbone_name, _build, localization_maps

#: the survey's split sizes (Sec. 3.3; CAMELYON16 fold 0 of its split files) and epochs (Table 8)
SPLITS = {"glas": {"train": 67, "valcl": 18, "valpx": 6, "test": 80, "epochs": 1000},
          "camelyon": {"train": 24348, "valcl": 8858, "valpx": 10, "test": 15664, "epochs": 20}}


def _flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def _time(fn, repeats: int) -> float:
    times = []  # the FLOP-counting pass ran first: it is the warm-up
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(name: str, backbone: str, batch: int = 2, size: int = 224, repeats: int = 1) -> dict:
    """Per-image FLOPs and CPU seconds of a training step and of a map for ``name`` on ``backbone``.

    ``repeats=0`` counts FLOPs only (the CPU seconds are then those of the counting pass, an upper bound).
    """
    torch.manual_seed(0)
    bb = _backbone_name(name, backbone)
    method, trained = _build(name, 2, bb, False, {})
    x, y = torch.rand(batch, 3, size, size), torch.arange(batch) % 2

    def step():
        trained.train()
        for s in trained.training_steps(x, y):
            s.total.backward()
        trained.zero_grad(set_to_none=True)

    def maps():
        localization_maps(method, x, y)

    t0 = time.perf_counter()
    step_flop = _flops(step)
    t1 = time.perf_counter()
    map_flop = _flops(maps)
    t2 = time.perf_counter()
    step_s = _time(step, repeats) if repeats else t1 - t0
    map_s = _time(maps, repeats) if repeats else t2 - t1
    return {"method": name, "backbone": backbone, "built": bb, "step_gflop": step_flop / batch / 1e9,
            "map_gflop": map_flop / batch / 1e9, "step_s": step_s / batch, "map_s": map_s / batch,
            "timed": bool(repeats)}


def run_cost(m: dict, dataset: str, gpu_tflops: float) -> dict:
    """GPU hours (estimate from FLOPs) and CPU hours (extrapolated) of one run of ``dataset``."""
    s = SPLITS[dataset]
    n_map = s["epochs"] * (s["valcl"] + s["valpx"]) + 2 * s["test"]
    n_step = s["epochs"] * s["train"]
    flop = n_step * m["step_gflop"] * 1e9 + n_map * m["map_gflop"] * 1e9
    return {"gpu_hours_estimate": flop / (gpu_tflops * 1e12) / 3600,
            "cpu_hours": (n_step * m["step_s"] + n_map * m["map_s"]) / 3600}


def table(results: list[dict], gpu_tflops: float) -> str:
    lines = ["| method | backbone | train step GFLOP / img | map GFLOP / img | CPU s / img (step, map) | "
             "GlaS run: GPU h (est.) | CAMELYON16 run: GPU h (est.) |", "|" + " --- |" * 7]
    for m in results:
        if "error" in m:
            lines.append(f"| {m['method']} | {m['backbone']} | error: {m['error']} | | | | |")
            continue
        g, c = run_cost(m, "glas", gpu_tflops), run_cost(m, "camelyon", gpu_tflops)
        lines.append(f"| {m['method']} | {m['backbone']} ({m['built']}) | {m['step_gflop']:.1f} | "
                     f"{m['map_gflop']:.1f} | {m['step_s']:.2f}, {m['map_s']:.2f} | {g['gpu_hours_estimate']:.2f} | "
                     f"{c['gpu_hours_estimate']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default=None, help="comma-separated names or patterns of list_methods (default: "
                   "the methods of the survey's Table 1)")
    p.add_argument("--backbones", default="vgg16,inceptionv3,resnet50")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--repeats", type=int, default=1, help="timed passes after the counting one (0: count only)")
    p.add_argument("--gpu-tflops", type=float, default=30.0, help="assumed sustained GPU throughput")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None, help="JSON file of the measurements")
    p.add_argument("--quick", action="store_true", help="gap and cam on ResNet-50 at 64 px, FLOPs only (a smoke run)")
    p.add_argument("--table", default=None, metavar="JSON", help="print the table of a saved --out file and stop")
    a = p.parse_args(argv)
    if a.table:
        saved = json.loads(Path(a.table).read_text())
        print(table(saved["results"], a.gpu_tflops))
        return saved["results"]
    if a.quick:
        a.methods, a.backbones, a.size, a.batch, a.repeats = "gap,cam", "resnet50", 64, 1, 0
    torch.set_num_threads(a.threads)
    if a.methods is None:
        from wsolkit.survey_tables import TABLE1

        methods = [m for m in TABLE1["glas"] if m != "unet"]
    else:
        methods = [m for part in a.methods.split(",") for m in wsolkit.list_methods(part.strip())]
    results = []
    for name in methods:
        for backbone in a.backbones.split(","):
            try:
                r = measure(name, backbone, a.batch, a.size, a.repeats)
            except Exception as exc:  # noqa: BLE001 - a method that fails on a backbone is reported, not hidden
                r = {"method": name, "backbone": backbone, "error": f"{type(exc).__name__}: {exc}"[:200]}
            results.append(r)
            print(json.dumps(r), flush=True)
            if a.out:
                Path(a.out).write_text(json.dumps({"args": vars(a), "results": results}, indent=1))
    print(table(results, a.gpu_tflops))
    return results


if __name__ == "__main__":
    main()
