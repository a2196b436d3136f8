"""PxAP / accuracy of the CAM refinement methods (HaS, ADL, ACoL, SPG, CutMix, TS-CAM) against GAP.

Every method is trained from scratch on the synthetic histology benchmark with the same budget (small CNN,
or a tiny ViT for TS-CAM) and evaluated with the protocol of the survey: the map of the true class, upsampled
and min-max normalised, PxAP on the images that contain ROI pixels, against the all-ones baseline.

    python examples/refinement_table.py --quick            # ~30 s on 2 free cores: glas, GAP/CutMix/ACoL
    python examples/refinement_table.py --kinds glas camelyon
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from wsolkit.backbones import create_backbone
from wsolkit.data import SyntheticHistology
from wsolkit.erasing import (
    SPG,
    TSCAM,
    ACoL,
    acol_loss,
    cutmix,
    cutmix_loss,
    hide_and_seek,
    insert_adl,
    labelled_step,
    spg_loss,
)
from wsolkit.heads import GAP
from wsolkit.models import WSOLModel
from wsolkit.training import evaluate, fit, predict_maps

METHODS = ("gap", "has", "adl", "acol", "spg", "cutmix", "tscam")


def build(method: str, size: int, seed: int = 0):
    """``(model, fit kwargs, lr)`` of one method; the stochastic transforms draw from a seeded generator."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    if method == "tscam":
        from timm.models.vision_transformer import VisionTransformer

        vit = VisionTransformer(img_size=size, patch_size=8, embed_dim=64, depth=4, num_heads=4, num_classes=0)
        return TSCAM(vit, 2), {}, 1e-3
    bb = create_backbone("smallcnn", output_stride=8, width=16)
    k = bb.out_channels
    if method == "acol":
        return WSOLModel(bb, ACoL(k, 2, delta=0.7, mid_channels=64)), {"step_fn": labelled_step(acol_loss)}, 3e-3
    if method == "spg":
        return WSOLModel(bb, SPG(k, 2, mid_channels=64, reduction=bb.reduction)), {"loss_fn": spg_loss}, 3e-3
    if method == "adl":
        # after the last conv block of the two deepest stages of SmallCNN(depth=3)
        insert_adl(bb, ["features.19", "features.26"], drop_rate=0.75, gamma=0.9, generator=g)
    model = WSOLModel(bb, GAP(k, 2))
    if method == "has":
        grid = max(size // 6, 4)  # Table 9 grids are for 224 px; keep the cell / image ratio of grid 32-44

        def step(m, x, y):
            return F.cross_entropy(m(hide_and_seek(x, grid, 0.5, 0.0, training=True, generator=g)).logits, y)

        return model, {"step_fn": step}, 3e-3
    if method == "cutmix":

        def step(m, x, y):
            mix = cutmix(x, y, beta=1.0, training=True, generator=g)
            return cutmix_loss(m(mix.images), mix.labels_a, mix.labels_b, mix.lam)

        return model, {"step_fn": step}, 3e-3
    return model, {}, 3e-3


def run(method: str, kind: str, size: int, n_train: int, n_test: int, epochs: int, seed: int = 0) -> dict:
    """Train one method and return ``evaluate(...)`` plus the wall time.

    TS-CAM (a ViT from scratch) gets twice the images and 2.5x the epochs of the CNNs, as in the tests.
    """
    if method == "tscam":
        n_train, epochs = 2 * n_train, int(2.5 * epochs)
    xtr, ytr, _ = SyntheticHistology(kind, "train", n=n_train, size=size, seed=seed).tensors()
    xte, yte, mte = SyntheticHistology(kind, "test", n=n_test, size=size, seed=seed).tensors()
    model, kw, lr = build(method, size, seed)
    t = time.perf_counter()
    fit(model, xtr, ytr, epochs=epochs, batch_size=32, lr=lr, seed=seed, **kw)
    logits, maps = predict_maps(model, xte, yte)
    res = evaluate(logits, maps, yte, mte)
    res["seconds"] = time.perf_counter() - t
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="glas, GAP/CutMix/ACoL, 64 px, 200 images, 6 epochs")
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
        a.methods, a.kinds, a.size, a.n_train, a.n_test, a.epochs = ["gap", "cutmix", "acol"], ["glas"], 64, 200, 60, 6
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
