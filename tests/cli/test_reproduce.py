"""``wsolkit reproduce`` end to end on GlaS fixtures in the released layout and the survey's split format."""

import json

import cv2
import numpy as np
import pytest
import torch

from wsolkit.cli import main
from wsolkit.data.glas import GLAS_FOLDER, GLAS_FOLDER_SPLITS
from wsolkit.data.wsolevaluation import write_metadata

N = {"train": 8, "valcl": 4, "valpx": 2, "test": 4}


@pytest.fixture(scope="module")
def glas(tmp_path_factory):
    """A Warwick QU folder (spaces in its name, *.bmp, *_anno.bmp instances, Grade.csv) and fold-0 split files."""
    base = tmp_path_factory.mktemp("glas")
    rng = np.random.default_rng(0)
    warwick = base / "data" / GLAS_FOLDER
    warwick.mkdir(parents=True)
    rows, items = ["name,patient ID,grade (GlaS),grade (Sirinukunwattana et al. 2015)"], {}
    k = 0
    for split, n in N.items():
        items[split] = []
        for i in range(n):
            k += 1
            name = f"{'testA' if split == 'test' else 'train'}_{k}"
            label = i % 2
            anno = np.zeros((36, 44), np.uint8)
            for g in range(1 + label):  # gland instances 1, 2
                y, x = rng.integers(4, 20), rng.integers(4, 28)
                anno[y : y + 12, x : x + 12] = g + 1
            img = rng.integers(90, 140, (36, 44, 3)).astype(np.uint8)
            img[anno > 0] = (200, 60, 160) if label else (60, 200, 160)
            assert cv2.imwrite(str(warwick / f"{name}.bmp"), img)
            assert cv2.imwrite(str(warwick / f"{name}_anno.bmp"), anno)
            rows.append(f"{name}, {k}, {['benign', 'malignant'][label]}, x")
            f = GLAS_FOLDER_SPLITS
            items[split].append((f"{f}/{name}.bmp", label, f"{f}/{name}_anno.bmp", (44, 36)))
    (warwick / "Grade.csv").write_text("\n".join(rows) + "\n")
    splits = base / "folds" / "wsol-done-right-splits"
    for split, its in items.items():
        write_metadata(splits / "GLAS" / "fold-0" / split, its)
    (splits / "GLAS" / "encoding.yaml").write_text("{benign: 0, malignant: 1}\n")
    return base / "data", splits


def _args(glas, out, *extra):
    data, splits = glas
    return ["reproduce", "--dataset", "glas", "--data", str(data), "--splits", str(splits), "--fold", "0",
            "--batch-size", "4", "--crop", "32", "--no-pretrained", "--device", "cpu", "--workers", "0",
            "--out", str(out), *extra]


def test_smoke_one_epoch_gap(glas, tmp_path, capsys):
    assert main(_args(glas, tmp_path, "--method", "gap", "--backbone", "smallcnn", "--epochs", "1")) == 0
    printed = capsys.readouterr().out
    assert "| B-LOC |" in printed and "| B-CL |" in printed
    res = json.loads((tmp_path / "glas" / "fold-0" / "gap" / "smallcnn" / "result.json").read_text())
    assert res["method"] == "gap" and res["epochs"] == 1 and res["survey"] == {}  # smallcnn is no survey column
    for key in ("bloc", "bcl"):
        r = res[key]
        assert r["epoch"] == 0 and r["n_loc"] == N["test"]
        assert 0 <= r["pxap"] <= 100 and r["accuracy"] in {0.0, 25.0, 50.0, 75.0, 100.0}
        assert r["tp_star"] + r["fn_star"] == pytest.approx(100.0, abs=0.2)
        assert r["fp_star"] + r["tn_star"] == pytest.approx(100.0, abs=0.2)
    # the test figures equal an independent evaluation of the selected weights through wsolkit.training.evaluate
    import wsolkit
    from wsolkit.data import glas_fold, preprocessing
    from wsolkit.training import evaluate

    data, splits = glas
    m = wsolkit.create_method("gap", 2, backbone="smallcnn")
    run = tmp_path / "glas" / "fold-0" / "gap" / "smallcnn" / "trial-000"
    m.load_state_dict(torch.load(run / "best_bloc.pt", weights_only=True))
    test = glas_fold(data, splits, 0, "test", size=32, preprocess=preprocessing(m, warn=False))
    ref = evaluate(m, torch.utils.data.DataLoader(test, batch_size=3))
    assert res["bloc"]["pxap"] == pytest.approx(ref["pxap"], abs=1e-6)
    assert res["bloc"]["accuracy"] == pytest.approx(ref["accuracy"], abs=1e-6)


def test_resume_after_interruption(glas, tmp_path, monkeypatch):
    import wsolkit.cli.reproduce as rp

    calls = {"n": 0}
    real = rp.evaluate_split

    def flaky(*a, **k):  # dies in the selection of the second epoch, after its last.pt was written
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    args = _args(glas, tmp_path, "--method", "max", "--backbone", "smallcnn", "--epochs", "2")
    monkeypatch.setattr(rp, "evaluate_split", flaky)
    with pytest.raises(KeyboardInterrupt):
        main(args)
    run = tmp_path / "glas" / "fold-0" / "max" / "smallcnn" / "trial-000"
    assert torch.load(run / "rank0" / "last.pt", weights_only=True)["epoch"] == 2
    assert sorted(json.loads((run / "rank0" / "selection.json").read_text())["epochs"]) == ["0"]
    monkeypatch.setattr(rp, "evaluate_split", real)
    assert main(args) == 0  # epoch 1's selection is made from last.pt, no epoch is trained again
    sel = json.loads((run / "selection.json").read_text())
    assert sorted(sel["epochs"]) == ["0", "1"] and sel["finished"] == 2
    history = torch.load(run / "rank0" / "last.pt", weights_only=True)["history"]
    assert [h["epoch"] for h in history] == [0, 1]


def test_bad_input_exits_2(glas, tmp_path, capsys):
    data, splits = glas
    anno = sorted((data / GLAS_FOLDER).glob("testA_*_anno.bmp"))[0]
    anno.rename(tmp_path / "moved.bmp")
    try:
        code = main(_args(glas, tmp_path, "--method", "gap", "--backbone", "smallcnn", "--epochs", "1"))
        err = capsys.readouterr().err
        assert code == 2 and anno.name in err and "missing" in err and err.count("\n") == 1
    finally:
        (tmp_path / "moved.bmp").rename(anno)
    assert main(_args(glas, tmp_path, "--backbone", "smallcnn")) == 2
    assert "either --method" in capsys.readouterr().err


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_gloo_processes(glas, tmp_path):
    """2 CPU processes under torchrun: sharded test counted once; figures equal one process evaluating the weights."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
           "-m", "wsolkit", *_args(glas, tmp_path, "--method", "gap", "--backbone", "smallcnn", "--epochs", "1")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    cell = tmp_path / "glas" / "fold-0" / "gap" / "smallcnn"
    res = json.loads((cell / "result.json").read_text())
    assert res["bloc"]["n_loc"] == N["test"]  # every test image once over the two shards
    assert (cell / "trial-000" / "rank0" / "last.pt").is_file() and (cell / "trial-000" / "rank1" / "last.pt").is_file()
    import wsolkit
    from wsolkit.data import glas_fold, preprocessing
    from wsolkit.training import evaluate

    data, splits = glas
    m = wsolkit.create_method("gap", 2, backbone="smallcnn")
    m.load_state_dict(torch.load(cell / "trial-000" / "best_bloc.pt", weights_only=True))
    test = glas_fold(data, splits, 0, "test", size=32, preprocess=preprocessing(m, warn=False))
    ref = evaluate(m, torch.utils.data.DataLoader(test, batch_size=4))
    # shards of 2 images vs one batch of 4: convolutions round differently, a few pixels change threshold bin
    assert res["bloc"]["pxap"] == pytest.approx(ref["pxap"], abs=1e-2)
    assert res["bloc"]["accuracy"] == pytest.approx(ref["accuracy"], abs=1e-6)


@pytest.mark.slow
@pytest.mark.heavy  # about 7 CPU-minutes per backbone
@pytest.mark.parametrize("backbone", ["vgg16", "inceptionv3", "resnet50"])
def test_every_method_runs_on_the_survey_backbones(backbone):
    """Each registered method builds on the survey backbone as ``reproduce`` builds it, trains a step, gives maps."""
    import wsolkit
    from wsolkit.cli.reproduce import _backbone_name, _build, localization_maps

    x, y = torch.rand(2, 3, 32, 32), torch.tensor([0, 1])
    failures = {}
    for name in wsolkit.list_methods():
        torch.manual_seed(0)
        try:
            bb = _backbone_name(name, backbone)
            opts = {"tscam": {"backbone_options": {"img_size": 32}},  # score family: a few channels keep it short
                    "scorecam": {"top_k": 8}, "sscam": {"top_k": 8, "n_samples": 2},
                    "iscam": {"top_k": 8, "n_samples": 2}}.get(name, {})
            method, trained = _build(name, 2, bb, False, opts)
            trained.train()
            for step in trained.training_steps(x, y):
                step.total.backward()
            logits, maps = localization_maps(method, x, y)
            assert logits.shape == (2, 2) and maps.shape == (2, 32, 32)
            assert bool(torch.isfinite(maps).all()) and float(maps.min()) >= 0 and float(maps.max()) <= 1
        except Exception as exc:  # noqa: BLE001 - collect every failure
            failures[name] = f"{type(exc).__name__}: {exc}"
    assert not failures, failures


def test_table_markdown_from_results(tmp_path):
    from wsolkit.cli.reproduce import table_markdown

    for method, backbone, ours in (("gap", "vgg16", 50.0), ("gap", "resnet50", 61.25), ("cam", "vgg16", None)):
        d = tmp_path / method / backbone
        d.mkdir(parents=True)
        from wsolkit.survey_tables import survey_row

        res = {"method": method, "backbone": backbone, "survey": survey_row("glas", method, backbone),
               "bloc": None if ours is None else {"pxap": ours}}
        (d / "result.json").write_text(json.dumps(res))
    lines = table_markdown(tmp_path).splitlines()
    assert lines[0] == "| method | resnet50 (ours / survey) | vgg16 (ours / survey) |"
    assert lines[2] == "| cam | — / — | — / 68.5 |"
    assert lines[3] == "| gap | 61.2 / 56.2 | 50.0 / 58.5 |"
