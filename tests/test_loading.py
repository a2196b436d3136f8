"""One model loader: every command refuses a malicious pickle (nothing in it runs); a K-class head loads without
``--num-classes``; the specs of :func:`wsolkit.loading.load_model`."""

from __future__ import annotations

import builtins

import cv2
import numpy as np
import pytest
import torch

import wsolkit
from wsolkit.cli import main
from wsolkit.loading import UnsafeCheckpointError, load_classifier, load_model, read_weights
from wsolkit.training import save_checkpoint

timm = pytest.importorskip("timm")


class _Payload:
    """Unpickling it calls ``open(marker, "w")``: the marker file exists iff the pickle ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


@pytest.fixture
def evil(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "method": "gap", "payload": _Payload(marker)}, path)
    module = tmp_path / "module.pt"
    torch.save(_Payload(marker), module)
    assert not marker.exists()
    return path, module, marker


@pytest.fixture
def folders(tmp_path):
    """Two labelled images, their masks, CAMs of the evaluate layout, and a folder with one slide."""
    g = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "images" / c).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "images" / c / f"{c}.png"), g.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    (tmp_path / "flat").mkdir()
    (tmp_path / "cams").mkdir()
    (tmp_path / "masks").mkdir()
    for c in ("a", "b"):
        cv2.imwrite(str(tmp_path / "flat" / f"{c}.png"), g.integers(0, 255, (32, 32, 3), dtype=np.uint8))
        np.save(tmp_path / "cams" / f"{c}.npy", g.random((32, 32)).astype(np.float32))
        cv2.imwrite(str(tmp_path / "masks" / f"{c}.png"), (g.random((32, 32)) > 0.5).astype(np.uint8))
    (tmp_path / "slides").mkdir()
    (tmp_path / "slides" / "s.tif").write_bytes(b"")  # never opened: the model is loaded first
    return tmp_path


def _commands(f, ckpt, tmp_path):
    return {
        "predict checkpoint": ["predict", "--checkpoint", str(ckpt), "--images", str(f / "images"), "--out",
                               str(tmp_path / "o1")],
        "predict classifier": ["predict", "--method", "gradcam", "--classifier", f"timm:test_resnet:{ckpt}",
                               "--images", str(f / "images"), "--out", str(tmp_path / "o2")],
        "predict state_dict": ["predict", "--method", "gradcam", "--classifier", "timm:test_resnet", "--checkpoint",
                               str(ckpt), "--images", str(f / "images"), "--out", str(tmp_path / "o3")],
        "evaluate checkpoint": ["evaluate", "--cams", str(f / "cams"), "--masks", str(f / "masks"), "--no-progress",
                                "--faithfulness", "--images", str(f / "flat"), "--method", "gradcam",
                                "--checkpoint", str(ckpt)],
        "evaluate classifier": ["evaluate", "--cams", str(f / "cams"), "--masks", str(f / "masks"), "--no-progress",
                                "--faithfulness", "--images", str(f / "flat"), "--method", "gradcam",
                                "--classifier", f"timm:test_resnet:{ckpt}"],
        "slide checkpoint": ["slide", "--checkpoint", str(ckpt), "--slides", str(f / "slides"), "--out",
                             str(tmp_path / "o4")],
        "slide classifier": ["slide", "--method", "cam", "--classifier", "timm:test_resnet", "--checkpoint",
                             str(ckpt), "--slides", str(f / "slides"), "--out", str(tmp_path / "o5")],
    }


@pytest.mark.parametrize("which", ["dict", "module"])
def test_every_command_refuses_a_malicious_pickle(evil, folders, tmp_path, capsys, which):
    path, module, marker = evil
    ckpt = path if which == "dict" else module
    for name, argv in _commands(folders, ckpt, tmp_path).items():
        assert main(argv) == 2, name
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "refusing" in err and "weights_only" in err, (name, err)
        assert not marker.exists(), name
    with pytest.raises(UnsafeCheckpointError):
        read_weights(ckpt)
    with pytest.raises(UnsafeCheckpointError):
        load_model(ckpt)
    assert not marker.exists()


def test_a_k_class_head_loads_without_num_classes(tmp_path, capsys):
    torch.manual_seed(0)
    clf = timm.create_model("test_resnet", num_classes=5)
    torch.save(clf.state_dict(), tmp_path / "clf.pt")
    torch.save({"state_dict": clf.state_dict(), "epoch": 3}, tmp_path / "wrapped.pt")
    x = torch.rand(2, 3, 32, 32)
    for spec in (f"timm:test_resnet:{tmp_path / 'clf.pt'}", f"timm:test_resnet:{tmp_path / 'wrapped.pt'}"):
        got = load_classifier(spec)
        assert got.get_classifier().out_features == 5
        torch.testing.assert_close(got(x), clf.eval()(x))
    m = load_model(tmp_path / "clf.pt", classifier="timm:test_resnet", method="gradcam")
    assert m.num_classes == 5
    with pytest.raises(wsolkit._checks.WSOLValueError, match="head"):
        load_classifier(f"timm:test_resnet:{tmp_path / 'clf.pt'}", num_classes=3)
    # a torchvision head (the last layer of a Sequential classifier)
    tv = pytest.importorskip("torchvision")
    net = tv.models.mobilenet_v3_small(num_classes=4)
    torch.save(net.state_dict(), tmp_path / "tv.pt")
    assert load_classifier(f"tv:mobilenet_v3_small:{tmp_path / 'tv.pt'}").classifier[-1].out_features == 4
    # the command: no --num-classes, no size-mismatch traceback
    img = tmp_path / "images"
    img.mkdir()
    cv2.imwrite(str(img / "a.png"), np.zeros((32, 32, 3), np.uint8))
    assert main(["predict", "--method", "cam", "--classifier", f"timm:test_resnet:{tmp_path / 'clf.pt'}",
                 "--images", str(img), "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    assert (tmp_path / "o" / "predictions.csv").read_text().splitlines()[0].count("score_") == 5


def test_load_model_specs(tmp_path):
    torch.manual_seed(0)
    m = wsolkit.create_method("gap", 2, backbone="smallcnn", backbone_options={"width": 4})
    ckpt = save_checkpoint(tmp_path / "m.pt", m, method_name="gap", num_classes=2,
                           options={"backbone": "smallcnn", "backbone_options": {"width": 4}})
    got = load_model(ckpt)
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(got(x).logits, m.eval()(x).logits)
    with pytest.raises(ValueError, match="differs"):
        load_model(ckpt, method="max")
    assert isinstance(load_model("timm:test_resnet", num_classes=3), torch.nn.Module)
    torch.save({"w": torch.zeros(1)}, tmp_path / "sd.pt")
    with pytest.raises(ValueError, match="architecture"):
        load_model(tmp_path / "sd.pt")
    with pytest.raises(ValueError, match="does not exist"):
        load_model(tmp_path / "none.pt")
    with pytest.raises(ValueError, match="timm:NAME"):
        load_classifier("resnet18")


def test_hugging_face_spec(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    vit = transformers.ViTForImageClassification(transformers.ViTConfig(
        image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, num_labels=3)).eval()
    vit.save_pretrained(tmp_path / "vit")
    m = load_model(f"hf:{tmp_path / 'vit'}", method="gradcam")
    x = torch.rand(2, 3, 32, 32)
    assert m.num_classes == 3
    torch.testing.assert_close(m(x).logits, vit(x).logits)
    assert wsolkit.localize(m, x, 2).maps.shape == (2, 32, 32)
    with pytest.raises(ValueError, match="Hugging Face"):
        load_model(f"hf:{tmp_path / 'none'}")
