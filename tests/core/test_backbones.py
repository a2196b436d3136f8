"""Backbones by name: shapes, strides, errors."""

import pytest
import torch

from wsolkit import create_backbone, list_backbones
from wsolkit._checks import WSOLValueError


@pytest.mark.parametrize(
    "name, stride, channels, reduction",
    [
        ("resnet18", 32, 512, 32),
        ("resnet18", 8, 512, 8),
        ("resnet50", 16, 2048, 16),
        ("vgg16", 32, 512, 32),
        ("vgg16", 8, 512, 8),
        ("inception_v3", 32, 2048, 32),
        ("tv:resnet50", 8, 2048, 8),
        ("tv:vgg16", 16, 512, 16),
        ("smallcnn", 8, 256, 8),
    ],
)
def test_backbone_shapes(name, stride, channels, reduction):
    bb = create_backbone(name, output_stride=stride).eval()
    assert bb.out_channels == channels and bb.reduction == reduction
    size = 224
    with torch.no_grad():
        y = bb(torch.zeros(1, 3, size, size))
    assert y.shape[1] == channels
    if name != "inception_v3":  # Inception uses valid convolutions
        assert y.shape[-1] == size // reduction


def test_resnet50_output_stride_8_gives_28x28_at_224():
    bb = create_backbone("resnet50", output_stride=8).eval()
    with torch.no_grad():
        assert bb(torch.zeros(1, 3, 224, 224)).shape == (1, 2048, 28, 28)


def test_inception_fallback_warns():
    with pytest.warns(UserWarning, match="feature level"):
        bb = create_backbone("inception_v3", output_stride=16)
    assert bb.reduction == 16 and bb.out_channels == 768


def test_unknown_names_list_close_matches():
    with pytest.raises(WSOLValueError, match=r"unknown backbone `name`='resnet5O'; did you mean.*resnet50"):
        create_backbone("resnet5O")
    with pytest.raises(WSOLValueError, match="tv:resnet50"):
        create_backbone("tv:resnt50")
    with pytest.raises(WSOLValueError, match="output_stride"):
        create_backbone("resnet18", output_stride=4)


def test_list_backbones():
    names = list_backbones("resnet18")
    assert "resnet18" in names and "tv:resnet18" in names
