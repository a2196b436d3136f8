"""Survey Table 1, top-down rows, on the synthetic benchmark: PxAP and TP*/FN*/FP*/TN* for ``cam`` and the explainers.

A small CNN with a GAP head is trained on the synthetic GlaS-like data; ``cam`` (its own class map) and each
explainer wrap it (``wsolkit.create_method(name, classifier=model)``) and give the raw map of the true class for
every test image that contains ROI pixels; ``wsolkit.cams.postprocess`` makes the protocol's maps, scored with the
survey's metrics (eqs. 14-24): PxAP and the confusion-matrix components marginalised over the thresholds.

    python examples/explain_table.py --quick      # well under a minute on 2 CPU cores (SS-CAM / IS-CAM with N = 4)
    python examples/explain_table.py              # larger images and test set, the papers' N
"""

from __future__ import annotations

import argparse
import time

import torch

import wsolkit
from wsolkit.backbones import create_backbone
from wsolkit.cams import postprocess
from wsolkit.data import SyntheticHistology
from wsolkit.metrics import localization_histogram, pxap_from_histogram
from wsolkit.training import evaluate, fit

TITLES = {
    "cam": "CAM (own weights)",
    "gradcam": "GradCAM", "gradcam++": "GradCAM++", "smoothgradcam++": "Smooth-GradCAM++", "xgradcam": "XGradCAM",
    "layercam": "LayerCAM", "scorecam": "Score-CAM", "sscam": "SS-CAM", "iscam": "IS-CAM",
    "ablationcam": "Ablation-CAM",
}


def confusion_star(fg: torch.Tensor, bg: torch.Tensor) -> dict[str, float]:
    """TP*, FN*, FP*, TN* (survey eqs. 21-24) from per-bin counts of ``localization_histogram`` (thresholds i / T)."""
    t = fg.numel() - 1
    tp = fg.flip(0).cumsum(0).flip(0).double() / max(int(fg.sum()), 1)  # TP(τ_i): share of fg with s >= i / T
    fp = bg.flip(0).cumsum(0).flip(0).double() / max(int(bg.sum()), 1)
    # Σ_{l=1..T} X(τ_l) (τ_l − τ_{l−1}) with a constant step 1 / T
    tp_star = 100.0 * float(tp[1:].sum()) / t
    fp_star = 100.0 * float(fp[1:].sum()) / t
    return {"TP*": tp_star, "FN*": 100.0 - tp_star, "FP*": fp_star, "TN*": 100.0 - fp_star}


def explain_all(model, images, labels, names, kwargs, batch):
    x_all = wsolkit.data.preprocessing(model)(images)
    out = {}
    for name in names:
        t0 = time.perf_counter()
        method = wsolkit.create_method(name, classifier=model, **kwargs.get(name, {}))
        maps = []
        with torch.no_grad():
            for i in range(0, len(x_all), batch):
                raw = method(x_all[i : i + batch], labels[i : i + batch]).cams
                maps.append(postprocess(raw, None, images.shape[-2:]))
        out[name] = (torch.cat(maps), time.perf_counter() - t0)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small run (well under a minute on 2 CPU cores)")
    p.add_argument("--kind", default="glas", choices=["glas", "camelyon"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    size, n_train, n_test, epochs, width = (64, 192, 8, 6, 4) if a.quick else (96, 400, 64, 10, 16)
    train = SyntheticHistology(a.kind, "train", n=n_train, size=size, seed=a.seed).tensors()
    test = SyntheticHistology(a.kind, "test", n=n_test, size=size, seed=a.seed + 1).tensors()
    model = wsolkit.create_method("gap", 2, backbone=create_backbone("smallcnn", output_stride=8, width=width))
    t0 = time.perf_counter()
    fit(model, train[0], train[1], epochs=epochs, batch_size=32, lr=3e-3, seed=a.seed)
    print(f"trained smallcnn(width={width})+GAP on {n_train} {a.kind} images of {size} px in "
          f"{time.perf_counter() - t0:.1f} s")
    images, labels, masks = test
    keep = (masks == 1).flatten(1).any(1)
    images, labels, masks = images[keep], labels[keep], masks[keep]
    with torch.no_grad():
        logits = model(wsolkit.data.preprocessing(model)(images)).logits
    kwargs = {"scorecam": {"batch_size": 256}, "sscam": {"batch_size": 256}, "iscam": {"batch_size": 256},
              "ablationcam": {"batch_size": 256}}
    if a.quick:  # fewer noisy / scaled copies than the papers' N = 35 and 10
        kwargs["sscam"]["n_samples"] = kwargs["iscam"]["n_samples"] = 4
    names = ["cam", "gradcam", "gradcam++", "smoothgradcam++", "xgradcam", "layercam", "scorecam", "sscam", "iscam",
             "ablationcam"]
    results = explain_all(model, images, labels, names, kwargs, batch=8)
    ones_fg, ones_bg = localization_histogram(torch.zeros_like(masks, dtype=torch.float), masks)
    base = pxap_from_histogram(ones_fg, ones_bg)
    acc = evaluate(logits, results["gradcam"][0], labels, masks)["accuracy"]
    print(f"{a.kind}: {len(images)} test images with ROI, classifier accuracy {acc:.1f}%")
    print(f"{'Top-down WSOL':18s} {'PxAP':>6s} {'x base':>6s} {'TP*':>6s} {'FN*':>6s} {'FP*':>6s} {'TN*':>6s} "
          f"{'time':>7s}")
    print(f"{'all-ones baseline':18s} {base:6.1f} {1.0:6.2f} {100:6.1f} {0:6.1f} {100:6.1f} {0:6.1f}")
    for name, (maps, secs) in results.items():
        fg, bg = localization_histogram(maps, masks)
        ap = pxap_from_histogram(fg, bg)
        c = confusion_star(fg, bg)
        print(f"{TITLES[name]:18s} {ap:6.1f} {ap / base:6.2f} {c['TP*']:6.1f} {c['FN*']:6.1f} {c['FP*']:6.1f} "
              f"{c['TN*']:6.1f} {secs:6.1f}s")


if __name__ == "__main__":
    main()
