"""Table-1-like comparison of the bottom-up pooling heads on the synthetic histology benchmark.

For every pooling method and dataset (``glas``, ``camelyon``), ``wsolkit.create_method(name, 2, backbone=smallcnn)``
is trained from scratch with image labels only through ``training_steps`` (``wsolkit.training.fit``), for several
seeds, and the test maps of the true class are scored with PxAP (survey eq. 16) and the
threshold-marginalised confusion matrix TP*, FN*, FP*, TN* (survey eqs. 17-24), mean ± std over seeds. Localization
is measured on the images that contain ROI pixels (camelyon: metastatic images), as in ``wsolkit.training.evaluate``.

Usage::

    python examples/heads_table.py            # 3 seeds, 96 px, 400 training images, 8 epochs per run
    python examples/heads_table.py --quick    # smoke run of the script (one seed, two methods, glas, a few
                                              # seconds): too little training for the numbers to mean anything
    python examples/heads_table.py --heads gap,wildcat --kinds glas --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import torch

import wsolkit
from wsolkit.data import SyntheticHistology
from wsolkit.metrics import localization_histogram
from wsolkit.training import evaluate_maps, fit, predict_maps

HEADS = ["gap", "max", "lse", "wildcat", "prm", "deepmil"]
# hyper-parameters from the survey's grids (Appendix A, Table 9) where they exist
OPTIONS: dict[str, dict] = {
    "lse": {"q": 5.0},
    "wildcat": {"modalities": 5, "kmax": 0.1, "kmin": 0.1, "alpha": 0.6},
    "prm": {"window": 3},
    "deepmil": {"mid_channels": 128, "gated": False},
}


def confusion_star(maps: torch.Tensor, masks: torch.Tensor, num_thresholds: int = 1000) -> dict[str, float]:
    """TP*, FN*, FP*, TN* (survey eqs. 17-24, in percent) from the binned fg/bg counts of normalised maps.

    ``TP(τ_l)`` is the fraction of foreground pixels with ``s >= τ_l``; the marginal is
    ``100 Σ_{l=1..T} TP(τ_l) (τ_l − τ_{l−1})`` with ``τ_l = l / T`` (FN = 1 − TP, TN = 1 − FP).
    """
    fg, bg = localization_histogram(maps, masks, num_thresholds)
    # fraction of pixels with s >= tau_l, for l = 0..T: reversed cumulative sums
    tp = fg.flip(0).cumsum(0).flip(0).double() / max(int(fg.sum()), 1)
    fp = bg.flip(0).cumsum(0).flip(0).double() / max(int(bg.sum()), 1)
    step = 1.0 / num_thresholds
    tp_star = 100.0 * float(tp[1:].sum()) * step
    fp_star = 100.0 * float(fp[1:].sum()) * step
    return {"TP*": tp_star, "FN*": 100.0 - tp_star, "FP*": fp_star, "TN*": 100.0 - fp_star}


@functools.lru_cache(maxsize=8)
def _data(kind: str, split: str, n: int, size: int, seed: int) -> tuple[torch.Tensor, ...]:
    return SyntheticHistology(kind, split, n=n, size=size, seed=seed).tensors()


def run_one(name: str, kind: str, seed: int, cfg: argparse.Namespace) -> dict[str, float]:
    """Train one method and return accuracy, PxAP, baseline PxAP and the confusion marginals."""
    x, y, _ = _data(kind, "train", cfg.n_train, cfg.size, seed)
    xt, yt, mt = _data(kind, "test", cfg.n_test, cfg.size, seed)
    torch.manual_seed(seed)
    backbone = wsolkit.create_backbone("smallcnn", output_stride=8, width=cfg.width)
    method = wsolkit.create_method(name, 2, backbone=backbone, **OPTIONS.get(name, {}))
    fit(method, x, y, epochs=cfg.epochs, batch_size=32, lr=cfg.lr, seed=seed)  # the training_steps loop
    logits, maps = predict_maps(method, xt, yt)
    res = evaluate_maps(logits, maps, yt, mt)
    keep = (mt == 1).flatten(1).any(1)
    res.update(confusion_star(maps[keep], mt[keep]))
    return res


def _fmt(vals: list[float]) -> str:
    mean = statistics.fmean(vals)
    std = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{mean:5.1f} ± {std:4.1f}"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny setting for a smoke run")
    p.add_argument("--heads", default=",".join(HEADS), help=f"comma separated, from {wsolkit.list_methods()}")
    p.add_argument("--kinds", default="glas,camelyon")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--n-train", type=int, default=400)
    p.add_argument("--n-test", type=int, default=100)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--threads", type=int, default=2)
    cfg = p.parse_args(argv)
    if cfg.quick:
        cfg.size, cfg.n_train, cfg.n_test, cfg.epochs, cfg.width = 64, 32, 16, 1, 4
        cfg.seeds, cfg.kinds = "0", "glas"
        if cfg.heads == ",".join(HEADS):
            cfg.heads = "gap,wildcat"
    torch.set_num_threads(cfg.threads)
    heads = [h.strip() for h in cfg.heads.split(",") if h.strip()]
    kinds = [k.strip() for k in cfg.kinds.split(",") if k.strip()]
    seeds = [int(s) for s in cfg.seeds.split(",")]
    cols = ["accuracy", "pxap", "TP*", "FN*", "FP*", "TN*"]
    t0 = time.perf_counter()
    table: dict = {}
    for kind in kinds:
        print(
            f"\n{kind}: smallcnn(width={cfg.width}), {cfg.size} px, {cfg.n_train} train / {cfg.n_test} test images, "
            f"{cfg.epochs} epochs, seeds {seeds} (mean ± std)"
        )
        print(f"{'head':9s}" + "".join(f"{c:>15s}" for c in cols) + f"{'all-ones PxAP':>16s}")
        for head in heads:
            runs = [run_one(head, kind, s, cfg) for s in seeds]
            table[(kind, head)] = runs
            line = f"{head:9s}" + "".join(f"{_fmt([r[c] for r in runs]):>15s}" for c in cols)
            print(line + f"{_fmt([r['pxap_baseline'] for r in runs]):>16s}", flush=True)
    print(f"\ntotal time {time.perf_counter() - t0:.0f} s")
    return table


if __name__ == "__main__":
    main()
