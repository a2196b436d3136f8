"""B-LOC vs B-CL model selection with the streaming metrics on the synthetic histology benchmark.

Trains a small CNN + GAP in short one-cycle rounds; after each round ("epoch" checkpoint) it measures

- localization (PxAP) on a B-LOC subset: a few validation images per class with masks (survey Sec. 3.1);
- classification accuracy on the whole validation set (B-CL);

and keeps the best checkpoint under each criterion with :class:`wsolkit.metrics.ModelSelector`. The two selected
models are then evaluated on the test set with every localization metric (PxAP, TP*/FN*/FP*/TN*, mIoU at the
validation-chosen threshold, F1+/F1−, MaxBoxAcc) and the threshold curves are plotted.

Usage: ``python examples/metrics_model_selection.py [--quick] [--out DIR]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from wsolkit.backbones import create_backbone
from wsolkit.data import SyntheticHistology
from wsolkit.heads import GAP
from wsolkit.metrics import (
    BLOC_PER_CLASS,
    BoxAccuracyMeter,
    ClassificationMeter,
    LocalizationMeter,
    ModelSelector,
    bloc_subset,
)
from wsolkit.models import WSOLModel
from wsolkit.training import fit_tensors, predict_maps


def mask_boxes(mask: torch.Tensor) -> torch.Tensor:
    """Ground-truth boxes of a mask: one inclusive box per connected ROI (for MaxBoxAcc)."""
    n, _, stats, _ = cv2.connectedComponentsWithStats((mask.numpy() == 1).astype(np.uint8))
    boxes = [[x, y, x + w - 1, y + h - 1] for x, y, w, h, _ in stats[1:n]]
    return torch.tensor(boxes or [[0, 0, 0, 0]])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run (< 30 s on 2 free cores; too short to learn much)")
    ap.add_argument("--kind", default="glas", choices=["glas", "camelyon"])
    ap.add_argument("--out", default="runs/metrics_model_selection")
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    size, n_train, n_val, n_test, rounds, epochs = (64, 64, 24, 32, 2, 1) if args.quick else (96, 400, 40, 200, 4, 3)
    x, y, _ = SyntheticHistology(args.kind, "train", n=n_train, size=size, seed=0).tensors()
    xv, yv, mv = SyntheticHistology(args.kind, "valid", n=n_val, size=size, seed=0).tensors()
    xt, yt, mt = SyntheticHistology(args.kind, "test", n=n_test, size=size, seed=0).tensors()
    # B-LOC: k masks per class among the validation images that have ROIs (camelyon: normal images have none)
    has_roi = (mv == 1).flatten(1).any(1)
    k = BLOC_PER_CLASS["glas" if args.kind == "glas" else "camelyon16"]
    roi_idx = torch.nonzero(has_roi).flatten()
    sub = roi_idx[bloc_subset(yv[roi_idx], min(k, int(torch.bincount(yv[roi_idx]).min())), seed=0)]
    print(f"B-LOC subset: {len(sub)} validation images with masks; B-CL: all {len(yv)} validation labels")

    backbone = create_backbone("smallcnn", output_stride=8, width=16)
    model = WSOLModel(backbone, GAP(backbone.out_channels, 2))
    selector = ModelSelector(keep_states=True)
    thresholds = {}
    for r in range(rounds):
        fit_tensors(model, x, y, epochs=epochs, batch_size=32, lr=3e-3, seed=r)
        logits, maps = predict_maps(model, xv, yv)
        loc = LocalizationMeter(num_thresholds=1000)
        loc.update(maps[sub], mv[sub])
        cls = ClassificationMeter(2)
        cls.update(logits, yv)
        lres, cres = loc.compute(), cls.compute()
        thresholds[r] = lres["best_threshold"]  # operating threshold chosen on validation
        improved = selector.update(r, lres["pxap"], cres["accuracy"], model=model)
        print(f"checkpoint {r}: B-LOC PxAP {lres['pxap']:.2f}  B-CL accuracy {cres['accuracy']:.1f}%  "
              f"best so far: {[k for k, v in improved.items() if v]}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    keep = (mt == 1).flatten(1).any(1)
    for crit in ("b-loc", "b-cl"):
        best = selector.best(crit)
        model.load_state_dict(selector.state(crit))
        logits, maps = predict_maps(model, xt, yt)
        loc = LocalizationMeter()
        loc.update(maps[keep], mt[keep])
        res = loc.compute(threshold=thresholds[best["epoch"]])
        box = BoxAccuracyMeter(num_thresholds=100)
        box.update(maps[keep], [mask_boxes(m) for m in mt[keep]], labels=yt[keep], preds=logits[keep].argmax(1))
        bres = box.compute()
        cls = ClassificationMeter(2)
        cls.update(logits, yt)
        base = LocalizationMeter()
        base.update(torch.zeros_like(maps[keep]), mt[keep])
        print(f"[{crit}] checkpoint {best['epoch']}: test accuracy {cls.compute()['accuracy']:.1f}%  "
              f"PxAP {res['pxap']:.2f} (all-ones {base.compute()['pxap']:.2f})  TP* {res['tp_star']:.1f} "
              f"FN* {res['fn_star']:.1f} FP* {res['fp_star']:.1f} TN* {res['tn_star']:.1f}  "
              f"mIoU@{res['threshold']:.3f} {res['miou']:.1f}  F1+ {res['f1_pos']:.1f} F1- {res['f1_neg']:.1f}  "
              f"MaxBoxAccV2 {bres['maxboxacc_v2']:.1f}")
        try:
            from wsolkit.viz import plot_threshold_curves

            fig = plot_threshold_curves(res, title=f"{args.kind} {crit}: PxAP {res['pxap']:.1f}")
            fig.savefig(out / f"curves_{crit}.png", dpi=100)
        except ImportError:
            pass
    print(f"done in {time.perf_counter() - t0:.0f} s; curves in {out}")


if __name__ == "__main__":
    main()
