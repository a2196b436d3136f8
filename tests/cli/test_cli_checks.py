"""Bad command-line input: one-line errors with exit code 2, before any work; ``wsolkit --help`` without torch."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

import wsolkit
from wsolkit.cli import main
from wsolkit.cli.evaluate import evaluate_folders
from wsolkit.metrics import pxap
from wsolkit.training import save_checkpoint


def _usage_error(capsys, argv, match):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and match in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("command", [["demo"], ["predict", "--checkpoint", "m.pt", "--images", "x", "--out", "o"]])
def test_devices_that_do_not_exist_are_one_line_errors(capsys, command):
    _usage_error(capsys, [*command, "--device", "gpu"], "did you mean 'cuda'")
    if not torch.cuda.is_available():
        _usage_error(capsys, [*command, "--device", "cuda"], "CUDA is not available")


@pytest.mark.parametrize("command", [
    ["predict", "--checkpoint", "m.pt", "--images", "x", "--out", "o"],
    ["evaluate", "--cams", "c", "--masks", "m"],
    ["slide", "--checkpoint", "m.pt", "--slides", "s", "--out", "o"],
])
def test_batch_size_zero_is_a_one_line_error(capsys, command):
    _usage_error(capsys, [*command, "--batch-size", "0"], "expected an integer >= 1, got 0")


def test_help_is_fast_and_imports_neither_torch_nor_torchmetrics():
    code = ("import sys\nfrom wsolkit.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules, 'torchmetrics' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "demo" in out and "evaluate" in out and out.strip().endswith("False False")


def _folders(tmp_path, labels):
    cams, masks = tmp_path / "cams", tmp_path / "masks"
    cams.mkdir()
    masks.mkdir()
    import cv2

    for i, _ in enumerate(labels):
        np.save(cams / f"im{i}.npy", np.random.default_rng(i).random((16, 16)).astype(np.float32))
        m = np.zeros((16, 16), np.uint8)
        m[4:12, 4:12] = 1
        cv2.imwrite(str(masks / f"im{i}.png"), m)
    with open(tmp_path / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["stem", "label", "pred"])
        w.writerows([[f"im{i}", lab, 0] for i, lab in enumerate(labels)])
    return cams, masks, tmp_path / "labels.csv"


def test_a_label_beyond_the_classes_of_the_run_is_an_error(tmp_path):
    cams, masks, labels = _folders(tmp_path, [0, 1, 9])
    evaluate_folders(cams, masks, labels_csv=labels)  # no class count known: class indices only
    (tmp_path / "dataset.json").write_text(json.dumps({"classes": ["benign", "malignant"]}))
    with pytest.raises(wsolkit._checks.WSOLValueError, match=r"label 9 of 'im2' is not a class index \[0, 2\)"):
        evaluate_folders(cams, masks, labels_csv=labels)
    (tmp_path / "c").mkdir()
    cams, masks, labels = _folders(tmp_path / "c", [0, 7])
    with pytest.raises(wsolkit._checks.WSOLValueError, match=r"label 7 .*\[0, 5\) \(--num-classes\)"):
        evaluate_folders(cams, masks, labels_csv=labels, num_classes=5)


def test_plot_without_matplotlib_fails_before_the_work(tmp_path, capsys, monkeypatch):
    cams, masks, labels = _folders(tmp_path, [0, 1])
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    out = tmp_path / "res.json"
    assert main(["evaluate", "--cams", str(cams), "--masks", str(masks), "--plot", str(tmp_path / "c.png"),
                 "--out", str(out)]) == 2
    assert "matplotlib" in capsys.readouterr().err and not out.exists()


def test_predict_refuses_a_csv_label_beyond_the_classes(tmp_path, capsys):
    import cv2

    rows = []
    for i, lab in enumerate([0, 5]):
        p = tmp_path / f"im{i}.png"
        cv2.imwrite(str(p), (np.random.default_rng(i).random((32, 32, 3)) * 255).astype(np.uint8))
        rows.append([str(p), lab])
    with open(tmp_path / "images.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["path", "label"], *rows])
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "m.pt", wsolkit.create_method("gap", 2, backbone="smallcnn",
                                                                    backbone_options={"width": 4}))
    assert main(["predict", "--checkpoint", str(ckpt), "--images", str(tmp_path / "images.csv"), "--out",
                 str(tmp_path / "o"), "--target", "pred", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "label 5" in err and "2 classes" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "labels.csv").exists()


def test_pxap_refuses_maps_and_masks_of_different_sizes():
    masks = torch.zeros(2, 32, 16, dtype=torch.uint8)
    masks[:, 8:24, 4:12] = 1
    with pytest.raises(wsolkit._checks.ShapeError, match=r"\(2, 32, 32\).*\(2, 32, 16\)"):
        pxap(torch.rand(2, 32, 32), masks)
    assert 0 <= pxap(torch.rand(2, 8, 8), masks, normalize=True) <= 100  # the protocol upsamples low-res maps


def test_pxap_on_0_255_masks_says_how_to_convert_them():
    masks = torch.zeros(2, 8, 8, dtype=torch.uint8)
    masks[:, 2:6, 2:6] = 255
    maps = torch.rand(2, 8, 8)
    with pytest.warns(RuntimeWarning, match=r"0/255.*\(masks == 255\)\.to\(torch\.uint8\)"):
        assert np.isnan(pxap(maps, masks))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        converted = pxap(maps, (masks == 255).to(torch.uint8))
    assert 0 < converted <= 100
