"""The method table: every method of the registry on the synthetic benchmark (both kinds, several seeds).

Each trainable method is built with ``wsolkit.create_method(name, 2, backbone=...)`` and its documented defaults,
trained by the protocol's one loop (:func:`wsolkit.training.fit`) at the same budget; methods over a trained model
(``cam``, the explainers, ``fcam``, ``negev``) wrap the GAP model trained with the same seed. Localization is
measured on the test images that hold foreground pixels, with the map of the true class (protocol), through
:class:`wsolkit.metrics.LocalizationMeter`; classification accuracy on all test images. The all-ones baseline is
the PxAP of a constant map. Mean ± sd over seeds; a markdown table for ``docs/benchmarks.md`` and a JSON file.

Usage::

    wsolkit bench methods                 # 3 seeds, both kinds, the table of docs/benchmarks.md (hours on a CPU)
    python wsolkit/benchmarks/bench_methods.py --quick          # 1 seed, small budget (a smoke run)
    python wsolkit/benchmarks/bench_methods.py --methods gap,maxmin --kinds glas --seeds 0
    python wsolkit/benchmarks/bench_methods.py --merge run1.json run2.json   # one table from split runs
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch

import wsolkit
from wsolkit._checks import WSOLValueError
from wsolkit.data import SyntheticHistology
from wsolkit.metrics import LocalizationMeter
from wsolkit.training import fit_tensors

BUDGET = ("n_train", "n_test", "size", "epochs", "width", "lr")
# per kind, the smallest budget tried at which GAP reaches >= 95 % accuracy on every seed (docs/benchmarks.md)
KIND_BUDGET = {"glas": {"n_train": 240, "epochs": 6}, "camelyon": {"n_train": 320, "epochs": 10}}
KEYS = ("accuracy", "pxap", "tp_star", "fn_star", "fp_star", "tn_star", "f1_pos", "f1_neg")
# per-method options of the table (the methods' defaults otherwise); TS-CAM needs a transformer backbone
VIT = "test_vit"


def _options(name: str, size: int, width: int) -> dict:
    info = wsolkit.method_info(name)
    if name == "tscam":
        return {"backbone": VIT, "backbone_options": {"img_size": size}}
    if info["needs"] == "backbone":
        return {"backbone": wsolkit.create_backbone("smallcnn", output_stride=8, width=width)}
    return {}


def _measure(method, x, y, m, batch: int = 32) -> dict[str, float]:
    meter = LocalizationMeter(normalize=True)
    correct = 0
    keep = (m == 1).flatten(1).any(1)
    prep = wsolkit.data.preprocessing(method)
    for i in range(0, len(x), batch):
        yb, mb, kb = y[i : i + batch], m[i : i + batch], keep[i : i + batch]
        # the true class's raw map at the mask size (the one inference path); the meter normalises it
        loc = wsolkit.localize(method, prep(x[i : i + batch]), "label", labels=yb, size=tuple(mb.shape[-2:]),
                               normalize=False)
        correct += int((loc.logits.argmax(1) == yb).sum())
        if kb.any():
            meter.update(loc.maps[kb], mb[kb])
    r = meter.compute()
    res = {k: float(r[k]) for k in KEYS[1:]}
    res["accuracy"] = 100.0 * correct / len(x)
    return res


def _baseline(m: torch.Tensor) -> float:
    keep = (m == 1).flatten(1).any(1)
    meter = LocalizationMeter(normalize=True)
    meter.update(torch.zeros(int(keep.sum()), 1, 4, 4), m[keep], None)
    return float(meter.compute()["pxap"])


def run(kinds, seeds, methods, n_train, n_test, size, epochs, width, lr, save=None) -> dict:
    """Train and measure; ``n_train`` / ``epochs`` of ``None`` take the kind's budget (:data:`KIND_BUDGET`)."""
    results: dict = {}
    for kind in kinds:
        default = KIND_BUDGET.get(kind, {"n_train": 400, "epochs": 8})
        budget = {"n_train": default["n_train"] if n_train is None else n_train, "n_test": n_test, "size": size,
                  "epochs": default["epochs"] if epochs is None else epochs, "width": width, "lr": lr}
        results[kind] = {"baseline": [], "methods": {}, "budget": budget}
        for seed in seeds:
            torch.manual_seed(seed)
            x, y, _ = SyntheticHistology(kind, "train", n=budget["n_train"], size=size, seed=seed).tensors()
            xt, yt, mt = SyntheticHistology(kind, "test", n=n_test, size=size, seed=seed).tensors()
            results[kind]["baseline"].append(_baseline(mt))
            classifier = None
            order = sorted(methods, key=lambda n: (wsolkit.method_info(n)["needs"] == "classifier", n != "gap"))
            for name in order:
                t0 = time.perf_counter()
                torch.manual_seed(seed)
                info = wsolkit.method_info(name)
                if info["needs"] == "classifier":
                    if classifier is None:
                        raise RuntimeError("the GAP classifier must be trained first (include 'gap')")
                    method = wsolkit.create_method(name, classifier=classifier, **_options(name, size, width))
                    if method.trainable:
                        fit_tensors(method, x, y, epochs=budget["epochs"], batch_size=32, lr=lr, seed=seed)
                else:
                    method = wsolkit.create_method(name, 2, **_options(name, size, width))
                    fit_tensors(method, x, y, epochs=budget["epochs"], batch_size=32, lr=lr, seed=seed)
                    if name == "gap":
                        classifier = method.eval()
                res = _measure(method, xt, yt, mt)
                res["seconds"] = time.perf_counter() - t0
                res["seed"] = seed
                results[kind]["methods"].setdefault(name, []).append(res)
                if save is not None:  # after every method: a stopped run keeps what it measured
                    save(results)
                print(f"[{kind} seed {seed}] {name:16s} acc {res['accuracy']:5.1f}  PxAP {res['pxap']:5.1f}  "
                      f"({res['seconds']:.0f} s)", flush=True)
    return results


def _baselines(r: dict) -> list[float]:
    """A kind's baseline PxAP per seed (files of older runs hold one number)."""
    return r["baseline"] if isinstance(r["baseline"], list) else [r["baseline"]]


def _fmt(vals: list[float]) -> str:
    vals = [v for v in vals if not math.isnan(v)]
    if not vals:
        return "—"
    if len(vals) == 1:
        return f"{vals[0]:.1f}"
    return f"{statistics.mean(vals):.1f} ± {statistics.stdev(vals):.1f}"


def table(results: dict) -> str:
    lines = []
    for kind, r in results.items():
        base = _baselines(r)
        seeds = max(len(v) for v in r["methods"].values())
        budget = "".join(f", {k} {v}" for k, v in r.get("budget", {}).items())
        lines.append(f"\n**{kind}** (all-ones baseline PxAP {_fmt(base)}; up to {seeds} seeds{budget})\n")
        lines.append("| method | seeds | " + " | ".join(KEYS) + " | × baseline |")
        lines.append("| --- | --- | " + " | ".join("---" for _ in KEYS) + " | --- |")
        for name in sorted(r["methods"], key=lambda n: -statistics.mean(v["pxap"] for v in r["methods"][n])):
            runs = r["methods"][name]
            cells = [_fmt([v[k] for v in runs]) for k in KEYS]
            ratio = statistics.mean(v["pxap"] for v in runs) / statistics.mean(base) if base else math.nan
            lines.append(f"| {name} | {len(runs)} | " + " | ".join(cells) + f" | {ratio:.2f} |")
    return "\n".join(lines)


def merge(paths: list[str]) -> dict:
    """Join the JSON files of runs split over processes or machines (by kind, seed or method) into one result."""
    results: dict = {}
    for path in paths:
        run_ = json.loads(Path(path).read_text())
        seeds = [int(s) for s in run_["args"]["seeds"].split(",")]
        for kind, r in run_["results"].items():
            budget = r.get("budget") or {k: run_["args"][k] for k in BUDGET}
            dst = results.setdefault(kind, {"baseline": {}, "methods": {}, "budget": budget})
            if dst["budget"] != budget:
                raise WSOLValueError(f"{path}: {kind} was run at {budget}, the other files at {dst['budget']}")
            dst["baseline"].update(zip(seeds, _baselines(r)))
            for name, runs in r["methods"].items():
                by_seed = dst["methods"].setdefault(name, {})
                by_seed.update((run.get("seed", seed), run) for seed, run in zip(seeds, runs))
    for r in results.values():
        r["baseline"] = [r["baseline"][s] for s in sorted(r["baseline"])]
        r["methods"] = {n: [runs[s] for s in sorted(runs)] for n, runs in r["methods"].items()}
    return results


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1 seed, small budget, a few methods")
    p.add_argument("--kinds", default="glas,camelyon")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--methods", default="*", help="comma separated names or one pattern of list_methods")
    p.add_argument("--n-train", type=int, default=None, help="training images (default: the kind's budget)")
    p.add_argument("--n-test", type=int, default=120)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: the kind's budget)")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="bench_methods.json")
    p.add_argument("--merge", nargs="+", metavar="JSON", help="print the table of runs split over processes")
    a = p.parse_args(argv)
    if a.merge:
        results = merge(a.merge)
        print(table(results))
        return results
    torch.set_num_threads(a.threads)
    if a.quick:
        a.seeds, a.n_train, a.n_test, a.epochs = "0", 64, 32, 1
        if a.methods == "*":
            a.methods = "gap,max,cam,gradcam,acol"
    methods = [m for part in a.methods.split(",") for m in wsolkit.list_methods(part.strip())]
    if "gap" not in methods and any(wsolkit.method_info(m)["needs"] == "classifier" for m in methods):
        methods.insert(0, "gap")
    seeds = [int(s) for s in a.seeds.split(",")]
    kinds = [k.strip() for k in a.kinds.split(",")]
    t0 = time.perf_counter()

    def save(results: dict) -> None:
        Path(a.out).write_text(json.dumps({"args": vars(a), "results": results}, indent=1))

    results = run(kinds, seeds, methods, a.n_train, a.n_test, a.size, a.epochs, a.width, a.lr, save=save)
    print(table(results))
    print(f"\n{len(methods)} methods, seeds {seeds}, {time.perf_counter() - t0:.0f} s; "
          f"regenerate: wsolkit bench methods")
    save(results)
    return results


if __name__ == "__main__":
    main()
