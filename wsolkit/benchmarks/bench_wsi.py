"""Whole-slide heatmap throughput and memory.

1. Tiles/s of :func:`wsolkit.wsi.heatmap` on a JPEG pyramidal TIFF against the bare forward of the same model on
   the same tiles already in memory (goal >= 0.8x: reading and stitching hidden behind compute).
2. Peak RSS of a heatmap streamed to zarr on a slide and on a slide 4x larger (goal: < 10 % growth), each in a
   fresh process.

Run: ``python wsolkit/benchmarks/bench_wsi.py [--quick]``; prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import wsolkit
from wsolkit.wsi import TiffSlideReader, heatmap, resolve_level, write_pyramidal_tiff
from wsolkit.wsi.tiling import TileDataset, TileGrid


def make_slide(path: Path, width: int, height: int) -> Path:
    rng = np.random.default_rng(0)
    img = np.full((height, width, 3), 240, np.uint8)
    img[:, : width * 3 // 4] = (226, 150, 196)  # tissue on three quarters of the slide
    img = np.clip(img.astype(np.int16) + rng.integers(-10, 11, img.shape), 0, 255).astype(np.uint8)
    return write_pyramidal_tiff(path, img, num_levels=3, tile=256, mpp=0.25)


def model(name: str) -> torch.nn.Module:
    return wsolkit.create_method("gap", 2, backbone=name).eval()


def throughput(path: Path, backbone: str, tile: int, batch: int, workers: int, repeats: int = 3) -> dict:
    """Bare forward and heatmap timed alternately ``repeats`` times; the medians (a loaded machine's noise hits
    both alike)."""
    m = model(backbone)
    reader = TiffSlideReader(path)
    grid = TileGrid.build(reader, resolve_level(reader, level=0), tile, 0, None)
    ds = TileDataset(reader, grid)
    tiles = torch.stack([ds[i][0] for i in range(len(ds))]).float().div_(255)
    bare, full, n = [], [], 0
    with torch.no_grad():
        m(tiles[:batch])  # warm-up
    for _ in range(repeats):
        with torch.no_grad():
            t0 = time.perf_counter()
            for i in range(0, len(tiles), batch):
                m(tiles[i : i + batch])
            bare.append(len(tiles) / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        hm = heatmap(path, m, tile=tile, overlap=0, batch_size=batch, num_workers=workers, tissue=False)
        n = len(hm.tiles)
        full.append(n / (time.perf_counter() - t0))
    b, f = float(np.median(bare)), float(np.median(full))
    return {"tiles": n, "bare_tiles_per_s": b, "heatmap_tiles_per_s": f, "ratio": f / b,
            "ratios": [x / y for x, y in zip(full, bare)]}


def _peak_mb() -> float:
    """This process's peak RSS: ``VmHWM`` (per address space, so a child started by a large parent does not inherit
    the parent's figure as ``ru_maxrss`` does after fork + exec), ``ru_maxrss`` where /proc is absent."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_child(path: str, out: str, tile: int, backbone: str) -> None:
    m = model(backbone)
    heatmap(path, m, tile=tile, overlap=tile // 8, batch_size=8, num_workers=0, tissue=True, out=out)
    print(json.dumps({"peak_rss_mb": _peak_mb()}))


def _export_child(side: int, d: str) -> None:
    """Peak RSS of exporting a ``side``² zarr heatmap as .npy, TIFF pyramid and overlay PNG."""
    import zarr

    from wsolkit.wsi import InMemorySlide, save_heatmap_tiff, save_npy, save_overlay_png

    z = zarr.open_array(f"{d}/h.zarr", mode="w", shape=(side, side), chunks=(512, 2048), dtype="float32")
    ramp = np.linspace(0, 1, side, dtype=np.float32)
    for y in range(0, side, 512):
        z[y : y + 512] = ramp[None, :] * ramp[y : y + 512, None]
    base = _peak_mb()
    slide = InMemorySlide.from_array(np.full((256, 256, 3), 220, np.uint8), num_levels=1)
    save_npy(f"{d}/h.npy", z)
    save_heatmap_tiff(f"{d}/h.tif", z, cmap="jet")
    save_overlay_png(f"{d}/o.png", z, slide)
    peak = _peak_mb()
    print(json.dumps({"before_mb": base, "peak_rss_mb": peak}))


def export_rss(side: int) -> dict:
    here = str(Path(__file__).parent)
    with tempfile.TemporaryDirectory() as d:
        code = (f"import sys; sys.path.insert(0, {here!r}); from bench_wsi import _export_child; "
                f"_export_child({side}, {d!r})")
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def peak_rss(path: Path, tile: int, backbone: str) -> float:
    here, zarr_out = str(Path(__file__).parent), str(path) + ".zarr"
    code = (f"import sys; sys.path.insert(0, {here!r}); from bench_wsi import _rss_child; "
            f"_rss_child({str(path)!r}, {zarr_out!r}, {tile}, {backbone!r})")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
    return json.loads(res.stdout.strip().splitlines()[-1])["peak_rss_mb"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="alternate bare / heatmap timings, report the medians")
    args = p.parse_args()
    side, tile, batch = (1024, 224, 8) if args.quick else (2048, 224, 16)
    with tempfile.TemporaryDirectory() as d:
        small = make_slide(Path(d) / "small.tif", side, side)
        big = make_slide(Path(d) / "big.tif", 2 * side, 2 * side)
        t = throughput(small, args.backbone, tile, batch, args.workers, 1 if args.quick else args.repeats)
        rss_small = peak_rss(small, tile, args.backbone)
        rss_big = peak_rss(big, tile, args.backbone)
    print(f"| model | tiles | bare forward (tiles/s) | heatmap (tiles/s) | ratio |\n|---|---|---|---|---|\n"
          f"| gap/{args.backbone}, {tile} px, batch {batch}, {args.workers} workers | {t['tiles']} | "
          f"{t['bare_tiles_per_s']:.1f} | {t['heatmap_tiles_per_s']:.1f} | {t['ratio']:.2f} "
          f"(runs: {', '.join(f'{r:.2f}' for r in t['ratios'])}) |")
    side_e = 2048 if args.quick else 8192
    e1, e2 = export_rss(side_e), export_rss(2 * side_e)
    print(f"\n| exported zarr heatmap (npy + TIFF pyramid + overlay) | peak RSS (MB) |\n|---|---|\n"
          f"| {side_e}² ({side_e * side_e * 4 / 2**20:.0f} MB float32) | {e1['peak_rss_mb']:.1f} |\n"
          f"| {2 * side_e}² (4× pixels) | {e2['peak_rss_mb']:.1f} "
          f"({100 * (e2['peak_rss_mb'] / e1['peak_rss_mb'] - 1):+.1f} %) |")
    print(f"\n| slide | peak RSS (MB) |\n|---|---|\n| {side}x{side} | {rss_small:.1f} |\n"
          f"| {2 * side}x{2 * side} (4x pixels) | {rss_big:.1f} ({100 * (rss_big / rss_small - 1):+.1f} %) |")


if __name__ == "__main__":
    main()
