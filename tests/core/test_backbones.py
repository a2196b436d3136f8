"""Backbones by name: shapes, strides, errors."""

import pytest
import torch

from wsolkit import create_backbone, list_backbones
from wsolkit._checks import WSOLTypeError, WSOLValueError
from wsolkit.backbones import Backbone, register_backbone
from wsolkit.registry import UnknownNameError


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
    with pytest.raises(UnknownNameError, match=r"unknown backbone `name`='resnet5O'; did you mean.*resnet50"):
        create_backbone("resnet5O")
    with pytest.raises(UnknownNameError, match="tv:resnet50"):
        create_backbone("tv:resnt50")
    with pytest.raises(WSOLTypeError, match="name"):
        create_backbone(18)
    with pytest.raises(WSOLValueError, match="output_stride"):
        create_backbone("resnet18", output_stride=4)


def test_list_backbones_patterns():
    import fnmatch

    import timm
    import torchvision

    everything = list_backbones()
    assert everything == sorted(everything) and list_backbones("*") == everything
    assert "smallcnn" in everything and "tv:resnet18" in everything and "resnet18" in everything
    local = {"smallcnn", "vgg16wsol", "inceptionv3wsol", "resnet50wsol"}  # the survey's WSOL backbones (key rule)
    assert set(everything) == {*local, *timm.list_models(), *("tv:" + n for n in torchvision.models.list_models())}
    assert list_backbones("resnet18") == ["resnet18"]  # fnmatch: no wildcard, exact name
    assert list_backbones("*resnet18") == sorted(n for n in everything if fnmatch.fnmatchcase(n, "*resnet18"))
    assert list_backbones("tv:vgg1?") == ["tv:vgg11", "tv:vgg13", "tv:vgg16", "tv:vgg19"]
    # registry key rule: case, "-" and "_" do not matter
    assert list_backbones("ResNet-18") == ["resnet18"] and "inception_v3" in list_backbones("inceptionv3")
    with pytest.raises(WSOLTypeError, match="pattern"):
        list_backbones(3)


def test_exact_library_names_win_over_the_key_rule():
    # torchvision's regnet_x_16gf and regnet_x_1_6gf share a registry key: exact names work, the key is ambiguous
    from wsolkit.backbones import _library_names, _lookup

    tv = _library_names()[1]
    assert _lookup("tv:regnet_x_1_6gf", tv) == "tv:regnet_x_1_6gf"
    with pytest.raises(UnknownNameError, match="ambiguous"):
        _lookup("tv:RegNet-X-16GF", tv)


def test_names_follow_the_registry_key_rule():
    a, b = create_backbone("ResNet-18"), create_backbone("tv:ResNet_18")
    assert (a.name, a.out_channels) == ("resnet18", 512) and (b.name, b.out_channels) == ("tv:resnet18", 512)
    assert create_backbone("Small-CNN", output_stride=8, width=4).out_channels == 32


def test_register_backbone():
    @register_backbone("unit-test-net", overwrite=True)
    def build(pretrained=False, output_stride=32, **kwargs):
        return Backbone(torch.nn.Conv2d(3, 5, 1), out_channels=5, reduction=1, name="unittestnet")

    assert "unittestnet" in list_backbones("unit*")
    assert create_backbone("unit_test_net").out_channels == 5
    with pytest.raises(WSOLValueError, match="already registered"):
        register_backbone("unit-test-net")(lambda **kw: None)
