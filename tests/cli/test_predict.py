"""``wsolkit predict`` writes what ``wsolkit evaluate`` reads: the same PxAP as computed in memory."""

import csv
import json

import pytest
import torch

import wsolkit
from wsolkit.cli import main
from wsolkit.cli.evaluate import evaluate_folders
from wsolkit.data import ImageFolderDataset, SyntheticHistology, preprocessing
from wsolkit.metrics.meters import LocalizationMeter
from wsolkit.training import save_checkpoint


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("pred")
    images, masks = SyntheticHistology("glas", "test", n=6, size=64, seed=1).to_folder(root)
    torch.manual_seed(0)
    method = wsolkit.create_method("gap", 2, backbone="smallcnn", backbone_options={"width": 4}).eval()
    ckpt = save_checkpoint(root / "m.pt", method, method_name="gap", num_classes=2,
                           options={"backbone": "smallcnn", "backbone_options": {"width": 4}})
    return root, images, masks, method, ckpt


def _in_memory(method, images, masks, target):
    data = ImageFolderDataset(images, masks)
    x = torch.stack([d[0] for d in data])
    m = torch.stack([d[2] for d in data])
    with torch.no_grad():
        out = method(preprocessing(method)(x))
    labels = data.labels if target == "label" else out.logits.argmax(1)
    meter = LocalizationMeter(normalize=True)
    meter.update(out.cams, m, labels)
    return meter.compute()["pxap"], out.logits.argmax(1), data


@pytest.mark.parametrize("target", ["label", "pred"])
def test_predict_then_evaluate_equals_in_memory(setup, tmp_path, target):
    root, images, masks, method, ckpt = setup
    out = tmp_path / "out"
    code = main(["predict", "--checkpoint", str(ckpt), "--images", str(images), "--masks", str(masks), "--out",
                 str(out), "--format", "npy", "--target", target, "--batch-size", "4", "--no-progress", "--overlays"])
    assert code == 0
    ref, preds, data = _in_memory(method, images, masks, target)
    res = evaluate_folders(out / "cams", out / "masks", labels_csv=out / "labels.csv")
    assert res["localization"]["pxap"] == ref
    rows = {r["stem"]: r for r in csv.DictReader(open(out / "predictions.csv"))}
    assert [int(rows[s]["pred"]) for s in data.stems] == preds.tolist()
    assert len(list((out / "overlays").glob("*.png"))) == 6
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["classes"] == ["benign", "malignant"] and meta["method"] == "gap"
    # 16-bit PNG maps: the same figure up to the quantisation of the maps (1/65535 << the 1/1000 bins)
    out16 = tmp_path / "out16"
    assert main(["predict", "--checkpoint", str(ckpt), "--images", str(images), "--masks", str(masks), "--out",
                 str(out16), "--target", target, "--no-progress"]) == 0
    res16 = evaluate_folders(out16 / "cams", out16 / "masks", labels_csv=out16 / "labels.csv")
    assert res16["localization"]["pxap"] == pytest.approx(ref, abs=0.05)


def test_bad_inputs_exit_2_with_a_message(setup, tmp_path, capsys):
    root, images, masks, _, ckpt = setup
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in sorted((images / "benign").glob("*.png"))[:2]:
        (flat / p.name).write_bytes(p.read_bytes())
    assert main(["predict", "--checkpoint", str(ckpt), "--images", str(flat), "--out", str(tmp_path / "o"),
                 "--target", "label", "--no-progress"]) == 2
    assert "labelled" in capsys.readouterr().err
    assert main(["predict", "--checkpoint", str(ckpt), "--images", str(flat), "--out", str(tmp_path / "o"),
                 "--target", "7", "--no-progress"]) == 2
    assert "outside" in capsys.readouterr().err
    assert main(["predict", "--checkpoint", str(root / "none.pt"), "--images", str(flat), "--out",
                 str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    # an unlabelled folder with target pred: maps and predictions, no labels.csv
    assert main(["predict", "--checkpoint", str(ckpt), "--images", str(flat), "--out", str(tmp_path / "p"),
                 "--no-progress"]) == 0
    assert len(list((tmp_path / "p" / "cams").glob("*.png"))) == 2 and not (tmp_path / "p" / "labels.csv").exists()


@pytest.mark.skipif("cam" not in wsolkit.list_methods(), reason="the cam method is not registered")
def test_classifier_spec(setup, tmp_path):
    _, images, _, _, _ = setup
    assert main(["predict", "--method", "cam", "--classifier", "timm:test_resnet", "--num-classes", "2",
                 "--images", str(images), "--out", str(tmp_path), "--no-progress"]) == 0
    assert len(list((tmp_path / "cams").glob("*.png"))) == 6
