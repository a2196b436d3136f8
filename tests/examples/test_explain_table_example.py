"""examples/explain_table.py end to end on a tiny configuration: the table's rows, identities and JSON output."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from wsolkit.data import SyntheticHistology

_PATH = Path(__file__).resolve().parents[2] / "examples" / "explain_table.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("explain_table_example", _PATH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def result(example, tmp_path_factory):
    tiny = example.Config(size=64, n_train=32, n_test=3, epochs=1, width=4, n_samples={"sscam": 2, "iscam": 2},
                          steps=4, percentages=(50,), sanity_images=2)
    mp = pytest.MonkeyPatch()
    mp.setattr(example, "QUICK", tiny)
    out = tmp_path_factory.mktemp("explain_table") / "table.json"
    threads = torch.get_num_threads()
    try:
        returned = example.main(["--quick", "--threads", "1", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
        mp.undo()
    written = json.loads(out.read_text())
    return returned, written, tiny


def test_every_method_has_a_row(example, result):
    res, written, _ = result
    assert list(res["rows"]) == ["ones", "random", *example.NAMES]
    assert list(written["rows"]) == list(res["rows"])
    assert written["rows"]["cam"]["pxap"] == pytest.approx(res["rows"]["cam"]["pxap"])
    keys = {"pxap", "tp_star", "fn_star", "fp_star", "tn_star", "avg_drop", "increase", "deletion", "insertion",
            "morf", "lerf", "road", "spearman", "spearman_abs", "ssim", "hog", "constant", "sanity",
            "seconds"}
    for name in example.NAMES:
        assert set(res["rows"][name]) == keys, name


def test_confusion_marginals_sum_to_100(result):
    for name, row in result[0]["rows"].items():
        assert row["tp_star"] + row["fn_star"] == pytest.approx(100.0), name
        assert row["fp_star"] + row["tn_star"] == pytest.approx(100.0), name
        assert 0.0 <= row["pxap"] <= 100.0, name


def test_all_ones_baseline_is_the_foreground_share(result):
    res, _, cfg = result
    _, _, masks = SyntheticHistology(res["kind"], "test", n=cfg.n_test, size=cfg.size, seed=res["seed"] + 1).tensors()
    masks = masks[(masks == 1).flatten(1).any(1)]
    fg, bg = int((masks == 1).sum()), int((masks == 0).sum())
    row = res["rows"]["ones"]
    assert row["pxap"] == pytest.approx(100.0 * fg / (fg + bg), abs=1e-6)
    assert (row["tp_star"], row["fp_star"]) == pytest.approx((100.0, 100.0))


def test_gap_network_identities(result):
    """On a GAP network ∂s/∂A = W_c / (h w) everywhere: XGrad-CAM's weights equal Grad-CAM's, and the noisy copies
    of Smooth-Grad-CAM++ all give the same gradient as the clean image, so their rows coincide."""
    rows = result[0]["rows"]
    for a, b in (("gradcam", "xgradcam"), ("gradcam++", "smoothgradcam++")):
        for k in ("pxap", "tp_star", "fp_star", "avg_drop", "deletion", "insertion", "morf", "lerf", "spearman"):
            assert rows[a][k] == pytest.approx(rows[b][k], abs=1e-3), (a, b, k)


def test_sanity_verdict_follows_the_similarities(result):
    for name, row in result[0]["rows"].items():
        if "sanity" in row:
            assert (row["sanity"] == "pass") == (max(row["spearman"], row["spearman_abs"]) < 0.5), name


def test_markdown_table(example, result):
    lines = example.markdown(result[0]).splitlines()
    assert len(lines) == 2 + 2 + len(example.NAMES)
    assert all(line.count("|") == len(example.COLUMNS) + 2 for line in lines)
    assert lines[2].startswith("| all-ones map (baseline) | ")
