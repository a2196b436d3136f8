"""Where does Deep MIL's attention look? Its maps per class against GAP's CAM on the synthetic benchmark.

Deep MIL (Ilse et al. 2018) pools a bag of instances with learned attention ``A_c = softmax(ψ_c)``; the survey reads
``ψ_c`` as the class map. This script trains ``deepmil`` and ``gap`` with the same backbone, seed and budget, and
scores several readings of the Deep MIL head on the test images with ROI pixels, per class of the image:

- ``attention ψ`` (the default ``cams``), ``attention A`` (the softmax weights, ``aux["attention"]``);
- ``instance u·F + b`` (``maps="instance"``: the bag classifier applied to each location — the map the attention
  averages, since ``s_c = Σ A_c (u_c · F + b_c)``), and the contribution ``A · (u·F + b)``;
- ``ψ of the other class`` (what the attention of the class *not* present looks at);

beside the effective number of attended locations ``exp(H(A_y))`` and the number of locations that are mostly
foreground. A class whose evidence is the context attends to the context: see ``docs/benchmarks.md``.

    python examples/deepmil_maps.py --seeds 0,1,2        # glas, 64 px, 240 training images, 6 epochs (about 1 min/seed)
    python examples/deepmil_maps.py --kind camelyon
    python examples/deepmil_maps.py --quick              # smoke run (too short to learn)
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import wsolkit
from wsolkit.data import SyntheticHistology
from wsolkit.metrics import pxap
from wsolkit.training import fit_tensors


def _pxap(maps: torch.Tensor, masks: torch.Tensor, labels: torch.Tensor) -> float:
    if not len(maps):
        return float("nan")
    return pxap(maps.float(), masks, labels=labels, normalize=True)


def run(kind: str, seed: int, n_train: int, n_test: int, size: int, epochs: int, width: int) -> dict:
    torch.manual_seed(seed)
    x, y, _ = SyntheticHistology(kind, "train", n=n_train, size=size, seed=seed).tensors()
    xt, yt, mt = SyntheticHistology(kind, "test", n=n_test, size=size, seed=seed).tensors()
    keep = (mt == 1).flatten(1).any(1)
    rows: dict[str, dict] = {}
    for name in ("deepmil", "gap"):
        torch.manual_seed(seed)
        method = wsolkit.create_method(
            name, 2, backbone=wsolkit.create_backbone("smallcnn", output_stride=8, width=width)
        )
        fit_tensors(method, x, y, epochs=epochs, batch_size=32, lr=3e-3, seed=seed)
        method.eval()
        with torch.no_grad():
            out = method(wsolkit.data.preprocessing(method)(xt))
        acc = 100.0 * float((out.logits.argmax(1) == yt).float().mean())
        readings = {"cams": out.cams}
        if name == "deepmil":
            att, inst = out.aux["attention"], out.aux["instance"]
            readings = {"attention ψ (default)": out.cams, "attention A": att, "instance u·F + b": inst,
                        "contribution A·(u·F + b)": att * inst, "ψ of the other class": out.cams.flip(1)}
            a_y = att[torch.arange(len(yt)), yt].flatten(1)
            effective = (-(a_y * a_y.clamp_min(1e-12).log()).sum(1)).exp()
            fg_cells = (F.adaptive_avg_pool2d((mt == 1).float().unsqueeze(1), att.shape[-2:]) > 0.5).flatten(1).sum(1)
            rows["_attention"] = {"effective": float(effective[keep].mean()),
                                  "fg_cells": float(fg_cells[keep].float().mean()),
                                  "cells": att.shape[-2] * att.shape[-1]}
        for reading, maps in readings.items():
            per_class = {c: _pxap(maps[keep & (yt == c)], mt[keep & (yt == c)], yt[keep & (yt == c)]) for c in (0, 1)}
            rows[f"{name}: {reading}"] = {"accuracy": acc, "all": _pxap(maps[keep], mt[keep], yt[keep]), **per_class}
    rows["_baseline"] = pxap(torch.zeros(int(keep.sum()), 4, 4), mt[keep], normalize=True)
    return rows


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--kind", default="glas")
    p.add_argument("--seeds", default="0")
    p.add_argument("--n-train", type=int, default=240)
    p.add_argument("--n-test", type=int, default=120)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.quick:
        a.seeds, a.n_train, a.n_test, a.epochs, a.width = "0", 32, 16, 1, 4
    results = {}
    for seed in (int(s) for s in a.seeds.split(",")):
        rows = run(a.kind, seed, a.n_train, a.n_test, a.size, a.epochs, a.width)
        results[seed] = rows
        att = rows["_attention"]
        print(f"\n{a.kind}, seed {seed}: all-ones baseline PxAP {rows['_baseline']:.1f}; Deep MIL attends "
              f"exp(H(A_y)) = {att['effective']:.1f} of {att['cells']} locations, "
              f"{att['fg_cells']:.1f} mostly foreground\n")
        print("| map | accuracy | PxAP | PxAP, class 0 images | PxAP, class 1 images |")
        print("| --- | --- | --- | --- | --- |")
        for name, r in rows.items():
            if not name.startswith("_"):
                print(f"| {name} | {r['accuracy']:.1f} | {r['all']:.1f} | {r[0]:.1f} | {r[1]:.1f} |")
    return results


if __name__ == "__main__":
    main()
