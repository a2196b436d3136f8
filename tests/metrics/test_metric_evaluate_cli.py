"""``wsolkit evaluate`` on folders of CAMs and masks, and the threshold-curve plot."""

from __future__ import annotations

import argparse
import json
import math

import cv2
import numpy as np
import pytest
import torch

from wsolkit.metrics import localization_histogram, histogram_metrics
from wsolkit.metrics.boxes import box_accuracy
from wsolkit.cli.evaluate import evaluate_folders, register, run


def _parser():
    parser = argparse.ArgumentParser(prog="wsolkit")
    sub = parser.add_subparsers(dest="command")
    register(sub)
    return parser


def _write(tmp_path, n=4, size=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    cams_dir, masks_dir = tmp_path / "cams", tmp_path / "masks"
    cams_dir.mkdir()
    masks_dir.mkdir()
    raws, masks, labels = [], [], []
    for i in range(n):
        raw = torch.randn(2, 6, 6, generator=g)
        mask = torch.zeros(size, size, dtype=torch.uint8)
        mask[4 + i : 16, 3:15 + i] = 1
        mask[0, :] = 255
        raws.append(raw)
        masks.append(mask)
        labels.append(i % 2)
        stem = f"img_{i:02d}"
        if i % 2:
            np.save(cams_dir / f"{stem}.npy", raw.numpy())
        else:
            np.savez(cams_dir / f"{stem}.npz", cam=raw.numpy())
        cv2.imwrite(str(masks_dir / f"{stem}.png"), mask.numpy())
    (tmp_path / "labels.csv").write_text("stem,label,pred\n" + "".join(
        f"img_{i:02d},{labels[i]},{0}\n" for i in range(n)))
    (tmp_path / "boxes.csv").write_text("".join(f"img_{i:02d},3,{4 + i},{14 + i},15\n" for i in range(n)))
    return raws, masks, labels


def test_evaluate_matches_library(tmp_path, capsys):
    raws, masks, labels = _write(tmp_path)
    out = tmp_path / "res.json"
    args = _parser().parse_args([
        "evaluate", "--cams", str(tmp_path / "cams"), "--masks", str(tmp_path / "masks"),
        "--labels", str(tmp_path / "labels.csv"), "--boxes", str(tmp_path / "boxes.csv"),
        "--num-thresholds", "100", "--out", str(out), "--plot", str(tmp_path / "curves.png"), "--no-progress",
    ])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "pxap" in printed and "box maxboxacc" in printed
    res = json.loads(out.read_text())
    lab = torch.tensor(labels)
    raw = torch.stack(raws)
    fg, bg = localization_histogram(raw, torch.stack(masks), 100, labels=lab, normalize=True)
    want = histogram_metrics(fg, bg)
    assert math.isclose(res["localization"]["pxap"], want["pxap"], rel_tol=1e-12)
    assert res["n_images"] == 4 and len(res["localization"]["curves"]["tau"]) == 101
    boxes = [torch.tensor([[3, 4 + i, 14 + i, 15]]) for i in range(4)]
    wb = box_accuracy(raw, boxes, 100, labels=lab, correct=lab == 0, normalize=True, image_size=(24, 24))
    assert res["boxes"]["maxboxacc_v2"] == pytest.approx(wb["maxboxacc_v2"])
    assert res["boxes"]["top1_loc"] == pytest.approx(wb["top1_loc"])
    assert res["classification"]["accuracy"] == 50.0
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_png_cams_8_and_16_bit(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "m").mkdir()
    mask = np.zeros((8, 8), np.uint8)
    mask[2:6, 2:6] = 1
    cam = np.zeros((8, 8), np.float32)
    cam[3:6, 2:6] = 1
    cv2.imwrite(str(tmp_path / "c" / "a.png"), (cam * 255).astype(np.uint8))
    cv2.imwrite(str(tmp_path / "c" / "b.png"), (cam * 65535).astype(np.uint16))
    for s in "ab":
        cv2.imwrite(str(tmp_path / "m" / f"{s}.png"), mask)
    res = evaluate_folders(tmp_path / "c", tmp_path / "m", num_thresholds=10)
    fg, bg = localization_histogram(torch.from_numpy(np.stack([cam, cam])), torch.from_numpy(np.stack([mask] * 2)), 10)
    assert res["localization"]["pxap"] == pytest.approx(histogram_metrics(fg, bg)["pxap"])


def test_missing_and_bad_files_are_named(tmp_path, capsys):
    _write(tmp_path)
    (tmp_path / "masks" / "img_01.png").unlink()
    np.save(tmp_path / "cams" / "extra.npy", np.zeros((4, 4), np.float32))
    cv2.imwrite(str(tmp_path / "masks" / "orphan.png"), np.zeros((4, 4), np.uint8))
    args = _parser().parse_args(["evaluate", "--cams", str(tmp_path / "cams"), "--masks", str(tmp_path / "masks"),
                                 "--labels", str(tmp_path / "labels.csv")])
    assert run(args) == 2
    err = capsys.readouterr().err
    assert "img_01" in err and "extra" in err and "orphan" in err
    # a mask with a value outside {0, 1, 255}
    (tmp_path / "cams" / "extra.npy").unlink()
    (tmp_path / "masks" / "orphan.png").unlink()
    np.save(tmp_path / "cams" / "img_01.npy", np.zeros((2, 6, 6), np.float32))
    bad = np.zeros((24, 24), np.uint8)
    bad[0, 0] = 7
    cv2.imwrite(str(tmp_path / "masks" / "img_01.png"), bad)
    assert run(args) == 2
    err = capsys.readouterr().err
    assert "img_01.png" in err and "[7]" in err
    # multi-class CAMs without labels
    cv2.imwrite(str(tmp_path / "masks" / "img_01.png"), np.zeros((24, 24), np.uint8))
    args2 = _parser().parse_args(["evaluate", "--cams", str(tmp_path / "cams"), "--masks", str(tmp_path / "masks")])
    assert run(args2) == 2
    assert "--labels" in capsys.readouterr().err


def test_no_foreground_warns_not_fails(tmp_path, capsys):
    (tmp_path / "c").mkdir()
    (tmp_path / "m").mkdir()
    np.save(tmp_path / "c" / "a.npy", np.random.rand(8, 8).astype(np.float32))
    cv2.imwrite(str(tmp_path / "m" / "a.png"), np.zeros((8, 8), np.uint8))
    args = _parser().parse_args(["evaluate", "--cams", str(tmp_path / "c"), "--masks", str(tmp_path / "m"),
                                 "--out", str(tmp_path / "r.json")])
    assert run(args) == 0
    assert "no foreground" in capsys.readouterr().err
    assert json.loads((tmp_path / "r.json").read_text())["localization"]["pxap"] is None


def test_plot_threshold_curves_errors():
    from wsolkit.viz_curves import plot_threshold_curves

    r = histogram_metrics(torch.tensor([0, 1, 3]), torch.tensor([3, 1, 0]))
    fig = plot_threshold_curves(r, keys=("precision", "recall", "miou"), title="x")
    assert len(fig.axes[0].lines) == 3
    with pytest.raises(ValueError, match="keys"):
        plot_threshold_curves(r, keys=("nope",))
    with pytest.raises(TypeError):
        plot_threshold_curves([1, 2])
