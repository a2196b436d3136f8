"""F-CAM and NEGEV on the synthetic camelyon benchmark: train a GAP classifier, freeze it, train decoders on top.

Compares PxAP (and the pixel confusion at the best threshold) of the classifier's own CAMs with the F-CAM and NEGEV
decoders' foreground maps on the metastatic test images.

    python examples/fcam_negev_camelyon.py           # ~2-3 min on 2 CPU cores
    python examples/fcam_negev_camelyon.py --quick   # smaller, well under a minute on an idle machine
"""

from __future__ import annotations

import argparse
import time

import torch

import wsolkit
from wsolkit.data import SyntheticHistology
from wsolkit.decoders import DenseCRFLoss, FCAMSeeder, NEGEVSeeder
from wsolkit.metrics import localization_histogram
from wsolkit.training import evaluate_maps, fit_tensors, predict_maps


def confusion_at_best(maps: torch.Tensor, masks: torch.Tensor) -> dict[str, float]:
    """TP*/FN*/FP*/TN* (percent of pixels) at the threshold maximising the pixel F1 (fg = mask 1)."""
    fg, bg = localization_histogram(maps, masks)
    tp = fg.flip(0).cumsum(0).flip(0).double()  # pixels with score >= threshold bin
    fp = bg.flip(0).cumsum(0).flip(0).double()
    fn = fg.sum() - tp
    tn = bg.sum() - fp
    f1 = 2 * tp / (2 * tp + fp + fn).clamp_min(1)
    i = int(f1.argmax())
    total = float(fg.sum() + bg.sum())
    return {k: 100.0 * float(v[i]) / total for k, v in (("TP*", tp), ("FN*", fn), ("FP*", fp), ("TN*", tn))}


def train_decoder(classifier, images, labels, negev: bool, epochs: int, seed: int = 0):
    """Train an F-CAM (or NEGEV) decoder over the frozen ``classifier`` with the shared loop (``fit``)."""
    crf = DenseCRFLoss(weight=5e-8, sigma_rgb=15.0, sigma_xy=100.0, scale_factor=0.5, method="grid")
    if negev:
        model = wsolkit.create_method("negev", classifier=classifier, crf=crf,
                                      seeder=NEGEVSeeder(n_fg=20, n_bg=20, min_p=0.5, seed=seed),
                                      negative_classes=(0,))
    else:
        model = wsolkit.create_method("fcam", classifier=classifier, crf=crf,
                                      seeder=FCAMSeeder(n_fg=20, n_bg=20, min_p=0.3, erosion=3, seed=seed))
    fit_tensors(model, images, labels, epochs=epochs, batch_size=32, lr=3e-3, seed=seed)
    return model


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run (< 40 s)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    size, n_train, n_test = (64, 96, 48) if args.quick else (96, 400, 100)
    cls_epochs, dec_epochs = (6, 2) if args.quick else (8, 6)

    x, y, _ = SyntheticHistology("camelyon", "train", n=n_train, size=size, seed=0).tensors()
    xt, yt, mt = SyntheticHistology("camelyon", "test", n=n_test, size=size, seed=1).tensors()

    t0 = time.perf_counter()
    classifier = wsolkit.create_method("gap", 2,
                                       backbone=wsolkit.create_backbone("smallcnn", output_stride=8, width=16))
    fit_tensors(classifier, x, y, epochs=cls_epochs, batch_size=32, lr=3e-3, seed=0)
    results = {}
    logits, maps = predict_maps(classifier, xt, yt)
    results["GAP (classifier CAM)"] = {**evaluate_maps(logits, maps, yt, mt), **confusion_at_best(maps, mt)}
    for name, negev in (("F-CAM", False), ("NEGEV", True)):
        model = train_decoder(classifier, x, y, negev, dec_epochs)
        logits, maps = predict_maps(model, xt, yt)
        keep = (mt == 1).flatten(1).any(1)
        results[name] = {**evaluate_maps(logits, maps, yt, mt), **confusion_at_best(maps[keep], mt[keep])}
    keep = (mt == 1).flatten(1).any(1)
    _, maps = predict_maps(classifier, xt, yt)
    results["GAP (classifier CAM)"].update(confusion_at_best(maps[keep], mt[keep]))
    print(f"{'method':22s} {'acc':>6s} {'PxAP':>6s} {'base':>6s} {'TP*':>6s} {'FN*':>6s} {'FP*':>6s} {'TN*':>6s}")
    for name, r in results.items():
        print(f"{name:22s} {r['accuracy']:6.1f} {r['pxap']:6.1f} {r['pxap_baseline']:6.1f} "
              f"{r['TP*']:6.1f} {r['FN*']:6.1f} {r['FP*']:6.1f} {r['TN*']:6.1f}")
    print(f"total time {time.perf_counter() - t0:.1f} s")
    return results


if __name__ == "__main__":
    main()
