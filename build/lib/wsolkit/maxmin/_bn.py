"""Batch-norm bookkeeping of MaxMin: passes that must not update running statistics, and C's own statistics."""

from __future__ import annotations

import contextlib

import torch.nn as nn

__all__: list[str] = []


def batchnorm_layers(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Batch-norm layers of ``module`` that track running statistics."""
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@contextlib.contextmanager
def batch_stats_only(module: nn.Module):
    """Batch-norm layers in training mode normalise with batch statistics but do not update their running ones."""
    bns = [
        m for m in module.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats
    ]
    for m in bns:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in bns:
            m.track_running_stats = True


class BNStats(nn.Module):
    """``C``'s running statistics of the batch-norm layers it shares with ``M`` (buffers, saved in state dicts)."""

    def __init__(self, bns: list[nn.Module]):
        super().__init__()
        self.n = len(bns)
        for i, m in enumerate(bns):
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                buf = getattr(m, name)
                self.register_buffer(f"{name}_{i}", None if buf is None else buf.detach().clone())

    @contextlib.contextmanager
    def swapped(self, bns: list[nn.Module]):
        """Exchange the layers' statistics with the stored ones (in-place updates land in ``C``'s copies)."""

        def swap() -> None:
            for i, m in enumerate(bns):
                for name in ("running_mean", "running_var", "num_batches_tracked"):
                    mine, theirs = getattr(self, f"{name}_{i}"), getattr(m, name)
                    setattr(m, name, mine)
                    setattr(self, f"{name}_{i}", theirs)

        swap()
        try:
            yield
        finally:
            swap()

    def extra_repr(self) -> str:
        return f"shared_layers={self.n}"


@contextlib.contextmanager
def cumulative(layers: list[nn.modules.batchnorm._BatchNorm]):
    """Reset the layers' statistics and accumulate exact averages (momentum None) in training mode."""
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
        m.train()
    try:
        yield
    finally:
        for m, mom in zip(layers, momenta, strict=True):
            m.momentum = mom
            m.eval()
