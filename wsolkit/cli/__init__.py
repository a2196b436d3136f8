"""Command line interface: ``wsolkit <command>``.

Each command lives in its own module of this package with a ``register(subparsers)`` function that adds its
parser and sets ``func``; :data:`COMMANDS` lists the modules in the order of ``wsolkit --help``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["COMMANDS", "build_parser", "main"]

#: command modules of this package, in help order (a module that is absent is skipped)
COMMANDS = ("demo", "predict", "evaluate", "slide", "bench", "reproduce")


def build_parser() -> argparse.ArgumentParser:
    """The ``wsolkit`` argument parser."""
    parser = argparse.ArgumentParser(prog="wsolkit", description="Weakly-supervised object localization toolkit")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"wsolkit.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"wsolkit.cli.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``wsolkit`` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
