"""PxAP / accuracy of the CAM refinement methods (HaS, ADL, ACoL, SPG, CutMix, TS-CAM) against GAP.

Every method is built by ``wsolkit.create_method`` and trained from scratch by the shared loop
(``wsolkit.training.fit``) on the synthetic histology benchmark with the same budget (small CNN, or a tiny ViT for
TS-CAM), then evaluated with the survey's protocol: the map of the true class, upsampled and min-max normalised,
PxAP on the images that contain ROI pixels, against the all-ones baseline.

    python examples/refinement_table.py --quick            # a few seconds on 2 free cores: glas, GAP / CutMix
    python examples/refinement_table.py --size 64 --n-train 200 --n-test 60 --epochs 6 --kinds glas camelyon
"""

from __future__ import annotations

import argparse
import time

import torch

import wsolkit
from wsolkit.backbones import create_backbone
from wsolkit.data import SyntheticHistology
from wsolkit.training import evaluate_maps, fit_tensors, predict_maps

METHODS = ("gap", "has", "adl", "acol", "spg", "cutmix", "tscam")


def build(method: str, size: int, seed: int = 0) -> torch.nn.Module:
    """One method with the benchmark's options; the stochastic ones draw from a seeded generator."""
    torch.manual_seed(seed)
    if method == "tscam":  # a tiny ViT from scratch: patch 8, dim 64, depth 4, 4 heads
        vit = {"img_size": size, "patch_size": 8, "embed_dim": 64, "depth": 4, "num_heads": 4}
        return wsolkit.create_method("tscam", 2, backbone="vit_tiny_patch16_224", backbone_options=vit)
    options = {
        "has": {"grid_size": max(size // 6, 4), "drop_rate": 0.5},  # Table 9 grids are for 224 px images
        "adl": {"drop_rate": 0.75, "gamma": 0.9},
        "acol": {"delta": 0.7, "mid_channels": 64},
        "spg": {"mid_channels": 64},
        "cutmix": {"beta": 1.0},
    }.get(method, {})
    if method in ("has", "adl", "cutmix"):
        options["generator"] = torch.Generator().manual_seed(seed + 1)
    backbone = create_backbone("smallcnn", output_stride=8, width=16)
    return wsolkit.create_method(method, 2, backbone=backbone, **options)


def run(method: str, kind: str, size: int, n_train: int, n_test: int, epochs: int, seed: int = 0) -> dict:
    """Train one method and return ``evaluate(...)`` plus the wall time.

    TS-CAM (a ViT from scratch) gets twice the images and 2.5x the epochs of the CNNs, as in the tests.
    """
    lr = 3e-3
    if method == "tscam":
        n_train, epochs, lr = 2 * n_train, int(2.5 * epochs), 1e-3
    xtr, ytr, _ = SyntheticHistology(kind, "train", n=n_train, size=size, seed=seed).tensors()
    xte, yte, mte = SyntheticHistology(kind, "test", n=n_test, size=size, seed=seed).tensors()
    model = build(method, size, seed)
    t = time.perf_counter()
    fit_tensors(model, xtr, ytr, epochs=epochs, batch_size=32, lr=lr, seed=seed)
    logits, maps = predict_maps(model, xte, yte)
    res = evaluate_maps(logits, maps, yte, mte)
    res["seconds"] = time.perf_counter() - t
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="glas, GAP and CutMix, 64 px, 128 images, 4 epochs")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--kinds", nargs="+", choices=("glas", "camelyon"), default=["glas"])
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--n-train", type=int, default=400)
    p.add_argument("--n-test", type=int, default=100)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.quick:
        a.methods, a.kinds, a.size, a.n_train, a.n_test, a.epochs = ["gap", "cutmix"], ["glas"], 64, 128, 40, 4
    print(f"{'kind':9s} {'method':7s} {'acc %':>6s} {'PxAP':>6s} {'base':>6s} {'x base':>7s} {'vs GAP':>7s} {'s':>5s}")
    for kind in a.kinds:
        gap_pxap = None
        for m in a.methods:
            r = run(m, kind, a.size, a.n_train, a.n_test, a.epochs)
            if m == "gap":
                gap_pxap = r["pxap"]
            rel = f"{r['pxap'] - gap_pxap:+7.1f}" if gap_pxap is not None else "      -"
            print(
                f"{kind:9s} {m:7s} {r['accuracy']:6.1f} {r['pxap']:6.1f} {r['pxap_baseline']:6.1f} "
                f"{r['pxap'] / r['pxap_baseline']:7.2f} {rel} {r['seconds']:5.1f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
