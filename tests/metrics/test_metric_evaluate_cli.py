"""``wsolkit evaluate`` on folders of CAMs and masks, and the threshold-curve plot."""

from __future__ import annotations

import argparse
import json
import math

import cv2
import numpy as np
import pytest
import torch

from wsolkit.cli.evaluate import evaluate_folders, register, run
from wsolkit.metrics import histogram_metrics, localization_histogram
from wsolkit.metrics.boxes import box_accuracy


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


def test_no_foreground_is_an_error(tmp_path, capsys):
    (tmp_path / "c").mkdir()
    (tmp_path / "m").mkdir()
    np.save(tmp_path / "c" / "a.npy", np.random.rand(8, 8).astype(np.float32))
    cv2.imwrite(str(tmp_path / "m" / "a.png"), np.zeros((8, 8), np.uint8))
    args = _parser().parse_args(["evaluate", "--cams", str(tmp_path / "c"), "--masks", str(tmp_path / "m"),
                                 "--out", str(tmp_path / "r.json")])
    assert run(args) == 2
    assert "no countable foreground" in capsys.readouterr().err and not (tmp_path / "r.json").exists()


def test_plot_threshold_curves_errors():
    from wsolkit.viz import plot_threshold_curves

    r = histogram_metrics(torch.tensor([0, 1, 3]), torch.tensor([3, 1, 0]))
    fig = plot_threshold_curves(r, keys=("precision", "recall", "miou"), title="x")
    assert len(fig.axes[0].lines) == 3
    with pytest.raises(ValueError, match="keys"):
        plot_threshold_curves(r, keys=("nope",))
    with pytest.raises(TypeError):
        plot_threshold_curves([1, 2])


# ----------------------------------------------------------------------------- mask convention, NaN, per class


def _write_255(tmp_path, with_json):
    from wsolkit.data.masks import BINARY_255, write_dataset_json

    g = torch.Generator().manual_seed(1)
    (tmp_path / "cams").mkdir()
    (tmp_path / "masks").mkdir()
    raws, masks = [], []
    for i in range(3):
        raw = torch.randn(6, 6, generator=g)
        mask = torch.zeros(24, 24, dtype=torch.uint8)
        mask[5:15, 4:14 + i] = 255  # what extract_patches writes: 0 / 255
        np.save(tmp_path / "cams" / f"p{i}.npy", raw.numpy())
        cv2.imwrite(str(tmp_path / "masks" / f"p{i}.png"), mask.numpy())
        raws.append(raw)
        masks.append((mask == 255).to(torch.uint8))
    if with_json:
        write_dataset_json(tmp_path / "masks", BINARY_255)
    return torch.stack(raws), torch.stack(masks)


def test_0_255_masks_are_read_with_their_declared_convention(tmp_path):
    raws, masks = _write_255(tmp_path, with_json=True)
    res = evaluate_folders(tmp_path / "cams", tmp_path / "masks", num_thresholds=100)
    fg, bg = localization_histogram(raws, masks, 100, normalize=True)
    assert res["localization"]["pxap"] == pytest.approx(histogram_metrics(fg, bg)["pxap"])
    assert res["mask_convention"]["foreground"] == 255 and res["mask_convention"]["source"].endswith("dataset.json")
    # the flags override the file and say so
    res2 = evaluate_folders(tmp_path / "cams", tmp_path / "masks", num_thresholds=100, mask_fg_value=255,
                            ignore_index=None)
    assert res2["localization"]["pxap"] == res["localization"]["pxap"]
    assert res2["mask_convention"]["source"] == "command-line flags"


def test_0_255_masks_without_convention_name_the_likely_cause(tmp_path, capsys):
    _write_255(tmp_path, with_json=False)
    with pytest.raises(ValueError, match=r"no countable foreground.*255.*--mask-fg-value 255"):
        evaluate_folders(tmp_path / "cams", tmp_path / "masks", num_thresholds=100)
    args = _parser().parse_args(["evaluate", "--cams", str(tmp_path / "cams"), "--masks", str(tmp_path / "masks"),
                                 "--no-progress"])
    assert args.func(args) == 2
    assert "--mask-fg-value 255" in capsys.readouterr().err
    args = _parser().parse_args(["evaluate", "--cams", str(tmp_path / "cams"), "--masks", str(tmp_path / "masks"),
                                 "--no-progress", "--mask-fg-value", "255", "--ignore-index", "-1"])
    assert args.func(args) == 0


def test_nan_result_exits_non_zero_and_missing_pair_too(tmp_path, capsys):
    _write(tmp_path)
    # a class present only in the labels of masks without any countable background: F1- etc. stay defined, but
    # make the per-class PxAP NaN by giving class 1 only all-background masks
    for i in (1, 3):
        cv2.imwrite(str(tmp_path / "masks" / f"img_{i:02d}.png"), np.zeros((24, 24), np.uint8))
    args = _parser().parse_args(["evaluate", "--cams", str(tmp_path / "cams"), "--masks", str(tmp_path / "masks"),
                                 "--labels", str(tmp_path / "labels.csv"), "--num-thresholds", "50",
                                 "--no-progress"])
    assert args.func(args) == 3
    assert "NaN" in capsys.readouterr().err
    res = evaluate_folders(tmp_path / "cams", tmp_path / "masks", tmp_path / "labels.csv", num_thresholds=50)
    assert math.isnan(res["per_class"][1]["pxap"]) and not math.isnan(res["per_class"][0]["pxap"])
    (tmp_path / "masks" / "img_00.png").unlink()
    assert args.func(args) == 2
    assert "without a mask" in capsys.readouterr().err


def test_per_class_figures_equal_the_library_on_each_class(tmp_path):
    raws, masks, labels = _write(tmp_path)
    res = evaluate_folders(tmp_path / "cams", tmp_path / "masks", tmp_path / "labels.csv", num_thresholds=100)
    lab = torch.tensor(labels)
    for k in (0, 1):
        sel = lab == k
        fg, bg = localization_histogram(torch.stack(raws)[sel], torch.stack(masks)[sel], 100, labels=lab[sel],
                                        normalize=True)
        assert res["per_class"][k]["pxap"] == pytest.approx(histogram_metrics(fg, bg)["pxap"])


def test_faithfulness_from_the_command_line(tmp_path, capsys):
    timm = pytest.importorskip("timm")
    _write(tmp_path, n=2, size=32)
    (tmp_path / "images").mkdir()
    g = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(tmp_path / "images" / f"img_{i:02d}.png"), g.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    clf = timm.create_model("test_resnet", num_classes=2)
    torch.save(clf.state_dict(), tmp_path / "clf.pt")
    out = tmp_path / "res.json"
    from wsolkit.method import _METHODS, register_method
    from wsolkit.output import WSOLOutput

    class InputTimesGradient(torch.nn.Module):  # a hand-written explainer over a classifier (protocol only)
        def __init__(self, clf):
            super().__init__()
            self.clf = clf

        def forward(self, x, labels=None):
            with torch.enable_grad():
                x = x.clone().requires_grad_(True)
                logits = self.clf(x)
                y = logits.argmax(1) if labels is None else labels
                (g,) = torch.autograd.grad(logits.gather(1, y[:, None]).sum(), x)
            return WSOLOutput(logits.detach(), (g * x).sum(1, keepdim=True).detach().relu(), {})

    register_method("test-input-x-gradient", needs="classifier")(lambda n, classifier, **o: InputTimesGradient(
        classifier))
    try:
        args = _parser().parse_args([
            "evaluate", "--cams", str(tmp_path / "cams"), "--masks", str(tmp_path / "masks"),
            "--labels", str(tmp_path / "labels.csv"), "--num-thresholds", "50", "--no-progress", "--out", str(out),
            "--faithfulness", "--images", str(tmp_path / "images"), "--method", "test-input-x-gradient",
            "--classifier", f"timm:test_resnet:{tmp_path / 'clf.pt'}", "--steps", "4",
        ])
        code = args.func(args)
    finally:
        _METHODS._entries.pop("testinputxgradient", None)
    assert code == 0, capsys.readouterr().err
    res = json.loads(out.read_text())
    f = res["faithfulness"]
    assert {"avg_drop", "increase", "deletion", "insertion"} <= set(f) and f["n_images"] == 2
    assert 0 <= f["avg_drop"] <= 100 and 0 <= f["deletion"] <= 100
