"""``wsolkit demo``: train GAP/CAM on the synthetic benchmark and report PxAP beside the all-ones baseline."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from wsolkit.cli._args import device, positive_int

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``demo`` sub-command."""
    demo = sub.add_parser("demo", help="train a GAP/CAM model on the synthetic benchmark and report PxAP")
    demo.add_argument("--kind", choices=["glas", "camelyon", "both"], default="both")
    demo.add_argument("--epochs", type=positive_int, default=None)
    demo.add_argument("--size", type=positive_int, default=96)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", default="wsolkit-demo")
    demo.add_argument("--device", type=device, default="cpu", help="cpu, cuda, cuda:N or mps")
    demo.add_argument("--quick", action="store_true", help="a smaller run (about 30 s)")
    demo.add_argument("--n-train", type=positive_int, default=None)
    demo.add_argument("--width", type=int, default=16)
    demo.add_argument("--lr", type=float, default=3e-3)
    demo.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    import cv2
    import torch

    from wsolkit.backbones import create_backbone
    from wsolkit.data import SyntheticHistology
    from wsolkit.heads import GAP
    from wsolkit.models import WSOLModel
    from wsolkit.training import evaluate_maps, fit_tensors, predict_maps
    from wsolkit.viz import overlay

    t0 = time.perf_counter()
    device = torch.device(args.device)
    quick = args.quick
    n_train = args.n_train or (200 if quick else 400)
    n_test = 64 if quick else 200
    epochs = args.epochs or (4 if quick else 8)
    torch.manual_seed(args.seed)
    kinds = ["glas", "camelyon"] if args.kind == "both" else [args.kind]
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, dict] = {}
    for kind in kinds:
        print(f"[{kind}] rendering {n_train} train / {n_test} test images at {args.size} px", flush=True)
        x, y, _ = SyntheticHistology(kind, "train", n=n_train, size=args.size, seed=args.seed).tensors()
        xt, yt, mt = SyntheticHistology(kind, "test", n=n_test, size=args.size, seed=args.seed).tensors()
        backbone = create_backbone("smallcnn", width=args.width, depth=2)  # stride-4 maps
        model = WSOLModel(backbone, GAP(backbone.out_channels, 2))
        fit_tensors(model, x, y, epochs=epochs, batch_size=32, lr=args.lr, seed=args.seed, progress=True, device=device)
        # localisation: the map of the true class (protocol); for camelyon the ROI images (metastatic)
        logits, maps = predict_maps(model, xt, yt, device=device)
        res = evaluate_maps(logits, maps, yt, mt)
        summary[kind] = {**res, "epochs": epochs, "n_train": n_train, "n_test": n_test, "size": args.size}
        print(
            f"[{kind}] accuracy {res['accuracy']:.1f}%  PxAP {res['pxap']:.2f}  "
            f"(all-ones baseline {res['pxap_baseline']:.2f}, ratio {res['pxap'] / res['pxap_baseline']:.2f}x)",
            flush=True,
        )
        kind_dir = out_dir / kind
        kind_dir.mkdir(exist_ok=True)
        for i in range(min(8, n_test)):
            vis = overlay(xt[i], maps[i], mt[i])
            cv2.imwrite(str(kind_dir / f"test_{i:03d}_label{int(yt[i])}.png"), vis[..., ::-1])
    summary["seconds"] = time.perf_counter() - t0  # type: ignore[assignment]
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote overlays and summary.json to {out_dir} in {summary['seconds']:.0f} s")
    return 0
