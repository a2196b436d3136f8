"""Root conftest: doctest namespace, and the repository root on the import path of spawned processes.

Tests that start processes with ``torch.multiprocessing.spawn`` (DDP, gloo) pickle functions defined in test modules
(``tests.<area>.<module>``); the children import them by name, so the repository root must be importable there too.
"""

import os
import sys
from pathlib import Path

import pytest
import torch

_ROOT = str(Path(__file__).resolve().parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
_paths = os.environ.get("PYTHONPATH", "").split(os.pathsep) if os.environ.get("PYTHONPATH") else []
if _ROOT not in _paths:
    os.environ["PYTHONPATH"] = os.pathsep.join([_ROOT, *_paths])


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    doctest_namespace["torch"] = torch
    torch.manual_seed(0)
