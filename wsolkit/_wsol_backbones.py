"""The three CNN backbones of the survey as Choe et al. (2020) modified them for WSOL (28 × 28 maps at 224 px).

Registered in :mod:`wsolkit.backbones` as ``"vgg16_wsol"``, ``"inceptionv3_wsol"`` and ``"resnet50_wsol"``; built
from torchvision's models, so ``pretrained=True`` loads torchvision's ImageNet weights (``weights="DEFAULT"``) into
the layers that keep their shape, and the layers Choe et al. add start from a fresh initialisation. The survey
(Sec. 3.3.3, Table 5) uses these three with 1024 / 1024 / 2048 feature maps of 28 × 28; the architectures follow
``wsol/vgg.py``, ``wsol/inception.py`` and ``wsol/resnet.py`` of ``clovaai/wsolevaluation`` with
``large_feature_map=True``:

- **VGG16** (``VggCam``, config ``cam/28x28``): conv1_1 … conv5_3 without pool4 and pool5 (reduction 8), then
  ``conv6`` 3 × 3, 512 → 1024, ReLU. The class layer (GAP + FC in the reference) is the method's head.
- **InceptionV3** (``InceptionCam``): ``Conv2d_1a_3x3`` with padding 1, both stem max-pools ``3 / 2`` with padding 1
  and ``ceil_mode``, the pool after ``Mixed_5d`` removed, ``Mixed_6a`` with stride 1 and padding 1 (its max-pool
  branch too), up to ``Mixed_6e`` (768 channels), then ``SPG_A3_1b`` / ``SPG_A3_2b`` (3 × 3 convolutions to 1024
  with ReLU, dropout 0.5 before each as in the reference).
- **ResNet-50** (``ResNetCam``): ``layer3`` and ``layer4`` with stride 1 (the stride sits on the 3 × 3 convolution,
  as in both torchvision and the reference), reduction 8, 2048 channels; no dilation (unlike ``create_backbone(
  "resnet50", output_stride=8)``, which dilates as timm does).

Each backbone records its multi-scale levels as a timm-style ``feature_info`` list (module, channels, reduction),
so F-CAM / NEGEV find their U-Net encoder levels on a classifier built over it.

Departure: the reference initialises its added layers with He (VGG) or Xavier (Inception) uniform; here they keep
PyTorch's default initialisation of ``nn.Conv2d``.
"""

from __future__ import annotations

import dataclasses
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from wsolkit.backbones import Backbone, register_backbone
from wsolkit.data.preprocessing import IMAGENET, INCEPTION

__all__ = ["vgg16_wsol", "inceptionv3_wsol", "resnet50_wsol"]


def _levels(backbone: Backbone, levels: list[tuple[int, int, int]], inception: bool = False) -> Backbone:
    """Record the multi-scale levels ``(index in body, channels, reduction)`` as timm-style ``feature_info`` dicts,
    which F-CAM / NEGEV's encoder discovery (:func:`wsolkit.decoders.fcam.feature_layers`) reads, and the input
    normalisation of torchvision's weights (Inception: its modules are called directly, without torchvision's
    ``transform_input``, so they take ``(x - 0.5) / 0.5``)."""
    backbone.feature_info = [{"module": f"body.{i}", "num_chs": c, "reduction": r} for i, c, r in levels]
    base = INCEPTION if inception else IMAGENET
    stats = "Inception" if inception else "ImageNet"
    backbone.preprocessing = dataclasses.replace(base, size=(224, 224),
                                                 source=f"torchvision weights of {backbone.name} ({stats} mean/std)")
    return backbone


def _weights(pretrained: bool) -> str | None:
    return "DEFAULT" if pretrained else None


def _no_stride(output_stride: int, name: str) -> None:
    if output_stride not in (8, 32):
        warnings.warn(f"{name!r} is the WSOL backbone with reduction 8; `output_stride`={output_stride} is ignored",
                      stacklevel=3)


@register_backbone("vgg16_wsol")
def vgg16_wsol(pretrained: bool = False, output_stride: int = 8, **kwargs) -> Backbone:
    """VGG16 of Choe et al. (``VggCam``, 28 × 28): conv1_1 … conv5_3 without pool4 / pool5, then conv6 (1024)."""
    import torchvision

    _no_stride(output_stride, "vgg16_wsol")
    features = torchvision.models.vgg16(weights=_weights(pretrained), **kwargs).features
    layers = [m for i, m in enumerate(features) if i not in (23, 30)]  # pool4, pool5
    body = nn.Sequential(*layers, nn.Conv2d(512, 1024, kernel_size=3, padding=1), nn.ReLU(inplace=False))
    return _levels(Backbone(body, 1024, 8, "vgg16_wsol"),
                   [(3, 64, 1), (8, 128, 2), (15, 256, 4), (22, 512, 8), (30, 1024, 8)])


class _Stride1InceptionB(nn.Module):
    """torchvision's ``InceptionB`` (``Mixed_6a``) with stride 1 and padding 1 in all three branches."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block
        for conv in (block.branch3x3.conv, block.branch3x3dbl_3.conv):
            conv.stride, conv.padding = (1, 1), (1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.block
        dbl = b.branch3x3dbl_3(b.branch3x3dbl_2(b.branch3x3dbl_1(x)))
        return torch.cat([b.branch3x3(x), dbl, F.max_pool2d(x, kernel_size=3, stride=1, padding=1)], 1)


@register_backbone("inceptionv3_wsol")
def inceptionv3_wsol(pretrained: bool = False, output_stride: int = 8, **kwargs) -> Backbone:
    """InceptionV3 of Choe et al. (``InceptionCam``, 28 × 28): up to ``Mixed_6e``, then two 1024 convolutions."""
    import torchvision

    _no_stride(output_stride, "inceptionv3_wsol")
    if not pretrained:
        kwargs.setdefault("aux_logits", False)
        kwargs.setdefault("init_weights", True)
    m = torchvision.models.inception_v3(weights=_weights(pretrained), **kwargs)
    m.Conv2d_1a_3x3.conv.padding = (1, 1)
    body = nn.Sequential(
        m.Conv2d_1a_3x3, m.Conv2d_2a_3x3, m.Conv2d_2b_3x3,
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=True),
        m.Conv2d_3b_1x1, m.Conv2d_4a_3x3,
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=True),
        m.Mixed_5b, m.Mixed_5c, m.Mixed_5d, _Stride1InceptionB(m.Mixed_6a),
        m.Mixed_6b, m.Mixed_6c, m.Mixed_6d, m.Mixed_6e,
        nn.Dropout(0.5), nn.Conv2d(768, 1024, 3, padding=1), nn.ReLU(inplace=False),
        nn.Dropout(0.5), nn.Conv2d(1024, 1024, 3, padding=1), nn.ReLU(inplace=False),
    )
    return _levels(Backbone(body, 1024, 8, "inceptionv3_wsol"),
                   [(2, 64, 2), (5, 192, 4), (9, 288, 8), (14, 768, 8), (20, 1024, 8)], inception=True)


@register_backbone("resnet50_wsol")
def resnet50_wsol(pretrained: bool = False, output_stride: int = 8, **kwargs) -> Backbone:
    """ResNet-50 of Choe et al. (``ResNetCam``, 28 × 28): ``layer3`` and ``layer4`` with stride 1, no dilation."""
    import torchvision

    _no_stride(output_stride, "resnet50_wsol")
    m = torchvision.models.resnet50(weights=_weights(pretrained), **kwargs)
    for layer in (m.layer3, m.layer4):
        layer[0].conv2.stride = (1, 1)
        layer[0].downsample[0].stride = (1, 1)
    body = nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool, m.layer1, m.layer2, m.layer3, m.layer4)
    return _levels(Backbone(body, 2048, 8, "resnet50_wsol"),
                   [(2, 64, 2), (4, 256, 4), (5, 512, 8), (6, 1024, 8), (7, 2048, 8)])
