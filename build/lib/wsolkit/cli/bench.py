"""``wsolkit bench``: run the benchmark scripts and print their tables."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``bench`` sub-command."""
    bench = sub.add_parser("bench", help="run the benchmarks (benchmarks/bench_*.py) and print their tables")
    bench.add_argument("only", nargs="*", help="run only the benchmarks whose name contains one of these")
    bench.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    bench.add_argument("--dir", default=None,
                       help="folder holding bench_*.py (default: ./benchmarks, else the package's wsolkit/benchmarks)")
    bench.set_defaults(func=_bench)


def _bench(args: argparse.Namespace) -> int:
    import subprocess

    if args.dir:
        candidates = [Path(args.dir)]
    else:  # the scripts shipped in the package (wsolkit/benchmarks: checkouts, editable installs and wheels alike)
        candidates = [Path(__file__).resolve().parents[1] / "benchmarks"]
    root = next((c for c in candidates if c.is_dir() and any(c.glob("bench_*.py"))), None)
    if root is None:
        print(f"no bench_*.py found (looked in {', '.join(str(c) for c in candidates)}); pass --dir", file=sys.stderr)
        return 2
    scripts = sorted(root.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if any(o in s.stem for o in args.only)]
    if not scripts:
        print(f"no bench_*.py script matches in {root}", file=sys.stderr)
        return 2
    status = 0
    for script in scripts:
        print(f"\n## {script.stem}\n", flush=True)
        cmd = [sys.executable, str(script)] + (["--quick"] if args.quick else [])
        status |= subprocess.call(cmd)
    return status
