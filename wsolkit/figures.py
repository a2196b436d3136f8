"""Render every figure of the docs from the synthetic benchmark, with the library itself (fixed seeds, CPU).

One command regenerates them all::

    python -m wsolkit.figures --out docs/img                 # every figure
    python -m wsolkit.figures --out /tmp/img --only grid,metrics --cache /tmp/wsolkit-fig-cache

Training the 20 small models is most of the time (F-CAM / NEGEV's CRF, ACoL and MaxMin's erasing passes dominate);
``--cache DIR`` keeps their weights, so that re-rendering a figure retrains nothing.

Each figure is one function ``figure_<name>(zoo, out)``; the models are trained once by a :class:`Zoo` (the shared
loop, :func:`wsolkit.training.fit`, over a DataLoader) and reused by every figure that shows them. Maps come from
one function, :func:`compute_maps`; PxAP is measured with :func:`wsolkit.metrics.pxap` on the test images that hold
foreground pixels, with the map of the true class (the protocol). The budget is small on purpose (:data:`BUDGET`:
64 px images, a small CNN, a few epochs) and is printed on every figure that shows a number; the numbers are
those of this budget, not of the method table of ``docs/benchmarks.md``. Needs matplotlib (``wsolkit[viz]``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

import wsolkit
from wsolkit.data import SyntheticHistology

__all__ = ["BUDGET", "Budget", "FIGURES", "Zoo", "compute_maps", "main", "pxap_of"]


@dataclass(frozen=True)
class Budget:
    """The training budget of every model of the figures (one per kind)."""

    size: int = 64
    n_train: int = 192
    n_test: int = 64
    epochs: int = 6
    batch_size: int = 16
    width: int = 8
    lr: float = 3e-3
    seed: int = 0

    def text(self) -> str:
        """One line for a caption."""
        return (f"synthetic test split, {self.size} px, small CNN (width {self.width}) trained on {self.n_train} "
                f"images × {self.epochs} epochs, seed {self.seed}")


BUDGET = Budget()
#: options of the trainable methods shown (the methods' defaults otherwise)
OPTIONS: dict[str, dict[str, Any]] = {"maxmin": {"passes": 3}}


class _Augmented(Dataset):
    """Model-ready images with seeded flips / transposes (histology has no canonical orientation)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, seed: int):
        self.images, self.labels, self.g = images, labels, torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, r = self.images[i], torch.rand(3, generator=self.g)
        if r[0] < 0.5:
            x = x.flip(-1)
        if r[1] < 0.5:
            x = x.flip(-2)
        if r[2] < 0.5:
            x = x.transpose(-1, -2)
        return x, self.labels[i]


def train(method: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, budget: Budget) -> torch.nn.Module:
    """Train ``method`` with :func:`wsolkit.training.fit` over a DataLoader (AdamW, one-cycle schedule)."""
    from wsolkit.training import fit

    torch.manual_seed(budget.seed)
    prep = wsolkit.data.preprocessing(method)
    loader = DataLoader(_Augmented(prep(images), labels, budget.seed), batch_size=budget.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(budget.seed))
    params = [p for p in method.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=budget.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=budget.lr, total_steps=budget.epochs * len(loader),
                                                pct_start=0.15)
    fit(method, loader, opt, epochs=budget.epochs, scheduler=sched)  # its hooks step barriers, recalibrate MaxMin
    return method.eval()


def compute_maps(method: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                 batch: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits (N, K), maps (N, H, W) in [0, 1])`` of the true classes: the one place the figures compute maps.

    ``images`` in ``[0, 1]``; the method's own preprocessing is applied and the maps come from
    :func:`wsolkit.localize` (target-class map, bilinear upsampling, per-image min-max).
    """
    from wsolkit.training import predict_maps

    return predict_maps(method, images, labels, batch_size=batch, target="label")  # through wsolkit.localize


def pxap_of(maps: torch.Tensor, masks: torch.Tensor) -> float:
    """PxAP (percent) over the images that hold foreground pixels (the protocol)."""
    keep = (masks == 1).flatten(1).any(1)
    return float(wsolkit.metrics.pxap(maps[keep], masks[keep]))


def baseline_pxap(masks: torch.Tensor) -> float:
    """PxAP of the all-ones map (the fraction of foreground pixels), the floor every method must clear."""
    keep = (masks == 1).flatten(1).any(1)
    return pxap_of(torch.zeros(masks[keep].shape), masks[keep])


class Zoo:
    """Trained models and test data per kind, built on first use (and cached on disk with ``cache``)."""

    def __init__(self, budget: Budget = BUDGET, cache: str | Path | None = None, log: Callable = print):
        self.budget, self.log = budget, log
        self.cache = Path(cache) if cache is not None else None
        self._data: dict[str, tuple] = {}
        self._models: dict[tuple[str, str], torch.nn.Module] = {}
        self._maps: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}

    def data(self, kind: str, split: str = "train") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(images, labels, masks)`` of a split (test images from another seed than the training ones)."""
        key = f"{kind}/{split}"
        if key not in self._data:
            b = self.budget
            n, seed = (b.n_train, b.seed) if split == "train" else (b.n_test, b.seed + 1)
            self._data[key] = SyntheticHistology(kind, split, n=n, size=b.size, seed=seed).tensors()
        return self._data[key]

    def _backbone(self):
        return wsolkit.create_backbone("smallcnn", output_stride=8, width=self.budget.width)

    def _cache_file(self, kind: str, name: str) -> Path | None:
        if self.cache is None:
            return None
        tag = hashlib.sha1(json.dumps([asdict(self.budget), OPTIONS.get(name, {})]).encode()).hexdigest()[:10]
        return self.cache / f"{kind}-{name.replace('+', 'p')}-{tag}.pt"

    def model(self, kind: str, name: str) -> torch.nn.Module:
        """The method ``name`` for ``kind``: trained (bottom-up methods, decoders) or over the trained GAP."""
        key = (kind, name)
        if key in self._models:
            return self._models[key]
        info = wsolkit.method_info(name)
        torch.manual_seed(self.budget.seed)
        if info["needs"] == "classifier":
            method = wsolkit.create_method(name, classifier=self.model(kind, "gap"), **self._decoder_options(name))
        else:
            method = wsolkit.create_method(name, 2, backbone=self._backbone(), **OPTIONS.get(name, {}))
        if getattr(method, "trainable", True):
            file = self._cache_file(kind, name)
            if file is not None and file.is_file():
                method.load_state_dict(torch.load(file, weights_only=True))
                method.eval()
            else:
                t0 = time.perf_counter()
                x, y, _ = self.data(kind, "train")
                train(method, x, y, self.budget)
                self.log(f"  trained {kind}/{name} in {time.perf_counter() - t0:.0f} s")
                if file is not None:
                    file.parent.mkdir(parents=True, exist_ok=True)
                    torch.save(method.state_dict(), file)
        self._models[key] = method.eval()
        return self._models[key]

    def _decoder_options(self, name: str) -> dict[str, Any]:
        if name not in ("fcam", "negev"):
            return {}
        from wsolkit.decoders import DenseCRFLoss, FCAMSeeder, NEGEVSeeder

        crf = DenseCRFLoss(weight=5e-8, sigma_rgb=15.0, sigma_xy=100.0, scale_factor=0.5, method="grid")
        if name == "fcam":
            return {"crf": crf, "seeder": FCAMSeeder(n_fg=20, n_bg=20, min_p=0.3, erosion=3, seed=self.budget.seed)}
        return {"crf": crf, "seeder": NEGEVSeeder(n_fg=20, n_bg=20, min_p=0.5, seed=self.budget.seed),
                "negative_classes": (0,)}

    def test_maps(self, kind: str, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits, maps)`` of the method on the whole test split (computed once)."""
        key = (kind, name)
        if key not in self._maps:
            xt, yt, _ = self.data(kind, "test")
            self._maps[key] = compute_maps(self.model(kind, name), xt, yt)
        return self._maps[key]

    def pxap(self, kind: str, name: str) -> float:
        """PxAP of the method on the test split."""
        return pxap_of(self.test_maps(kind, name)[1], self.data(kind, "test")[2])

    def accuracy(self, kind: str, name: str) -> float:
        """Classification accuracy (percent) on the test split."""
        logits = self.test_maps(kind, name)[0]
        return 100.0 * float((logits.argmax(1) == self.data(kind, "test")[1]).float().mean())

    def rows(self, kind: str, n: int = 2) -> list[int]:
        """Test images to show: with foreground, correctly classified by GAP, alternating the classes when both
        have foreground (glas), else the positive class (camelyon)."""
        _, yt, mt = self.data(kind, "test")
        logits, _ = self.test_maps(kind, "gap")
        ok = ((mt == 1).flatten(1).sum(1) > 0.05 * mt[0].numel()) & (logits.argmax(1) == yt)
        picks: list[int] = []
        classes = [c for c in (1, 0) if bool((ok & (yt == c)).any())]
        i = 0
        while len(picks) < n and classes:
            c = classes[i % len(classes)]
            cand = [int(j) for j in torch.nonzero(ok & (yt == c))[:, 0] if int(j) not in picks]
            if cand:
                picks.append(cand[0])
            else:
                classes.remove(c)
            i += 1
        return picks or [0]


# ---------------------------------------------------------------------------------------------------- figures

SCALE = 3  # cells are drawn at 3x the image size so that contours are fine


def _overlay(image: Any, cam: Any, mask: Any = None, alpha: float = 0.6) -> np.ndarray:
    """:func:`wsolkit.viz.overlay` with the figures' conventions: viridis, white ground-truth contour, upsampled."""
    import cv2

    from wsolkit.viz import overlay

    img = image.permute(1, 2, 0).numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if img.dtype != np.uint8:
        img = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
    h, w = img.shape[:2]
    up = (w * SCALE, h * SCALE)
    cam = cam.numpy() if isinstance(cam, torch.Tensor) else np.asarray(cam, np.float32)
    out_mask = None
    if mask is not None:
        m = mask.numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
        out_mask = cv2.resize((m == 1).astype(np.uint8), up, interpolation=cv2.INTER_NEAREST)
    return overlay(cv2.resize(img, up, interpolation=cv2.INTER_CUBIC),
                   cv2.resize(cam.astype(np.float32), up, interpolation=cv2.INTER_LINEAR), out_mask, alpha=alpha,
                   colormap=cv2.COLORMAP_VIRIDIS, contour_color=(255, 255, 255), contour_thickness=SCALE - 1)


def _save(fig: Any, path: Path, dpi: int = 100) -> Path:
    """Write a small PNG: rendered by matplotlib, then reduced to a 256-colour palette (Pillow, a matplotlib
    dependency) so that every figure stays well under 300 KB."""
    import io

    import matplotlib.pyplot as plt
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.05)
    plt.close(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(buf) as im:
        im.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            path, format="PNG", optimize=True)
    return path


NAMES = {"gap": "GAP", "max": "MAX", "lse": "LSE", "wildcat": "WILDCAT", "prm": "PRM", "deepmil": "Deep MIL",
         "maxmin": "MaxMin", "fcam": "F-CAM", "negev": "NEGEV", "cam": "CAM", "gradcam": "Grad-CAM",
         "gradcam++": "Grad-CAM++", "smoothgradcam++": "Smooth-\nGrad-CAM++", "xgradcam": "XGrad-CAM",
         "layercam": "LayerCAM", "scorecam": "Score-CAM", "sscam": "SS-CAM", "iscam": "IS-CAM",
         "ablationcam": "Ablation-CAM", "has": "HaS", "adl": "ADL", "acol": "ACoL", "spg": "SPG", "cutmix": "CutMix"}


def _method_grid(zoo: Zoo, kinds: Sequence[str], methods: Sequence[str], out: Path, title: str,
                 per_kind: int = 2, pxap: Callable[[str, str], str] | None = None, cell: float = 1.1) -> Path:
    """Rows: test images of each kind with the ground-truth contour; columns: methods; PxAP under each column."""
    from wsolkit.data.synthetic import CLASS_NAMES
    from wsolkit.viz import map_grid

    images, masks, labels, cols = [], [], [], {NAMES.get(m, m): [] for m in methods}
    for kind in kinds:
        xt, yt, mt = zoo.data(kind, "test")
        idx = zoo.rows(kind, per_kind)
        images.append(xt[idx])
        masks.append(mt[idx])
        labels += [f"{kind}\n{CLASS_NAMES[kind][int(yt[i])]}" for i in idx]
        for m in methods:
            cols[NAMES.get(m, m)].append(zoo.test_maps(kind, m)[1][idx])
    pxap = pxap or (lambda kind, m: f"{zoo.pxap(kind, m):.1f}")
    prefix = "" if len(kinds) > 1 else "PxAP "  # several kinds: the title says the order
    captions = {NAMES.get(m, m): prefix + " / ".join(pxap(k, m) for k in kinds) for m in methods}
    base = " / ".join(f"{baseline_pxap(zoo.data(k, 'test')[2]):.1f}" for k in kinds)
    fig = map_grid(torch.cat(images), {k: torch.cat(v) for k, v in cols.items()}, torch.cat(masks),
                   captions=captions, row_labels=labels, scale=3, cell=cell, fontsize=9,
                   title=f"{title}\nPxAP ({' / '.join(kinds)}) under each column, all-ones baseline {base}\n"
                         f"{zoo.budget.text()}")
    return _save(fig, out)


def figure_grid(zoo: Zoo, out: Path) -> Path:
    """The home page / README grid: glas and camelyon test images × methods of every family."""
    methods = ("gap", "wildcat", "maxmin", "fcam", "negev", "gradcam", "gradcam++", "scorecam")
    return _method_grid(zoo, ("glas", "camelyon"), methods, out / "methods_grid.png",
                        "Maps of the true class over synthetic test images (white: ground-truth contour)", cell=1.15)


def figure_heads(zoo: Zoo, out: Path) -> Path:
    """The pooling heads side by side (glas)."""
    return _method_grid(zoo, ("glas",), ("gap", "max", "lse", "wildcat", "prm", "deepmil"), out / "heads_maps.png",
                        "Bottom-up pooling heads, same backbone and budget", per_kind=3)


def figure_refinement(zoo: Zoo, out: Path) -> Path:
    """Erasing / refinement methods beside GAP (glas)."""
    return _method_grid(zoo, ("glas",), ("gap", "has", "adl", "acol", "spg", "cutmix"), out / "refinement_maps.png",
                        "CAM refinement (erasing, dropout, mixing) beside GAP", per_kind=3)


#: explainers whose PxAP over the whole test split is too slow for the figure budget (noise × channels passes)
SLOW_EXPLAINERS = ("sscam", "iscam")


def figure_explainers(zoo: Zoo, out: Path) -> Path:
    """Every explainer over one trained GAP classifier (glas)."""
    methods = ("cam", "gradcam", "gradcam++", "smoothgradcam++", "xgradcam", "layercam", "scorecam", "sscam",
               "iscam", "ablationcam")
    kind = "glas"
    idx = zoo.rows(kind, 3)
    xt, yt, mt = zoo.data(kind, "test")
    from wsolkit.viz import map_grid

    cols, captions = {}, {}
    for m in methods:
        method = zoo.model(kind, m)
        if m in SLOW_EXPLAINERS:
            maps = compute_maps(method, xt[idx], yt[idx])[1]
            captions[NAMES[m]] = f"PxAP {pxap_of(maps, mt[idx]):.1f}*"
        else:
            maps = zoo.test_maps(kind, m)[1][idx]
            captions[NAMES[m]] = f"PxAP {zoo.pxap(kind, m):.1f}"
        cols[NAMES[m]] = maps
    fig = map_grid(xt[idx], cols, mt[idx], captions=captions, scale=3, cell=1.15, fontsize=9,
                   title="Top-down explainers over one trained GAP classifier (glas)\nPxAP on the test split "
                         f"(*SS-CAM, IS-CAM: on the 3 images shown)\n{zoo.budget.text()}")
    return _save(fig, out / "explainers_maps.png")


def figure_maxmin_steps(zoo: Zoo, out: Path) -> Path:
    """MaxMin's recursive erasing (the authors' loop) on one image: erased input, each pass's mask, accumulated."""
    import matplotlib.pyplot as plt

    from wsolkit.maxmin import accumulate_mask, localizer_ce, trust_coefficients

    kind = "glas"
    model = zoo.model(kind, "maxmin")
    xt, yt, mt = zoo.data(kind, "test")
    i = zoo.rows(kind, 1)[0]
    x, y, m = xt[i : i + 1], yt[i : i + 1], mt[i]
    prep = wsolkit.data.preprocessing(model)
    size = tuple(x.shape[-2:])
    steps = []
    with torch.no_grad():
        # the erasing loop of MaxMin.training_steps for one image, keeping each pass (authors' loop by default)
        authors = model.erasing == "authors"
        xs, raw, acc, loss0, alive = prep(x), x, torch.zeros(1, 1, *size), None, None
        n_passes = max(model.passes, 1)
        for t in range(n_passes):
            o = model.localizer(xs)
            r = model.mask(o, size)
            psi, alive_t = trust_coefficients(o.logits, y, t, model.sigma, loss0,
                                              alive=alive if (authors and t > 0) else None,
                                              history="label" if authors else "trust")
            if t == 0:
                loss0 = localizer_ce(o.logits, y, reduction="none")
            acc, alive = accumulate_mask(acc, r, psi), alive_t
            steps.append((raw[0], r[0, 0], acc[0, 0].clone(), float(psi[0])))
            if not bool(alive.any()):
                break
            if t < n_passes - 1 and (not authors or float(psi[0]) != 0.0):  # authors: untrusted keeps its image
                xs, raw = xs * (1 - acc), raw * (1 - acc)
        final = model(prep(x)).aux["mask"][0]
    n = len(steps)
    fig, axes = plt.subplots(3, n + 1, figsize=(1.5 * (n + 1), 4.9), squeeze=False)
    zero = np.zeros(size, np.float32)
    for t, (img, r, a, psi) in enumerate(steps):
        axes[0, t].imshow(_overlay(img, zero, m, alpha=0.0))
        axes[0, t].set_title(f"pass {t + 1}: x*\nΨ = {psi:.2f}", fontsize=8)
        axes[1, t].imshow(_overlay(x[0], r, m))
        axes[2, t].imshow(_overlay(x[0], a, m))
    axes[0, n].imshow(_overlay(x[0], zero, m, alpha=0.0))
    axes[0, n].set_title("input, ground truth", fontsize=8)
    axes[1, n].imshow(_overlay(x[0], final, m))
    axes[1, n].set_title("inference R⁺", fontsize=8)
    axes[2, n].imshow(m.numpy(), cmap="gray", vmin=0, vmax=1)
    axes[2, n].set_title("ground truth", fontsize=8)
    axes[1, 0].set_ylabel("mask R⁺ᵘ", fontsize=8)
    axes[2, 0].set_ylabel("accumulated R⁺*", fontsize=8)
    axes[0, 0].set_ylabel("erased input", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"MaxMin recursive erasing ({model.passes} passes, trained, glas test image; erased pixels black, "
                 f"viridis, ground truth in white)\n"
                 f"PxAP of the localizer CAMs {zoo.pxap(kind, 'maxmin'):.1f} on the test split",
                 fontsize=8)
    fig.tight_layout()
    return _save(fig, out / "maxmin_erasing.png")


def figure_decoder_seeds(zoo: Zoo, out: Path) -> Path:
    """F-CAM / NEGEV: the classifier's CAM → the seeds drawn from it → the decoder's full-resolution map."""
    import matplotlib.pyplot as plt

    from wsolkit.decoders.seeds import seed_map

    kind = "camelyon"
    xt, yt, mt = zoo.data(kind, "test")
    idx = zoo.rows(kind, 2)
    cols = ["image", "classifier CAM", "F-CAM seeds", "F-CAM map", "NEGEV seeds", "NEGEV map"]
    fig, axes = plt.subplots(len(idx), len(cols), figsize=(1.55 * len(cols), 1.6 * len(idx) + 0.7), squeeze=False)
    zero = np.zeros(tuple(xt.shape[-2:]), np.float32)
    for r, i in enumerate(idx):
        x, y, m = xt[i : i + 1], yt[i : i + 1], mt[i]
        axes[r, 0].imshow(_overlay(x[0], zero, m, alpha=0.0))
        for name, c in (("fcam", 2), ("negev", 4)):
            method = zoo.model(kind, name)
            with torch.no_grad():
                o = method(wsolkit.data.preprocessing(method)(x))
                cam = seed_map(o.aux["classifier_cams"].float(), y, tuple(x.shape[-2:]))
                seeds = method.objective.seeder(cam)[0]
            if c == 2:
                axes[r, 1].imshow(_overlay(x[0], cam[0], m))
            import cv2

            canvas = np.ascontiguousarray(_overlay(x[0] * 0.6 + 0.2, zero, m, alpha=0.0))
            for value, colour in ((1, (230, 159, 0)), (0, (0, 114, 178))):  # fg orange, bg blue (Okabe–Ito)
                for yy, xx in torch.nonzero(seeds == value).tolist():
                    centre = (int((xx + 0.5) * SCALE), int((yy + 0.5) * SCALE))
                    cv2.circle(canvas, centre, SCALE, colour, -1)
            axes[r, c].imshow(canvas)
            axes[r, c + 1].imshow(_overlay(x[0], zoo.test_maps(kind, name)[1][i], m))
    for c, t in enumerate(cols):
        title = t
        if t.endswith("map"):
            title += f"\nPxAP {zoo.pxap(kind, t.split()[0].lower().replace('-', '')):.1f}"
        if t == "classifier CAM":
            title += f"\nPxAP {zoo.pxap(kind, 'gap'):.1f}"
        axes[0, c].set_title(title, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("F-CAM / NEGEV on camelyon: seeds (orange: foreground, blue: background) drawn from the frozen "
                 f"classifier's CAM train a decoder\n"
                 f"(viridis, ground truth in white; PxAP on the test split; {zoo.budget.text()})",
                 fontsize=7)
    fig.tight_layout()
    return _save(fig, out / "fcam_negev_seeds.png")


def figure_metrics(zoo: Zoo, out: Path) -> Path:
    """TP/FN/FP/TN(τ) curves and the precision–recall curve of GAP on glas, the operating threshold marked."""
    import matplotlib.pyplot as plt

    from wsolkit.metrics import localization_metrics
    from wsolkit.viz import plot_precision_recall, plot_threshold_curves

    kind = "glas"
    _, yt, mt = zoo.data(kind, "test")
    keep = (mt == 1).flatten(1).any(1)
    maps = zoo.test_maps(kind, "gap")[1]
    r = localization_metrics(maps[keep][:, None], mt[keep], None)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    plot_threshold_curves(r, ax=axes[0], threshold=r["threshold"],
                          title=f"TP* {r['tp_star']:.1f}  FN* {r['fn_star']:.1f}  FP* {r['fp_star']:.1f}  "
                                f"TN* {r['tn_star']:.1f}")
    plot_precision_recall(r, ax=axes[1], label=f"GAP, PxAP {r['pxap']:.1f}", title="pixel precision–recall")
    fig.suptitle(f"GAP on glas ({int(keep.sum())} test images with foreground; operating τ maximises mIoU)",
                 fontsize=9)
    fig.tight_layout()
    return _save(fig, out / "metrics_curves.png")


def figure_sanity(zoo: Zoo, out: Path) -> Path:
    """Model-randomisation sanity check of Grad-CAM over the glas GAP: maps per cascade step + Spearman/SSIM."""
    import matplotlib.pyplot as plt

    from wsolkit.metrics import model_randomization
    from wsolkit.viz import plot_sanity

    kind = "glas"
    xt, yt, mt = zoo.data(kind, "test")
    shown = zoo.rows(kind, 2)
    others = [int(i) for i in torch.nonzero((mt == 1).flatten(1).any(1))[:, 0] if int(i) not in shown]
    sel = (shown + others)[:12]  # the check is averaged over these; the first two are drawn
    gap = zoo.model(kind, "gap")
    res = model_randomization(lambda clf: wsolkit.create_method("gradcam", classifier=clf), gap,
                              wsolkit.data.preprocessing(gap)(xt[sel]), labels=yt[sel], keep_maps=True)
    steps = res.steps
    k = len(steps)
    show = list(range(k)) if k <= 8 else sorted({0, 1, *np.linspace(2, k - 1, 6).round().astype(int).tolist()})
    short = [name.replace("backbone.body.", "").replace("features.", "conv ") for name in steps]
    width = 1.0 * len(show) + 6.0
    fig = plt.figure(figsize=(width, 3.3))
    split = 1.0 * len(show) / width
    gs = fig.add_gridspec(len(shown), len(show), left=0.01, right=split, top=0.78, bottom=0.08, wspace=0.05,
                          hspace=0.08)
    for r, i in enumerate(shown):
        for c, step in enumerate(show):
            ax = fig.add_subplot(gs[r, c])
            ax.imshow(_overlay(xt[i], res.maps[step][r], mt[i]))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{step}: {short[step]}" if step else "trained", fontsize=7)
    gc = fig.add_gridspec(1, 2, left=split + 0.06, right=0.99, top=0.78, bottom=0.17, wspace=0.2)
    ax0 = fig.add_subplot(gc[0, 0])
    ax1 = fig.add_subplot(gc[0, 1], sharey=ax0)
    plot_sanity({"Grad-CAM": res}, ax=(ax0, ax1))
    for ax in (ax0, ax1):
        ax.set_xticks(range(k), [str(j) if j % 3 == 0 or j == k - 1 else "" for j in range(k)], rotation=0,
                      fontsize=7)
        ax.set_xlabel("layers randomised (top first)", fontsize=7)
        ax.title.set_fontsize(8)
    ax0.set_ylabel("similarity to the trained maps", fontsize=7)
    fig.suptitle(f"Sanity check (Adebayo et al. 2018): Grad-CAM over the glas GAP as layers are re-initialised from "
                 f"the top\n(cascade step: last layer randomised; curves: mean over {len(sel)} test images; "
                 f"passed: {res.passed})",
                 fontsize=8)
    return _save(fig, out / "sanity_cascade.png")


def figure_wsi(zoo: Zoo, out: Path) -> Path:
    """A whole synthetic slide: stitched heatmap over the thumbnail with the annotation contour."""
    import tempfile

    import cv2
    import matplotlib.pyplot as plt

    from wsolkit.data.camelyon import synthetic_slide
    from wsolkit.wsi import heatmap, open_slide, slide_metrics, write_pyramidal_tiff
    from wsolkit.wsi.export import thumbnail

    b = zoo.budget
    rng = np.random.default_rng(b.seed)
    w, h = 1024, 768
    image_r, mask_r = synthetic_slide(w, h, metastatic=True, seed=3, num_levels=1)
    image = image_r.read_region((0, 0), 0, (w, h))[:, :, :3]
    mask = mask_r.read_region((0, 0), 0, (w, h))[:, :, 0] > 0
    torch.manual_seed(b.seed)
    method = wsolkit.create_method("gap", 2, backbone=wsolkit.create_backbone("smallcnn", output_stride=8,
                                                                                width=b.width))
    n = b.n_train * b.epochs // 2
    xs, ys = rng.integers(0, w - 64, n), rng.integers(0, h - 64, n)
    px = torch.from_numpy(np.stack([image[y : y + 64, x : x + 64] for x, y in zip(xs, ys)])).permute(0, 3, 1, 2)
    py = torch.tensor([bool(mask[y : y + 64, x : x + 64].mean() > 0.2) for x, y in zip(xs, ys)]).long()
    t0 = time.perf_counter()
    train(method, px.float() / 255, py, Budget(**{**asdict(b), "n_train": n, "epochs": 2}))
    zoo.log(f"  trained the slide GAP on {n} patches in {time.perf_counter() - t0:.0f} s")
    with tempfile.TemporaryDirectory() as tmp:
        path = write_pyramidal_tiff(Path(tmp) / "slide.tif", image, num_levels=2, tile=256, mpp=0.25)
        hm = heatmap(path, method, mpp=0.5, tile=128, overlap=32, downsample=2, num_workers=0, target=1)
        # the blended stitch leaves float round-off just outside [0, 1]
        scores = slide_metrics(np.clip(np.asarray(hm, dtype=np.float32), 0, 1), mask_from(mask, hm.shape))
        thumb, _ = thumbnail(open_slide(path), 1024)
    heat = cv2.resize(np.asarray(hm, dtype=np.float32), (thumb.shape[1], thumb.shape[0]),
                      interpolation=cv2.INTER_LINEAR)
    ann = cv2.resize(mask.astype(np.uint8), (thumb.shape[1], thumb.shape[0]), interpolation=cv2.INTER_NEAREST)
    from wsolkit.viz import overlay

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.9))
    axes[0].imshow(overlay(thumb, np.zeros(heat.shape, np.float32), ann, alpha=0.0, contour_color=(0, 0, 0)))
    axes[0].set_title("slide thumbnail, annotation contour", fontsize=9)
    axes[1].imshow(overlay(thumb, heat, ann, alpha=0.55, colormap=cv2.COLORMAP_VIRIDIS,
                           contour_color=(255, 255, 255)))
    axes[1].set_title(f"stitched heatmap (viridis), PxAP {scores['pxap']:.1f}", fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"wsolkit.wsi.heatmap on a synthetic {w}×{h} slide read at 0.5 mpp (tiles 128, overlap 32), "
                 f"GAP trained on {n} patches", fontsize=9)
    fig.tight_layout()
    return _save(fig, out / "wsi_heatmap.png")


def mask_from(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The level-0 annotation mask resized (nearest) to a heatmap's shape."""
    import cv2

    return cv2.resize(mask.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def figure_taxonomy(zoo: Zoo, out: Path) -> Path:
    """The survey's taxonomy as a diagram: families → methods → module."""
    from wsolkit.viz import plot_taxonomy

    return _save(plot_taxonomy(), out / "taxonomy.png", dpi=90)


FIGURES: dict[str, Callable[[Zoo, Path], Path]] = {
    "taxonomy": figure_taxonomy,
    "grid": figure_grid,
    "metrics": figure_metrics,
    "sanity": figure_sanity,
    "explainers": figure_explainers,
    "heads": figure_heads,
    "refinement": figure_refinement,
    "maxmin": figure_maxmin_steps,
    "decoders": figure_decoder_seeds,
    "wsi": figure_wsi,
}


def main(argv: Sequence[str] | None = None) -> dict[str, Path]:
    """Command line: render the figures into ``--out``."""
    p = argparse.ArgumentParser(prog="python -m wsolkit.figures", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder of the PNG files (the docs use docs/img)")
    p.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(FIGURES)}")
    p.add_argument("--cache", default=None, help="folder where trained weights are kept between runs")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    names = list(FIGURES) if a.only is None else [n.strip() for n in a.only.split(",") if n.strip()]
    bad = [n for n in names if n not in FIGURES]
    if bad:
        p.error(f"unknown figures {bad}; choose among {list(FIGURES)}")
    torch.set_num_threads(a.threads)
    zoo, out, done = Zoo(cache=a.cache), Path(a.out), {}
    t0 = time.perf_counter()
    for name in names:
        t = time.perf_counter()
        done[name] = FIGURES[name](zoo, out)
        print(f"{name:11s} {done[name]} ({done[name].stat().st_size / 1024:.0f} KB, {time.perf_counter() - t:.0f} s)",
              flush=True)
    print(f"{len(done)} figures in {time.perf_counter() - t0:.0f} s")
    return done


if __name__ == "__main__":
    main()
