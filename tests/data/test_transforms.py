"""Augmentations move masks with images; HED jitter follows colour deconvolution (float64 reference)."""

import numpy as np
import pytest
import torch

from wsolkit._checks import ShapeError
from wsolkit.data.transforms import RGB_FROM_HED, Compose, HEDJitter, RandomCrop, RandomDihedral, hed_to_rgb, rgb_to_hed


def _coded(h, w):
    """An image whose channel 0 holds each pixel's index, and a random mask."""
    codes = torch.arange(h * w, dtype=torch.float64).view(h, w)
    image = torch.stack([codes, codes * 0, codes * 0])
    mask = torch.randint(0, 2, (h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(h * w))
    return image, mask


@pytest.mark.parametrize("transform,shape", [(RandomDihedral(), (6, 6)), (RandomDihedral(), (4, 6)),
                                             (RandomCrop((3, 4)), (6, 7)),
                                             (Compose([RandomCrop(5), RandomDihedral()]), (7, 6))])
def test_masks_move_with_images(transform, shape):
    image, mask = _coded(*shape)
    torch.manual_seed(0)
    outcomes = set()
    for _ in range(64):
        out, m = transform(image, mask)
        src = out[0].long()
        assert torch.equal(m, mask.flatten()[src.flatten()].view(src.shape))  # mask pixel follows its image pixel
        outcomes.add(tuple(src.flatten().tolist()))
    if isinstance(transform, RandomDihedral):
        assert len(outcomes) == (8 if shape[0] == shape[1] else 4)


def test_transforms_accept_no_mask_and_check_shapes():
    image, _ = _coded(4, 4)
    assert RandomDihedral()(image, None)[1] is None
    with pytest.raises(ShapeError, match="mask"):
        RandomDihedral()(image, torch.zeros(3, 4, dtype=torch.uint8))
    with pytest.raises(ShapeError, match="exceeds"):
        RandomCrop(5)(image, None)


def _ref_hed(rgb):
    m = np.array(RGB_FROM_HED, dtype=np.float64)
    od = -np.log(np.maximum(rgb.transpose(1, 2, 0), 1e-6))
    return (od @ np.linalg.inv(m)).transpose(2, 0, 1), m


def test_hed_matches_float64_colour_deconvolution():
    rgb = torch.rand(3, 5, 6, dtype=torch.float64) * 0.9 + 0.05
    ref, _ = _ref_hed(rgb.numpy())
    assert np.allclose(rgb_to_hed(rgb).numpy(), ref, atol=1e-12)
    assert torch.allclose(hed_to_rgb(rgb_to_hed(rgb)), rgb, atol=1e-12)


def test_hed_jitter_is_tellez_formula():
    rgb = torch.rand(3, 5, 6, dtype=torch.float64) * 0.9 + 0.05
    mask = torch.ones(5, 6, dtype=torch.uint8)
    torch.manual_seed(7)
    out, m = HEDJitter(0.1, 0.02)(rgb, mask)
    torch.manual_seed(7)
    alpha = 1 + (torch.rand(3) * 2 - 1).double().numpy() * 0.1
    beta = (torch.rand(3) * 2 - 1).double().numpy() * 0.02
    hed, mat = _ref_hed(rgb.numpy())
    hed = hed * alpha[:, None, None] + beta[:, None, None]
    ref = np.clip(np.exp(-(hed.transpose(1, 2, 0) @ mat)), 0, 1).transpose(2, 0, 1)
    assert np.allclose(out.numpy(), ref, atol=1e-6) and m is mask
    assert not torch.allclose(out, rgb, atol=1e-3)
