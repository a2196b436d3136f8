"""Benchmark scripts, shipped with the package so that ``wsolkit bench`` works from an installed wheel.

Each ``bench_*.py`` is a standalone script (``wsolkit bench <name>`` or ``python -m wsolkit.benchmarks.bench_<name>``)
that times wsolkit and its peers in one run and prints ratios; see ``docs/benchmarks.md``.
"""
