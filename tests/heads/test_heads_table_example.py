"""The TP*/FN*/FP*/TN* marginals of examples/heads_table.py (survey eqs. 17-24) against a per-threshold loop."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

_PATH = Path(__file__).resolve().parents[2] / "examples" / "heads_table.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("heads_table_example", _PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_confusion_star_matches_loop(example):
    g = torch.Generator().manual_seed(0)
    maps = torch.rand(3, 9, 7, generator=g)
    maps[0, 0, :3] = torch.tensor([0.0, 1.0, 0.5])
    masks = (torch.rand(3, 9, 7, generator=g) > 0.6).to(torch.uint8)
    t = 20
    got = example.confusion_star(maps, masks, num_thresholds=t)
    s, fg, bg = maps.double(), masks == 1, masks == 0
    tp = sum(float((s[fg] >= i / t).double().mean()) for i in range(1, t + 1)) / t
    fp = sum(float((s[bg] >= i / t).double().mean()) for i in range(1, t + 1)) / t
    assert got["TP*"] == pytest.approx(100 * tp)
    assert got["FP*"] == pytest.approx(100 * fp)
    assert got["FN*"] == pytest.approx(100 * (1 - tp))
    assert got["TN*"] == pytest.approx(100 * (1 - fp))


def test_confusion_star_perfect_map(example):
    masks = torch.zeros(1, 4, 4, dtype=torch.uint8)
    masks[0, :2] = 1
    got = example.confusion_star(masks.float(), masks)
    assert got == pytest.approx({"TP*": 100.0, "FN*": 0.0, "FP*": 0.0, "TN*": 100.0})
