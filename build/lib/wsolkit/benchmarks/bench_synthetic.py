"""Rendering speed of the synthetic benchmark (target: >= 100 images/s at 128 px on one core).

Run: ``python wsolkit/benchmarks/bench_synthetic.py [--quick]``.
"""

from __future__ import annotations

import argparse
import time

import torch

from wsolkit.data import SyntheticHistology


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    n = 50 if args.quick else 300
    print("| kind | size | images/s (1 core) |")
    print("| --- | --- | --- |")
    for kind in ("glas", "camelyon"):
        for size in (128, 256):
            ds = SyntheticHistology(kind, "train", n=n, size=size, seed=0)
            t = time.perf_counter()
            for i in range(n):
                ds.render(i)
            rate = n / (time.perf_counter() - t)
            print(f"| {kind} | {size} | {rate:.0f} |")


if __name__ == "__main__":
    main()
