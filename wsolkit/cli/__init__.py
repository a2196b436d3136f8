"""Command line interface: ``wsolkit <command>``.

Each command lives in its own module of this package with a ``register(subparsers)`` function that adds its
parser and sets ``func``; :data:`COMMANDS` lists the modules in the order of ``wsolkit --help`` with their one-line
help. Only the module of the command being run is imported (``wsolkit --help`` imports none, nor torch).
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["COMMANDS", "build_parser", "main"]

#: command modules of this package, in help order, with the line ``wsolkit --help`` shows
COMMANDS = {
    "demo": "train a GAP/CAM model on the synthetic benchmark and report PxAP",
    "predict": "write a localization map per image (the layout `wsolkit evaluate` reads)",
    "evaluate": "localization metrics of CAM files against mask files (PxAP, TP*/FN*/FP*/TN*, mIoU, MaxBoxAcc)",
    "slide": "CAM heatmaps and scores of whole slides",
    "bench": "run the benchmarks (benchmarks/bench_*.py) and print their tables",
    "reproduce": "train, select and evaluate a method under the survey's protocol on GlaS / CAMELYON16 splits",
}


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (exit 2), pointing at ``--help``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``wsolkit`` argument parser: every command's full parser, or only ``command``'s (the others listed).

    Args:
        command: build only this command's parser (its module alone is imported); ``None``: all of them.
    """
    parser = _Parser(prog="wsolkit", description="Weakly-supervised object localization toolkit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")
    for name, help_line in COMMANDS.items():
        if command is not None and name != command:
            sub.add_parser(name, help=help_line)  # listed only; parsing picks the command below first
            continue
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
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command if command in COMMANDS else "").parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
