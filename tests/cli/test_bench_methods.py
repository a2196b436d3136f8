"""The method table's split-and-merge path: runs tagged by seed, joined per kind, budgets checked."""

from __future__ import annotations

import json

import pytest

from wsolkit.benchmarks import bench_methods as bm


def _run(path, seeds, kind, methods, epochs=6):
    args = {"seeds": ",".join(map(str, seeds)), "n_train": 8, "n_test": 4, "size": 32, "epochs": epochs,
            "width": 4, "lr": 0.003}
    res = {kind: {"baseline": [20.0 + s for s in seeds], "methods": {}}}
    for name, per_seed in methods.items():
        res[kind]["methods"][name] = [
            {**{k: float(v) for k in bm.KEYS}, "seed": s} for s, v in per_seed.items()
        ]
    path.write_text(json.dumps({"args": args, "results": res}))
    return str(path)


def test_merge_joins_seeds_and_methods(tmp_path):
    a = _run(tmp_path / "a.json", [0, 1], "glas", {"gap": {0: 50, 1: 60}, "maxmin": {0: 70}})
    b = _run(tmp_path / "b.json", [2], "glas", {"gap": {2: 70}, "maxmin": {2: 80}})
    c = _run(tmp_path / "c.json", [0], "camelyon", {"gap": {0: 40}}, epochs=10)  # another kind, another budget
    res = bm.merge([a, b, c])
    assert [r["pxap"] for r in res["glas"]["methods"]["gap"]] == [50.0, 60.0, 70.0]
    assert [r["seed"] for r in res["glas"]["methods"]["maxmin"]] == [0, 2]  # a stopped run keeps its seeds
    assert res["glas"]["baseline"] == [20.0, 21.0, 22.0]
    text = bm.table(res)
    assert "| gap | 3 | 60.0 ± 10.0 | 60.0 ± 10.0 |" in text  # mean ± sample sd over seeds
    assert "| maxmin | 2 | 75.0 ± 7.1 |" in text
    assert "epochs 10" in text and "epochs 6" in text


def test_merge_refuses_different_budgets_for_one_kind(tmp_path):
    a = _run(tmp_path / "a.json", [0], "glas", {"gap": {0: 50}})
    b = _run(tmp_path / "b.json", [1], "glas", {"gap": {1: 60}}, epochs=8)
    with pytest.raises(ValueError, match="b.json: glas was run at"):
        bm.merge([a, b])
