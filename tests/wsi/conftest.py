"""Shared fixtures of the whole-slide tests: real pyramidal TIFFs written with tifffile, a pointwise model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from wsolkit.data import Preprocessing
from wsolkit.output import WSOLOutput
from wsolkit.wsi import write_pyramidal_tiff


def slide_image(width=320, height=224, seed=0):
    """White glass with two pink tissue blobs and a purple region inside one of them."""
    import cv2

    rng = np.random.default_rng(seed)
    img = np.full((height, width, 3), 245, np.uint8)
    cv2.ellipse(img, (width // 3, height // 2), (width // 5, height // 3), 10, 0, 360, (226, 150, 196), -1)
    cv2.ellipse(img, (2 * width // 3 + 10, height // 2), (width // 6, height // 4), 0, 0, 360, (226, 150, 196), -1)
    cv2.circle(img, (width // 3, height // 2), height // 8, (150, 90, 170), -1)
    noise = rng.integers(-8, 9, img.shape)
    return np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def tiff_slide(tmp_path_factory):
    """A tiled, JPEG-compressed, 3-level pyramidal TIFF with mpp 0.25 and its level-0 array."""
    img = slide_image()
    path = write_pyramidal_tiff(tmp_path_factory.mktemp("slides") / "s.tif", img, num_levels=3, tile=64,
                                compression="jpeg", mpp=0.25)
    return path, img


class _Pointwise(nn.Module):
    """cams = a fixed 1x1 convolution of the input (K=2 maps at the input resolution), logits = their means."""

    preprocessing = Preprocessing(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), source="tiles in [0, 1]")

    def __init__(self, pool: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[1.0, -0.5, 0.25], [-1.0, 2.0, 0.5]]).view(2, 3, 1, 1))
            self.conv.bias.copy_(torch.tensor([0.1, -0.2]))
        self.pool = pool

    def forward(self, x, labels=None):
        m = self.conv(x)
        if self.pool > 1:
            m = nn.functional.avg_pool2d(m, self.pool)
        return WSOLOutput(m.mean((2, 3)), m, {})


@pytest.fixture
def Pointwise():  # noqa: N802 - the class itself, for tests that subclass or parametrise it
    return _Pointwise
