import math

import numpy as np
import pytest
import scipy.stats
import torch

from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError
from wsolkit.erasing import HAS_GRID_SIZES, HideAndSeek, has_mask, hide_and_seek
from wsolkit.erasing.has import _draw_grid_sizes


def _reference_hidden(seed, b, h, w, grid, p):
    """Pixel loop: a pixel is hidden iff the uniform draw of its cell (y // g, x // g) is < p."""
    g = torch.Generator().manual_seed(seed)
    cells = torch.rand((b, math.ceil(h / grid), math.ceil(w / grid)), generator=g).numpy()
    out = np.zeros((b, h, w), dtype=bool)
    for i in range(b):
        for y in range(h):
            for x in range(w):
                out[i, y, x] = cells[i, y // grid, x // grid] < p
    return out


@pytest.mark.parametrize("h,w,grid", [(8, 8, 4), (10, 7, 3), (9, 12, 9), (5, 5, 1)])
def test_grid_coverage_matches_pixel_loop(h, w, grid):
    g = torch.Generator().manual_seed(3)
    hidden = has_mask(3, (h, w), grid, 0.4, generator=g)
    assert hidden.shape == (3, h, w) and hidden.dtype == torch.bool
    np.testing.assert_array_equal(hidden.numpy(), _reference_hidden(3, 3, h, w, grid, 0.4))


@pytest.mark.parametrize("fill", [0.0, -1.5, (0.1, 0.2, 0.3), torch.tensor([1.0, 2.0, 3.0])])
def test_fill_and_visible_pixels(fill):
    x = torch.randn(4, 3, 12, 12)
    x0 = x.clone()
    out = hide_and_seek(x, grid_size=4, drop_rate=0.5, fill=fill, generator=torch.Generator().manual_seed(1))
    hidden = torch.from_numpy(_reference_hidden(1, 4, 12, 12, 4, 0.5))
    assert torch.equal(x, x0), "input modified"
    fill_t = torch.as_tensor(fill, dtype=torch.float32).reshape(-1)
    fill_t = fill_t.expand(3) if fill_t.numel() == 1 else fill_t
    for c in range(3):
        assert torch.all(out[:, c][hidden] == fill_t[c])
        assert torch.equal(out[:, c][~hidden], x[:, c][~hidden])
    assert hidden.any() and (~hidden).any()


def test_drop_rate_extremes_and_frequency():
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(hide_and_seek(x, 4, 0.0), x)
    assert torch.all(hide_and_seek(x, 4, 1.0, fill=7.0) == 7.0)
    hidden = has_mask(400, (32, 32), 4, 0.3, generator=torch.Generator().manual_seed(0))
    frac = hidden[:, ::4, ::4].float().mean().item()  # one pixel per cell: 25600 Bernoulli(0.3) draws
    assert abs(frac - 0.3) < 0.015


def test_identity_in_eval_and_reproducible():
    x = torch.randn(3, 3, 16, 16)
    assert hide_and_seek(x, 8, 0.9, training=False) is x
    mod = HideAndSeek(8, 0.9)
    mod.eval()
    assert torch.equal(mod(x), x)
    a = hide_and_seek(x, 4, 0.5, generator=torch.Generator().manual_seed(5))
    b = hide_and_seek(x, 4, 0.5, generator=torch.Generator().manual_seed(5))
    c = hide_and_seek(x, 4, 0.5, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    mod.train()
    mod.generator = torch.Generator().manual_seed(5)
    assert torch.equal(HideAndSeek(4, 0.5, generator=torch.Generator().manual_seed(5))(x), a)
    assert "grid_size=8" in repr(mod)


def test_gradient_only_through_visible_pixels():
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    out = hide_and_seek(x, 4, 0.5, generator=torch.Generator().manual_seed(1))
    out.sum().backward()
    hidden = torch.from_numpy(_reference_hidden(1, 2, 8, 8, 4, 0.5))[:, None].expand(2, 3, 8, 8)
    assert torch.equal(x.grad, (~hidden).double())


def test_bad_inputs():
    x = torch.zeros(2, 3, 16, 16)
    with pytest.raises(WSOLValueError, match="drop_rate"):
        hide_and_seek(x, 4, 1.5)
    with pytest.raises(WSOLValueError, match="drop_rate"):
        HideAndSeek(4, -0.1)
    with pytest.raises(ShapeError, match="grid_size"):
        hide_and_seek(x, 17, 0.5)
    with pytest.raises(WSOLValueError, match="grid_size"):
        hide_and_seek(x, 0, 0.5)
    with pytest.raises(ShapeError, match="fill"):
        hide_and_seek(x, 4, 0.5, fill=(0.0, 1.0))
    with pytest.raises(ShapeError, match=r"images.*\(3, 16, 16\)"):
        hide_and_seek(x[0], 4, 0.5)
    with pytest.raises(WSOLTypeError, match="images"):
        hide_and_seek(x.long(), 4, 0.5)
    with pytest.raises(WSOLTypeError, match="fill"):
        hide_and_seek(x, 4, 0.5, fill="mean")


def _reference_hide_patch(seed, b, h, w, sizes, p):
    """Pixel loop of the authors' ``hide_patch`` per image with the draw order of ``has_mask``: the B grid sizes
    (uniform index), then, image by image, the cells of a non-zero grid (a cell hidden iff its draw is < p)."""
    g = torch.Generator().manual_seed(seed)
    chosen = [sizes[i] for i in torch.randint(len(sizes), (b,), generator=g).tolist()]
    out = np.zeros((b, h, w), dtype=bool)
    for i, gs in enumerate(chosen):
        if gs == 0:
            continue
        cells = torch.rand((math.ceil(h / gs), math.ceil(w / gs)), generator=g).numpy()
        for y in range(0, h, gs):
            for x in range(0, w, gs):
                out[i, y : min(h, y + gs), x : min(w, x + gs)] = cells[y // gs, x // gs] < p
    return out, chosen


def test_random_grid_sizes_match_the_reference_loop():
    hidden = has_mask(6, (40, 36), 8, 0.5, generator=torch.Generator().manual_seed(4), grid_sizes=HAS_GRID_SIZES)
    ref, chosen = _reference_hide_patch(4, 6, 40, 36, HAS_GRID_SIZES, 0.5)
    np.testing.assert_array_equal(hidden.numpy(), ref)
    assert 44 in chosen or 56 in chosen  # sizes larger than the image: one cell covers it


def test_grid_size_distribution_and_erased_fraction():
    n = 2000
    chosen = _draw_grid_sizes(n, HAS_GRID_SIZES, torch.Generator().manual_seed(0))
    counts = [int((chosen == s).sum()) for s in HAS_GRID_SIZES]
    assert scipy.stats.chisquare(counts).pvalue > 0.01  # uniform over the five sizes
    # P(hidden pixel) = p * P(size != 0) = 0.5 * 4/5 on 112 px images (every cell of every size is whole or partial)
    hidden = has_mask(n, (112, 112), 8, 0.5, generator=torch.Generator().manual_seed(0), grid_sizes=HAS_GRID_SIZES)
    per_image = hidden.flatten(1).float().mean(1)
    assert abs(per_image.mean().item() - 0.4) < 0.02
    # 0 = no hiding: the images whose size is 0 are untouched, as often as 1/5
    g = torch.Generator().manual_seed(0)
    sizes = _draw_grid_sizes(n, HAS_GRID_SIZES, g)
    assert torch.equal(per_image[sizes == 0], torch.zeros(int((sizes == 0).sum())))
    assert abs(float((sizes == 0).float().mean()) - 0.2) < 0.03


def test_grid_sizes_in_the_transform_and_module():
    x = torch.randn(3, 3, 32, 32)
    g = torch.Generator().manual_seed(2)
    out = hide_and_seek(x, drop_rate=0.5, fill=0.0, generator=g, grid_sizes=(0, 8, 16))
    ref, _ = _reference_hide_patch(2, 3, 32, 32, (0, 8, 16), 0.5)
    hidden = torch.from_numpy(ref)[:, None].expand_as(x)
    assert torch.equal(out, torch.where(hidden, torch.zeros_like(x), x))
    mod = HideAndSeek(grid_sizes=(0, 8, 16), generator=torch.Generator().manual_seed(2))
    assert torch.equal(mod(x), out) and "grid_sizes=(0, 8, 16)" in repr(mod)
    assert hide_and_seek(x, grid_sizes=(0,)) is not x and torch.equal(hide_and_seek(x, grid_sizes=(0,)), x)
    with pytest.raises(WSOLValueError, match="grid_sizes"):
        hide_and_seek(x, grid_sizes=(16, -1))
    with pytest.raises(WSOLTypeError, match="grid_sizes"):
        HideAndSeek(grid_sizes=16)
    with pytest.raises(WSOLTypeError, match="grid_sizes"):
        hide_and_seek(x, grid_sizes=())
