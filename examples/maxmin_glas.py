"""Train MaxMin (WILDCAT localizer + classifier, recursive erasing) on the synthetic GlaS benchmark.

Recalibrates the batch-norm statistics after training, then prints the accuracy of ``C`` on ``x ⊙ R⁺`` and of
the localizer, PxAP of the localizer CAMs and of the mask ``R⁺`` against the all-ones baseline, F1⁺/F1⁻ of the
mask binarised at 0.5, and saves an overlay figure of a few masks.

Usage: ``python examples/maxmin_glas.py [--quick] [--passes 4] [--out maxmin_glas.png]``
"""

from __future__ import annotations

import argparse
import time

import torch

import wsolkit
from wsolkit.data import SyntheticHistology
from wsolkit.training import evaluate_maps, predict_maps


def f1(pred: torch.Tensor, gt: torch.Tensor) -> float:
    """F1 (Dice) in percent of two boolean masks."""
    tp = int((pred & gt).sum())
    fp, fn = int((pred & ~gt).sum()), int((~pred & gt).sum())
    return 200.0 * tp / max(2 * tp + fp + fn, 1)


def train(model, images, labels, epochs: int, batch_size: int, lr: float, seed: int = 0) -> None:
    """The loop shared by every method: back-propagate each yielded step (up to `passes` localizer passes, then C's)."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * -(-len(images) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    model.train()
    for epoch in range(epochs):
        perm = torch.randperm(len(images), generator=g)
        logs = []
        for i in range(0, len(images), batch_size):
            idx = perm[i : i + batch_size]
            x = images[idx]
            if torch.rand(1, generator=g) < 0.5:  # random flips
                x = x.flip(-1)
            opt.zero_grad(set_to_none=True)
            terms = {"loss": 0.0, "steps": 0}
            for step in model.training_steps(wsolkit.data.preprocessing(model)(x), labels[idx]):
                step.total.backward()
                terms["loss"] += float(step.total.detach())
                terms["steps"] += 1
                terms.update({k: float(v) for k, v in step.terms.items() if k in ("pos", "neg", "loc")})
            logs.append(terms)
            opt.step()
            sched.step()
        mean = {k: sum(float(d[k]) for d in logs) / len(logs) for k in ("loss", "pos", "neg", "loc", "steps")}
        print(f"epoch {epoch + 1}: " + " ".join(f"{k} {v:.3f}" for k, v in mean.items()), flush=True)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny run (< 40 s)")
    p.add_argument("--passes", type=int, default=4, help="localizer passes of the erasing loop (nbr_times_erase)")
    p.add_argument("--out", default=None, help="save an overlay figure here (needs matplotlib)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    size, n, epochs = (64, 64, 2) if a.quick else (64, 240, 8)
    train_set = SyntheticHistology("glas", "train", n=n, size=size, seed=0).tensors()
    images, labels, masks = SyntheticHistology("glas", "test", n=32 if a.quick else 80, size=size, seed=1).tensors()
    torch.manual_seed(0)
    model = wsolkit.create_method("maxmin", 2, backbone=wsolkit.create_backbone("smallcnn", output_stride=8, width=16),
                                  passes=a.passes)
    t = time.perf_counter()
    train(model, train_set[0], train_set[1], epochs=epochs, batch_size=32, lr=3e-3)
    print(f"trained in {time.perf_counter() - t:.0f} s")
    # batch-norm running statistics of M (on x) and C (on x ⊙ R+) as exact averages with the final weights
    model.recalibrate_statistics(wsolkit.data.preprocessing(model)(train_set[0]), batch_size=32)
    model.eval()
    logits, cams = predict_maps(model, images, labels)  # localizer CAMs of the true class
    res = evaluate_maps(logits, cams, labels, masks)

    def mask_fn(m, x, y):
        out = m(x)
        return out.logits, out.aux["mask"][:, None]

    _, mask_maps = predict_maps(model, images, labels, cam_fn=mask_fn)  # R+ (min-max normalised for PxAP)
    res_mask = evaluate_maps(logits, mask_maps, labels, masks)
    with torch.no_grad():
        prep = wsolkit.data.preprocessing(model)
        outs = [model(prep(images[i : i + 32])) for i in range(0, len(images), 32)]
    r = torch.cat([o.aux["mask"] for o in outs])
    loc_pred = torch.cat([o.aux["localizer_logits"] for o in outs]).argmax(1)
    pred, gt = r >= 0.5, masks == 1
    out = {
        "accuracy": res["accuracy"],
        "accuracy_localizer": 100.0 * float((loc_pred == labels).float().mean()),
        "pxap_cams": res["pxap"],
        "pxap_mask": res_mask["pxap"],
        "pxap_baseline": res["pxap_baseline"],
        "f1_pos": f1(pred, gt),
        "f1_neg": f1(~pred, ~gt),
    }
    print(" ".join(f"{k} {v:.1f}" for k, v in out.items()))
    if a.out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(3, 4, figsize=(8, 6))
        for j in range(4):
            axes[0, j].imshow(images[j].permute(1, 2, 0).numpy())
            axes[1, j].imshow(masks[j].numpy(), cmap="gray", vmin=0, vmax=1)
            axes[2, j].imshow(r[j].numpy(), cmap="jet", vmin=0, vmax=1)
        for ax, title in zip(axes[:, 0], ("image", "ground truth", "mask R+"), strict=True):
            ax.set_ylabel(title)
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
        fig.tight_layout()
        fig.savefig(a.out, dpi=80)
        print(f"saved {a.out}")
    return out


if __name__ == "__main__":
    main()
