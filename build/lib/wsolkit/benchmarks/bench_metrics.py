"""Throughput of the localization metrics (one run on the same data; figures are noisy on a shared machine).

Pixel metrics, from raw low-resolution CAMs (select → bilinear upsample → per-image min-max → PxAP + confusion):

- wsolkit: :func:`wsolkit.metrics.localization_histogram` (fused, vectorised, one bincount) + metrics;
- numpy histogram: the protocol's method (per image: cv2.resize, min-max, ``np.histogram`` of the fg and bg scores;
  bilinear resize like wsolkit — the protocol's own code resizes with bicubic, which is slower);
- torchmetrics ``BinaryAveragePrecision(thresholds=1001)`` (binned AP; on a reduced subset, it is slow);
- sklearn ``average_precision_score`` (exact AP; reduced subset);
- memory-copy floor: one copy of the full-resolution float32 maps and the uint8 masks.

Box metrics (MaxBoxAcc + V2): wsolkit (≤ 257 distinct masks per image) vs a per-threshold cv2 loop over T thresholds.

Histogram core (``--core``): PxAP histograms of 32 normalised 512 × 512 float32 maps (what wsolevaluation's
``PxAPMeter`` receives) — wsolkit with 1 and 2 threads, with 2 threads while another process keeps one core busy,
against wsolevaluation's per-image ``np.histogram`` method; the int64 counts are checked equal.

Usage: ``python wsolkit/benchmarks/bench_metrics.py [--images 64] [--size 224] [--threads 2] [--quick] [--core]``
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from wsolkit.metrics import box_accuracy, histogram_metrics, localization_histogram


def _timeit(fn, repeat=1):
    fn_out = None
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn_out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, fn_out


def numpy_protocol(raw: np.ndarray, masks: np.ndarray, t: int = 1000):
    """Per-image numpy histograms as in the protocol's code (cv2.resize, min-max, np.histogram)."""
    edges = np.append(np.arange(0, 1, 1.0 / t), [1.0, 2.0, 3.0])
    fg = np.zeros(len(edges) - 1, np.int64)
    bg = np.zeros(len(edges) - 1, np.int64)
    h, w = masks.shape[1:]
    for i in range(raw.shape[0]):
        cam = cv2.resize(raw[i], (w, h), interpolation=cv2.INTER_LINEAR)
        lo, hi = cam.min(), cam.max()
        cam = (cam - lo) / (hi - lo) if hi > lo else np.zeros_like(cam)
        fg += np.histogram(cam[masks[i] == 1], bins=edges)[0]
        bg += np.histogram(cam[masks[i] == 0], bins=edges)[0]
    return fg, bg


def box_loop(maps: np.ndarray, gts: list, t: int):
    """MaxBoxAcc(V2) counters with one cv2.threshold + findContours per threshold and image."""
    thresholds = np.arange(0, 1, 1.0 / t)
    c1 = np.zeros(t)
    c2 = np.zeros((3, t))
    for i in range(maps.shape[0]):
        q = (maps[i] * 255).astype(np.uint8)
        h, w = q.shape
        for k, thr in enumerate(thresholds):
            _, b = cv2.threshold(q, int(thr * q.max()), 255, cv2.THRESH_BINARY)
            cs = cv2.findContours(b, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
            boxes = [cv2.boundingRect(c) for c in cs] or [(0, 0, 0, 0)]
            big = cv2.boundingRect(max(cs, key=cv2.contourArea)) if cs else (0, 0, 0, 0)

            def iou(bx, g, w=w, h=h):
                x0, y0, x1, y1 = bx[0], bx[1], min(bx[0] + bx[2], w - 1), min(bx[1] + bx[3], h - 1)
                ix = max(0, min(x1, g[2]) - max(x0, g[0]) + 1)
                iy = max(0, min(y1, g[3]) - max(y0, g[1]) + 1)
                inter = ix * iy
                return inter / ((x1 - x0 + 1) * (y1 - y0 + 1) + (g[2] - g[0] + 1) * (g[3] - g[1] + 1) - inter)

            c1[k] += iou(big, gts[i]) >= 0.5
            best = max(iou(bx, gts[i]) for bx in boxes)
            c2[:, k] += best >= np.array([0.3, 0.5, 0.7])
    return c1, c2


def wsolevaluation_histograms(maps: np.ndarray, masks: np.ndarray, t: int = 1000):
    """wsolevaluation ``PxAPMeter.accumulate``: per image, ``np.histogram`` of the fg and bg scores."""
    edges = np.append(np.arange(0, 1, 1.0 / t), [1.0, 2.0, 3.0])
    fg = np.zeros(len(edges) - 1, np.int64)
    bg = np.zeros(len(edges) - 1, np.int64)
    for i in range(maps.shape[0]):
        fg += np.histogram(maps[i][masks[i] == 1], bins=edges)[0]
        bg += np.histogram(maps[i][masks[i] == 0], bins=edges)[0]
    return fg, bg


def _busy(seconds: float) -> None:  # pragma: no cover - runs in a child process
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1


def core(n: int = 32, size: int = 512, repeat: int = 3) -> None:
    """The histogram core against wsolevaluation's numpy method (see the module docstring)."""
    import multiprocessing as mp

    g = torch.Generator().manual_seed(0)
    maps = torch.rand(n, size, size, generator=g)
    masks = (torch.rand(n, size, size, generator=g) > 0.5).to(torch.uint8)
    mpix = n * size * size / 1e6
    mn, kn = maps.numpy(), masks.numpy()
    t_ref, (rfg, rbg) = _timeit(lambda: wsolevaluation_histograms(mn, kn), repeat)
    print(f"histogram core: {n} maps {size}x{size} float32 ({mpix:.1f} Mpix), T=1000")
    print(f"{'method':40s} {'Mpix/s':>9s} {'vs wsolevaluation':>18s}")
    print(f"{'wsolevaluation np.histogram (1 thread)':40s} {mpix / t_ref:9.1f} {1.0:17.2f}x")
    for threads, busy in ((1, False), (2, False), (2, True)):
        torch.set_num_threads(threads)
        proc = None
        if busy:
            proc = mp.get_context("spawn").Process(target=_busy, args=(600.0,), daemon=True)
            proc.start()
            time.sleep(0.5)
        try:
            localization_histogram(maps, masks, 1000)
            t_w, (fg, bg) = _timeit(lambda: localization_histogram(maps, masks, 1000), repeat)
        finally:
            if proc is not None:
                proc.terminate()
                proc.join()
        same = fg.tolist() == rfg[:1000].tolist() + [int(rfg[1000:].sum())] and \
            bg.tolist() == rbg[:1000].tolist() + [int(rbg[1000:].sum())]
        label = f"wsolkit ({threads} thread{'s' * (threads > 1)}{', 1 core busy' if busy else ''})"
        print(f"{label:40s} {mpix / t_w:9.1f} {t_ref / t_w:17.2f}x  counts identical: {same}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--low", type=int, default=7, help="CAM resolution before upsampling")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tm-images", type=int, default=2, help="images for torchmetrics (slow)")
    ap.add_argument("--sk-images", type=int, default=8, help="images for sklearn")
    ap.add_argument("--box-images", type=int, default=8)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    ap.add_argument("--core", action="store_true", help="only the histogram core on 32 x 512 x 512 maps")
    args = ap.parse_args()
    if args.core:
        core(8, 128, 1) if args.quick else core()
        return
    if args.quick:
        args.images, args.size, args.tm_images, args.sk_images, args.box_images = 8, 96, 1, 2, 2
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    n, s = args.images, args.size
    raw = torch.randn(n, args.low, args.low, generator=g)
    masks = (torch.rand(n, args.low, args.low, generator=g) > 0.6).float()
    masks = (F.interpolate(masks[:, None], size=(s, s), mode="nearest")[:, 0]).to(torch.uint8)
    masks[:, :2] = 255  # a few ignored pixels
    mpix = n * s * s / 1e6
    print(f"data: {n} CAMs {args.low}x{args.low} -> {s}x{s} ({mpix:.1f} Mpix), T=1000, threads={args.threads}")

    rows = []

    def run_wsolkit():
        fg, bg = localization_histogram(raw, masks, 1000, normalize=True)
        return histogram_metrics(fg, bg)

    run_wsolkit()  # warm-up
    t_w, res = _timeit(run_wsolkit, repeat=1)
    rows.append(("wsolkit (fused torch)", mpix, t_w))

    raw_np, masks_np = raw.numpy(), masks.numpy()
    t_np, (fg_np, bg_np) = _timeit(lambda: numpy_protocol(raw_np, masks_np))
    rows.append(("numpy histogram (protocol)", mpix, t_np))

    def floor():
        up = torch.empty(n, s, s)
        up.copy_(torch.zeros(n, s, s))
        return masks.clone()

    t_copy, _ = _timeit(floor)
    rows.append(("memory-copy floor", mpix, t_copy))

    m_tm = args.tm_images
    try:
        from torchmetrics.classification import BinaryAveragePrecision

        def run_tm():
            metric = BinaryAveragePrecision(thresholds=1001, ignore_index=255)
            up = F.interpolate(raw[:m_tm, None], size=(s, s), mode="bilinear", align_corners=False)[:, 0]
            lo = up.flatten(1).amin(1)[:, None, None]
            hi = up.flatten(1).amax(1)[:, None, None]
            metric.update((up - lo) / (hi - lo), masks[:m_tm].long())
            return float(metric.compute())

        t_tm, _ = _timeit(run_tm)
        rows.append(("torchmetrics BinaryAP(1001)", m_tm * s * s / 1e6, t_tm))
    except ImportError:
        print("torchmetrics not installed: skipped")
    m_sk = args.sk_images
    try:
        from sklearn.metrics import average_precision_score

        def run_sk():
            up = F.interpolate(raw[:m_sk, None], size=(s, s), mode="bilinear", align_corners=False)[:, 0]
            lo = up.flatten(1).amin(1)[:, None, None]
            hi = up.flatten(1).amax(1)[:, None, None]
            sc = ((up - lo) / (hi - lo)).flatten().numpy()
            mk = masks[:m_sk].flatten().numpy()
            keep = mk != 255
            return average_precision_score(mk[keep], sc[keep])

        t_sk, _ = _timeit(run_sk)
        rows.append(("sklearn exact AP", m_sk * s * s / 1e6, t_sk))
    except ImportError:
        print("scikit-learn not installed: skipped")

    w_rate = mpix / t_w
    print(f"\n{'method':32s} {'Mpix':>7s} {'seconds':>9s} {'Mpix/s':>9s} {'wsolkit speed-up':>17s}")
    for name, mp, sec in rows:
        rate = mp / sec
        print(f"{name:32s} {mp:7.2f} {sec:9.4f} {rate:9.1f} {w_rate / rate:16.1f}x")
    same = np.array_equal(fg_np[:-2].sum() + fg_np[-2:].sum(), int(res["n_fg"]))
    print(f"\nPxAP {res['pxap']:.3f}; numpy-protocol fg count agrees: {bool(same)}")

    # ---- boxes
    nb = args.box_images
    maps = torch.stack([torch.from_numpy(cv2.resize(raw_np[i], (s, s))) for i in range(nb)])
    lo = maps.flatten(1).amin(1)[:, None, None]
    hi = maps.flatten(1).amax(1)[:, None, None]
    maps = ((maps - lo) / (hi - lo)).float()
    gts = [[s // 4, s // 4, s // 2, s // 2] for _ in range(nb)]
    t_box, rb = _timeit(lambda: box_accuracy(maps, [torch.tensor([b]) for b in gts], 1000))
    t_loop, (c1, c2) = _timeit(lambda: box_loop(maps.numpy(), gts, 1000))
    agree = abs(rb["maxboxacc"] - c1.max() * 100 / nb) < 1e-9 and abs(
        rb["maxboxacc_v2"] - (c2.max(1) * 100 / nb).mean()) < 1e-9
    print(f"\nboxes ({nb} maps {s}x{s}, T=1000): wsolkit {t_box:.3f} s, per-threshold cv2 loop {t_loop:.3f} s, "
          f"speed-up {t_loop / t_box:.1f}x, identical results: {agree}")


if __name__ == "__main__":
    main()
