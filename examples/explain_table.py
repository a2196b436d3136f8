"""All explainers on one trained model: localization (PxAP, TP*/FN*/FP*/TN*), faithfulness and the sanity check.

A small CNN with a GAP head is trained on the synthetic GlaS-like data; ``cam`` (its own class map) and each of the
nine explainers wrap it (``wsolkit.create_method(name, classifier=model)``) and give the raw map of the true class
for every test image that contains ROI pixels; ``wsolkit.localize`` makes the protocol's maps (``(B, H, W)``
in ``[0, 1]`` at the input size). One markdown table, one row per method:

- localization (survey eqs. 14-24): PxAP and TP*/FN*/FP*/TN* (``wsolkit.metrics.LocalizationMeter``);
- faithfulness on the model's input (its preprocessing applied): Average Drop / Increase
  (``confidence_change``), Deletion / Insertion AUC (``deletion_insertion``, zero baseline) and ROAD MoRF / LeRF /
  ``(LeRF - MoRF) / 2`` (``road``), all with the softmax probability of the true class, in percent;
- the cascading model-randomisation check (``model_randomization``, head first, then the whole backbone): mean
  Spearman correlation (signed, and of the absolute raw maps), SSIM and HOG similarity between the trained model's
  maps and the maps with every layer random, and ``SanityResult.passed`` (wsolkit's rule, the paper has none: both
  mean Spearman correlations below 0.5, i.e. the ranking changed). As in ``SanityResult.passed``, an image whose
  random-model map is constant (no ranking: Spearman NaN) counts as 0 in the means; the number of such images is
  shown as ``(k const.)``.

The all-ones map (the PxAP baseline) and a uniform-random map (a reference for the faithfulness columns) are scored
too.

    python examples/explain_table.py --quick      # well under a minute on one CPU thread (SS-CAM / IS-CAM N = 4)
    python examples/explain_table.py              # 64 px, 48 test images, N = 10 (under 10 min on 1 thread)
    python examples/explain_table.py --out table.json
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass

import torch

import wsolkit
from wsolkit.backbones import create_backbone
from wsolkit.data import SyntheticHistology
from wsolkit.metrics import LocalizationMeter, confidence_change, deletion_insertion, model_randomization, road
from wsolkit.training import fit_tensors

__all__ = ["NAMES", "TITLES", "Config", "QUICK", "FULL", "run", "markdown", "main"]

NAMES = ["cam", "gradcam", "gradcam++", "smoothgradcam++", "xgradcam", "layercam", "scorecam", "sscam", "iscam",
         "ablationcam"]
TITLES = {
    "ones": "all-ones map (baseline)", "random": "uniform-random map",
    "cam": "CAM (own weights)",
    "gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "smoothgradcam++": "Smooth-Grad-CAM++", "xgradcam": "XGrad-CAM",
    "layercam": "LayerCAM", "scorecam": "Score-CAM", "sscam": "SS-CAM", "iscam": "IS-CAM",
    "ablationcam": "Ablation-CAM",
}
# markdown columns: (key, header, format)
COLUMNS = [("pxap", "PxAP", "{:.1f}"), ("tp_star", "TP*", "{:.1f}"), ("fn_star", "FN*", "{:.1f}"),
           ("fp_star", "FP*", "{:.1f}"), ("tn_star", "TN*", "{:.1f}"), ("avg_drop", "Avg Drop ↓", "{:.1f}"),
           ("increase", "Increase ↑", "{:.1f}"), ("deletion", "Deletion ↓", "{:.1f}"),
           ("insertion", "Insertion ↑", "{:.1f}"), ("morf", "MoRF ↓", "{:.1f}"), ("lerf", "LeRF ↑", "{:.1f}"),
           ("road", "ROAD ↑", "{:.1f}"), ("spearman", "Spearman (random) ↓", "{:.2f}"),
           ("spearman_abs", "Spearman abs. (random) ↓", "{:.2f}"), ("ssim", "SSIM (random) ↓", "{:.2f}"),
           ("hog", "HOG (random) ↓", "{:.2f}"), ("sanity", "sanity", "{}"), ("seconds", "time (s)", "{:.0f}")]


@dataclass
class Config:
    """Sizes of one run (``QUICK`` for CI, ``FULL`` for the docs' table)."""

    size: int
    n_train: int
    n_test: int
    epochs: int
    width: int
    n_samples: dict  # SS-CAM / IS-CAM N
    steps: int  # deletion / insertion intervals
    percentages: tuple  # ROAD: percentages of pixels removed
    sanity_images: int  # images of the model-randomisation check (the first ones of the test set)


QUICK = Config(size=64, n_train=192, n_test=8, epochs=6, width=4, n_samples={"sscam": 4, "iscam": 4}, steps=8,
               percentages=(20, 50), sanity_images=4)
# SS-CAM with N = 10 (the paper: 35) and 64 px keep the full run under ten minutes on one CPU thread
FULL = Config(size=64, n_train=400, n_test=48, epochs=10, width=8, n_samples={"sscam": 10, "iscam": 10}, steps=20,
              percentages=(10, 30, 50, 70, 90), sanity_images=8)


def _maps(method, x: torch.Tensor, labels: torch.Tensor, batch: int) -> torch.Tensor:
    return torch.cat([wsolkit.localize(method, x[i : i + batch], labels[i : i + batch]).maps
                      for i in range(0, len(x), batch)])


def _score(model, x, labels, masks, maps, cfg: Config, batch: int = 64) -> dict:
    meter = LocalizationMeter(normalize=True)
    meter.update(maps, masks)
    loc = meter.compute()
    row = {k: float(loc[k]) for k in ("pxap", "tp_star", "fn_star", "fp_star", "tn_star")}
    row.update(confidence_change(model, x, maps, labels, batch_size=batch))
    row.update(deletion_insertion(model, x, maps, labels, steps=cfg.steps, batch_size=batch))
    row.update(road(model, x, maps, labels, percentages=cfg.percentages, batch_size=batch))
    return row


def run(cfg: Config, kind: str = "glas", seed: int = 0, batch: int = 8, log=print) -> dict:
    """Train the model, score every method; returns ``{"rows": {name: metrics}, "accuracy", "n_images", ...}``."""
    torch.manual_seed(seed)
    train = SyntheticHistology(kind, "train", n=cfg.n_train, size=cfg.size, seed=seed).tensors()
    test = SyntheticHistology(kind, "test", n=cfg.n_test, size=cfg.size, seed=seed + 1).tensors()
    model = wsolkit.create_method("gap", 2, backbone=create_backbone("smallcnn", output_stride=8, width=cfg.width))
    t0 = time.perf_counter()
    fit_tensors(model, train[0], train[1], epochs=cfg.epochs, batch_size=32, lr=3e-3, seed=seed)
    model.eval()
    log(f"trained smallcnn(width={cfg.width})+GAP on {cfg.n_train} {kind} images of {cfg.size} px in "
        f"{time.perf_counter() - t0:.1f} s")
    images, labels, masks = test
    keep = (masks == 1).flatten(1).any(1)
    images, labels, masks = images[keep], labels[keep], masks[keep]
    x = wsolkit.data.preprocessing(model)(images)
    with torch.no_grad():
        acc = 100.0 * float((model(x).logits.argmax(1) == labels).double().mean())
    log(f"{kind}: {len(images)} test images with ROI, classifier accuracy {acc:.1f}%")
    rows = {}
    ones = torch.ones(masks.shape, dtype=torch.float32)
    meter = LocalizationMeter(normalize=False)  # a constant map: no min-max (it would be undefined)
    meter.update(ones, masks)
    loc = meter.compute()
    rows["ones"] = {k: float(loc[k]) for k in ("pxap", "tp_star", "fn_star", "fp_star", "tn_star")}
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    rows["random"] = _score(model, x, labels, masks, torch.rand(masks.shape, generator=g), cfg)
    rows["random"]["seconds"] = time.perf_counter() - t0
    xs, ys = x[: cfg.sanity_images], labels[: cfg.sanity_images]
    for name in NAMES:
        t0 = time.perf_counter()
        opts = {"batch_size": 256} if name in ("scorecam", "sscam", "iscam", "ablationcam") else {}
        if name in cfg.n_samples:
            opts["n_samples"] = cfg.n_samples[name]
        method = wsolkit.create_method(name, classifier=model, **opts)
        maps = _maps(method, x, labels, batch)
        row = _score(model, x, labels, masks, maps, cfg)
        # the cascade: the GAP head (class weights), then every backbone layer (the last step: all layers random)
        res = model_randomization(lambda clf, n=name, o=opts: wsolkit.create_method(n, classifier=clf, **o),
                                  model, xs, ys, layers=["head", "backbone"], seed=seed)
        # the last row of the table: a constant map (NaN similarity) counts as 0, as in SanityResult.passed
        last = res.table()[-1]
        row.update({k: last[k] for k in ("spearman", "spearman_abs", "ssim", "hog", "constant")},
                   sanity="pass" if res.passed else "FAIL", seconds=time.perf_counter() - t0)
        rows[name] = row
        log(f"  {name}: {row['seconds']:.1f} s")
    return {"kind": kind, "seed": seed, "config": asdict(cfg), "accuracy": acc, "n_images": len(images),
            "sanity_images": len(xs), "rows": rows}


def markdown(result: dict) -> str:
    """The result as one markdown table (``—`` where a metric does not apply)."""
    head = "| method | " + " | ".join(h for _, h, _ in COLUMNS) + " |"
    lines = [head, "|---|" + "---|" * len(COLUMNS)]
    for name, row in result["rows"].items():
        cells = [f.format(row[k]) if k in row else "—" for k, _, f in COLUMNS]
        if row.get("constant"):
            cells[-2] += f" ({row['constant']} const.)"
        lines.append(f"| {TITLES[name]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small run (well under a minute on one CPU thread)")
    p.add_argument("--kind", default="glas", choices=["glas", "camelyon"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="also write the result as JSON to this path")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    result = run(QUICK if a.quick else FULL, a.kind, a.seed)
    result["seconds"] = time.perf_counter() - t0
    print(markdown(result))
    print(f"total {result['seconds']:.0f} s")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
