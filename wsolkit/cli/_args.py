"""Argument types shared by the commands: checked while parsing, so a bad value is a one-line error, exit 2."""

from __future__ import annotations

import argparse

__all__ = ["device", "positive_int"]


def positive_int(text: str) -> int:
    """``type=`` of counts such as ``--batch-size``: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def device(text: str) -> str:
    """``type=`` of ``--device``: a torch device string that exists on this machine (``cpu``, ``cuda``, ``cuda:1``,
    ``mps``)."""
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        hint = " (did you mean 'cuda'?)" if text.lower() in ("gpu", "nvidia") else ""
        raise argparse.ArgumentTypeError(f"unknown device {text!r}{hint}: use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text!r}: CUDA is not available on this machine (torch "
                                             f"{torch.__version__}); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{text!r}: only {torch.cuda.device_count()} CUDA device(s)")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise argparse.ArgumentTypeError(f"{text!r}: MPS is not available on this machine; use --device cpu")
    return text
