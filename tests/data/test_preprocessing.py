"""Preprocessing read from timm / torchvision / Hugging Face declarations, through wsolkit methods; named fallback."""

import warnings

import pytest
import timm
import torch
import torch.nn as nn

import wsolkit
from wsolkit.data import IMAGENET, Preprocessing, PreprocessingWarning, preprocessing


def test_timm_pretrained_cfg_directly_and_through_methods():
    clf = timm.create_model("test_resnet", num_classes=2)
    cfg = clf.pretrained_cfg
    p = preprocessing(clf)
    assert p.mean == tuple(cfg["mean"]) == (0.5, 0.5, 0.5) and p.std == tuple(cfg["std"])
    assert p.size == tuple(cfg["input_size"][-2:]) and p.interpolation == cfg["interpolation"]
    assert p.crop_pct == cfg["crop_pct"]

    class OverClassifier(nn.Module):  # the shape of methods over a classifier (cam, explainers, fcam)
        def __init__(self, classifier):
            super().__init__()
            self.decoder = nn.Conv2d(3, 1, 1)
            self.classifier = classifier

    assert preprocessing(OverClassifier(clf)).mean == (0.5, 0.5, 0.5)
    gap = wsolkit.create_method("gap", 2, backbone="test_resnet")  # features_only body keeps pretrained_cfg
    assert preprocessing(gap).mean == (0.5, 0.5, 0.5)


def test_torchvision_weights_and_transforms():
    from torchvision.models import ResNet18_Weights

    t = ResNet18_Weights.DEFAULT.transforms()
    for p in (preprocessing(ResNet18_Weights.DEFAULT), preprocessing(t), preprocessing(nn.Identity(),
                                                                                       weights=ResNet18_Weights.DEFAULT)):
        assert p.mean == tuple(t.mean) and p.std == tuple(t.std)
        assert p.size == (t.crop_size[0],) * 2 and p.crop_pct == t.crop_size[0] / t.resize_size[0]
        assert p.interpolation == "bilinear"


def test_hugging_face_processor_and_config():
    transformers = pytest.importorskip("transformers")
    proc = transformers.ConvNextImageProcessor(image_mean=[0.1, 0.2, 0.3], image_std=[0.4, 0.5, 0.6],
                                               size={"shortest_edge": 192}, crop_pct=0.9)
    for p in (preprocessing(proc), preprocessing(proc.to_dict())):
        assert p.mean == (0.1, 0.2, 0.3) and p.std == (0.4, 0.5, 0.6)
        assert p.size == (192, 192) and p.crop_pct == 0.9 and p.interpolation == "bicubic"
    cfg = transformers.ResNetConfig(num_labels=2, hidden_sizes=[8, 8, 8, 8], embedding_size=8, depths=[1, 1, 1, 1])
    model = transformers.ResNetForImageClassification(cfg)
    with pytest.warns(PreprocessingWarning, match="processor="):
        assert preprocessing(model) == IMAGENET
    assert preprocessing(model, processor=proc).mean == (0.1, 0.2, 0.3)


def test_fallback_is_named_and_warns_except_for_smallcnn():
    with pytest.warns(PreprocessingWarning, match="Conv2d declares no preprocessing.*ImageNet"):
        assert preprocessing(nn.Conv2d(3, 3, 1)) is IMAGENET
    with pytest.warns(PreprocessingWarning, match="Inception"):
        assert preprocessing(nn.Conv2d(3, 3, 1), default="inception").mean == (0.5, 0.5, 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = preprocessing(wsolkit.create_method("gap", 2, backbone="smallcnn"))
    assert p.mean == IMAGENET.mean and "SmallCNN" in p.source


def test_user_declaration_and_normalisation_formula():
    m = nn.Sequential(nn.Conv2d(3, 3, 1))
    m[0].preprocessing = Preprocessing(mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 2.0))
    p = preprocessing(m)
    x = torch.rand(2, 3, 4, 5, dtype=torch.float64)
    mean = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64).view(3, 1, 1)
    std = torch.tensor([0.5, 0.25, 2.0], dtype=torch.float64).view(3, 1, 1)
    assert torch.equal(p(x), (x - mean) / std) and p(x).dtype == torch.float64
    assert torch.allclose(p.invert(p(x)), x)
    with pytest.raises(wsolkit._checks.ShapeError, match=r"\(B, 3, H, W\)"):
        p(torch.rand(2, 4, 4, 4))
    with pytest.raises(wsolkit._checks.WSOLTypeError, match="floating"):
        p(torch.zeros(3, 2, 2, dtype=torch.uint8))


def test_deprecated_standardize_is_the_imagenet_default():
    from wsolkit import training

    x = torch.rand(1, 3, 4, 4)
    with pytest.warns(DeprecationWarning):
        y = training.standardize(x)
    assert torch.equal(y, IMAGENET(x))
    with pytest.warns(DeprecationWarning):
        assert training.IMAGENET_MEAN == IMAGENET.mean
