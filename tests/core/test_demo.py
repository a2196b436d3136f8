"""The demo trains GAP/CAM on the synthetic benchmark and localizes clearly above the all-ones baseline."""

import json

import pytest

from wsolkit.cli import build_parser, main


@pytest.mark.parametrize("kind", ["glas", "camelyon"])
def test_quick_demo_localizes(kind, tmp_path):
    assert main(["demo", "--quick", "--kind", kind, "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())[kind]
    assert summary["accuracy"] >= 85.0
    assert summary["pxap"] >= 2.0 * summary["pxap_baseline"]
    assert len(list((tmp_path / kind).glob("*.png"))) == 8


def test_parser_rejects_unknown_kind():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--kind", "nope"])
