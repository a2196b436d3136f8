"""examples/deepmil_maps.py: the readings of the Deep MIL head it scores are the ones the head defines."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import torch

import wsolkit

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "deepmil_maps.py"


def _load():
    spec = importlib.util.spec_from_file_location("deepmil_maps", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quick_run_and_readings():
    res = _load().main(["--quick"])[0]
    assert 0.0 < res["_baseline"] < 100.0
    names = {k for k in res if not k.startswith("_")}
    assert "deepmil: attention ψ (default)" in names and "deepmil: instance u·F + b" in names and "gap: cams" in names
    for r in (res[k] for k in names):
        assert all(0.0 <= r[c] <= 100.0 or math.isnan(r[c]) for c in ("all", 0, 1))
    att = res["_attention"]
    assert 1.0 <= att["effective"] <= att["cells"]


def test_instance_reading_is_the_head_option():
    torch.manual_seed(0)
    bb = wsolkit.create_backbone("smallcnn", output_stride=8, width=4)
    m = wsolkit.create_method("deepmil", 2, backbone=bb, maps="instance").eval()
    out = m(torch.rand(2, 3, 32, 32))
    torch.testing.assert_close(out.cams, out.aux["instance"])
    torch.testing.assert_close(out.logits, (out.aux["attention"] * out.aux["instance"]).sum((-2, -1)))
