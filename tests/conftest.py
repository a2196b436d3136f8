"""Shared fixtures: deterministic seeds, small synthetic batches and tiny models."""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def synthetic_small():
    """A few rendered synthetic images per kind: {kind: (images, labels, masks)}."""
    from wsolkit.data import SyntheticHistology

    return {k: SyntheticHistology(k, "test", n=8, size=64, seed=0).tensors() for k in ("glas", "camelyon")}
