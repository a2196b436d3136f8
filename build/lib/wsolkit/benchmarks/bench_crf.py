"""Dense CRF loss benchmark: exact (chunked dense) vs bilateral-grid approximation, forward + backward.

Batch 8 of 224 px synthetic histology images, downscale 0.5 (112 px, N = 12544 pixels per image), σ_rgb 15,
σ_xy 100. Reports wall time of each and the relative error of the loss value and of the gradient.

    python wsolkit/benchmarks/bench_crf.py [--threads 2] [--size 224] [--batch 8]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from wsolkit.data import SyntheticHistology
from wsolkit.decoders import dense_crf_loss


def run(method: str, logits: torch.Tensor, images: torch.Tensor, step: float) -> tuple[float, torch.Tensor, float]:
    z = logits.clone().requires_grad_(True)
    t = time.perf_counter()
    loss = dense_crf_loss(torch.softmax(z, 1), images, weight=1.0, sigma_rgb=15.0, sigma_xy=100.0,
                          scale_factor=0.5, method=method, step=step)
    loss.backward()
    return time.perf_counter() - t, z.grad, float(loss.detach())


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--step", type=float, default=0.6)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    images, _, masks = SyntheticHistology("camelyon", "test", n=args.batch, size=args.size, seed=0).tensors()
    images = 255.0 * images
    g = torch.Generator().manual_seed(0)
    logits = 3.0 * F.interpolate(torch.randn(args.batch, 2, 14, 14, generator=g), size=(args.size, args.size),
                                 mode="bilinear", align_corners=False)
    t_grid, g_grid, l_grid = run("grid", logits, images, args.step)
    t_exact, g_exact, l_exact = run("exact", logits, images, args.step)
    res = {
        "exact_s": t_exact,
        "grid_s": t_grid,
        "speedup": t_exact / t_grid,
        "loss_rel_err": abs(l_grid - l_exact) / abs(l_exact),
        "grad_rel_err": float((g_grid - g_exact).norm() / g_exact.norm()),
        "grad_cosine": float(F.cosine_similarity(g_grid.flatten(), g_exact.flatten(), dim=0)),
    }
    print(f"CRF loss fwd+bwd, batch {args.batch}, {args.size} px, downscale 0.5, {args.threads} thread(s)")
    for k, v in res.items():
        print(f"  {k:13s} {v:.4g}")
    return res


if __name__ == "__main__":
    main()
