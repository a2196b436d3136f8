import cv2
import numpy as np
import pytest
import torch

from wsolkit._checks import WSOLTypeError, WSOLValueError
from wsolkit.decoders.seeds import (
    FCAMSeeder,
    NEGEVSeeder,
    dilate,
    erode,
    fcam_seeds,
    negev_seeds,
    otsu_threshold,
    seed_map,
)


def _images(seed=0):
    g = np.random.default_rng(seed)
    out = []
    for k in range(60):
        kind = k % 4
        if kind == 0:
            a = g.integers(0, 256, (13, 17))
        elif kind == 1:
            a = np.clip(g.normal(60, 10, (20, 20)), 0, 255)
            a[5:12, 5:12] = np.clip(g.normal(180, 20, (7, 7)), 0, 255)
        elif kind == 2:
            a = g.choice([3, 50, 51, 200], size=(9, 11))
        else:
            a = np.clip(g.gamma(2.0, 20.0, (16, 16)), 0, 255)
        out.append(a.astype(np.uint8))
    return out


def test_otsu_matches_opencv():
    imgs = _images()
    for kind in range(4):
        group = imgs[kind::4]
        ref = [int(cv2.threshold(a, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[0]) for a in group]
        assert otsu_threshold(torch.from_numpy(np.stack(group))).tolist() == ref


def test_otsu_batched_and_constant():
    imgs = [a[:9, :11] for a in _images(1)[:8]]
    batch = torch.from_numpy(np.stack(imgs))
    ref = [int(cv2.threshold(a, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[0]) for a in imgs]
    assert otsu_threshold(batch).tolist() == ref
    const = np.full((5, 5), 77, np.uint8)
    assert int(otsu_threshold(torch.from_numpy(const)[None])[0]) == int(
        cv2.threshold(const, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[0]
    )


def test_otsu_errors():
    with pytest.raises(WSOLTypeError, match="uint8"):
        otsu_threshold(torch.zeros(1, 4, 4))
    with pytest.raises(WSOLValueError, match="images"):
        otsu_threshold(torch.zeros(4, 4, dtype=torch.uint8))


@pytest.mark.parametrize("k", [1, 3, 4, 5])
def test_morphology_matches_opencv(k):
    g = np.random.default_rng(k)
    m = g.random((2, 12, 15)) < 0.6
    kern = np.ones((k, k), np.uint8)
    for i in range(2):
        e = cv2.erode(m[i].astype(np.uint8), kern) > 0
        d = cv2.dilate(m[i].astype(np.uint8), kern) > 0
        assert np.array_equal(erode(torch.from_numpy(m), k)[i].numpy(), e)
        assert np.array_equal(dilate(torch.from_numpy(m), k)[i].numpy(), d)


def _blob_cam(b=2, h=24, w=20):
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    cams = []
    for i in range(b):
        c = torch.exp(-((yy - 8 - 3 * i) ** 2 + (xx - 9) ** 2) / 20.0)
        cams.append(c / c.max())
    return torch.stack(cams)


def test_fcam_seeds_counts_and_locations():
    cam = _blob_cam()
    n_fg, n_bg, min_p, ero = 7, 11, 0.2, 3
    s = fcam_seeds(cam, n_fg, n_bg, min_p, ero, 1, torch.Generator().manual_seed(0))
    for i in range(cam.shape[0]):
        u8 = np.floor(cam[i].numpy() * 255).astype(np.uint8)
        t, roi = cv2.threshold(u8, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        roi = cv2.erode(roi, np.ones((ero, ero), np.uint8)) > 0
        flat = cam[i].numpy().ravel()
        low = np.zeros(flat.size, bool)
        low[np.argsort(flat, kind="stable")[: int(np.floor(min_p * flat.size))]] = True
        low = low.reshape(cam[i].shape)
        assert roi.sum() > n_fg and not (roi & low).any()
        fg, bg = (s[i] == 1).numpy(), (s[i] == 0).numpy()
        assert fg.sum() == n_fg and bg.sum() == n_bg
        assert roi[fg].all() and low[bg].all()
        assert ((s[i] == 255).sum()) == cam[i].numel() - n_fg - n_bg


def test_fcam_seeds_small_roi_and_uniformity():
    cam = torch.zeros(1, 10, 10)
    cam[0, 4:6, 4:6] = 1.0  # ROI of 4 pixels; erosion would empty it -> un-eroded ROI used
    s = fcam_seeds(cam, n_fg=10, n_bg=3, erosion=3, generator=torch.Generator().manual_seed(1))
    assert int((s == 1).sum()) == 4 and bool((cam[s == 1] == 1).all())
    n = 800  # rows of a batch are independent draws
    s = fcam_seeds(cam.expand(n, -1, -1), n_fg=1, n_bg=0, erosion=1, generator=torch.Generator().manual_seed(2))
    counts = (s == 1).float().sum(0)
    freq = counts[4:6, 4:6].flatten() / n
    assert counts.sum() == n and bool(((freq - 0.25).abs() < 0.06).all())


def test_conflicts_become_ignore():
    # every ROI pixel is a fg seed and every lowest pixel a bg seed: the dilated sets overlap on a known band
    cam = torch.zeros(1, 8, 8)
    cam[0, :, 4:] = 1.0
    cam[0, :, :4] = torch.linspace(0.0, 0.1, 4)  # lowest 50% = columns 0-3
    s = fcam_seeds(cam, n_fg=64, n_bg=64, min_p=0.5, erosion=1, dilation=3, generator=torch.Generator())
    fg = cv2.dilate((cam[0].numpy() == 1).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    bg = cv2.dilate((cam[0].numpy() < 1).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    expect = np.full((8, 8), 255)
    expect[fg] = 1
    expect[bg] = 0
    expect[fg & bg] = 255
    assert np.array_equal(s[0].numpy(), expect)
    assert (expect == 255).sum() == 16  # columns 3 and 4


def test_negev_seeds_support_and_proportionality():
    cam = torch.tensor([0.0, 0.25, 0.75, 1.0]).view(1, 1, 4)
    n = 2000
    s = negev_seeds(cam.expand(n, -1, -1), n_fg=1, n_bg=1, generator=torch.Generator().manual_seed(0))[:, 0]
    assert bool((((s == 255).sum(1) == 2) | ((s == 255).sum(1) == 4)).all())  # a conflict removes both draws
    p_fg = cam[0, 0] / cam.sum()
    p_bg = (1 - cam[0, 0]) / (1 - cam).sum()
    # a pixel is seen as fg when drawn as fg and not also drawn as bg (independent draws)
    expect_fg = p_fg * (1 - p_bg)
    expect_bg = p_bg * (1 - p_fg)
    torch.testing.assert_close((s == 1).float().mean(0), expect_fg, atol=0.04, rtol=0)
    torch.testing.assert_close((s == 0).float().mean(0), expect_bg, atol=0.04, rtol=0)
    assert int((s[:, 0] == 1).sum()) == 0 and int((s[:, 3] == 0).sum()) == 0


def test_negev_min_p_restriction_and_counts():
    cam = _blob_cam(1)
    s = negev_seeds(cam, n_fg=5, n_bg=9, min_p=0.1, generator=torch.Generator().manual_seed(3))
    flat = cam[0].flatten()
    low = torch.zeros_like(flat, dtype=torch.bool)
    low[torch.argsort(flat, stable=True)[: int(0.1 * flat.numel())]] = True
    assert bool(low.view_as(cam[0])[s[0] == 0].all())
    assert int((s == 0).sum()) + int((s == 1).sum()) + int((s == 255).sum()) == cam.numel()
    assert int((s == 0).sum()) == 9 and int((s == 1).sum()) == 5


@pytest.mark.parametrize("cls", [FCAMSeeder, NEGEVSeeder])
def test_seeder_reproducible_and_redrawn(cls):
    cam = torch.rand(3, 16, 16)
    a = cls(n_fg=4, n_bg=4, seed=5)
    b = cls(n_fg=4, n_bg=4, seed=5)
    first = a(cam)
    assert torch.equal(first, b(cam))
    second = a(cam)
    assert not torch.equal(first, second)  # redrawn every call
    a.reset()
    assert torch.equal(a(cam), first)
    assert torch.equal(torch.get_rng_state(), torch.get_rng_state())  # the global stream is not used
    state = torch.get_rng_state()
    a(cam)
    assert torch.equal(torch.get_rng_state(), state)
    assert "n_fg=4" in repr(a)


def test_module_equals_function():
    cam = torch.rand(2, 12, 12)
    out = FCAMSeeder(n_fg=3, n_bg=2, min_p=0.2, erosion=3, dilation=3, seed=7)(cam)
    ref = fcam_seeds(cam, 3, 2, 0.2, 3, 3, torch.Generator().manual_seed(7))
    assert torch.equal(out, ref)
    out = NEGEVSeeder(n_fg=3, n_bg=2, min_p=0.4, dilation=1, seed=7)(cam)
    assert torch.equal(out, negev_seeds(cam, 3, 2, 0.4, 1, torch.Generator().manual_seed(7)))


def test_seed_map_protocol():
    cams = torch.randn(2, 3, 4, 5)
    labels = torch.tensor([2, 0])
    out = seed_map(cams, labels, (8, 10))
    sel = cams[torch.arange(2), labels]
    lo = sel.flatten(1).min(1).values.view(2, 1, 1)
    hi = sel.flatten(1).max(1).values.view(2, 1, 1)
    ref = torch.nn.functional.interpolate(((sel - lo) / (hi - lo))[:, None], size=(8, 10), mode="bilinear",
                                          align_corners=False)[:, 0]
    torch.testing.assert_close(out, ref)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_fg": -1}, "n_fg"),
        ({"n_bg": -2}, "n_bg"),
        ({"min_p": 0.0}, "min_p"),
        ({"min_p": 1.5}, "min_p"),
        ({"dilation": 0}, "dilation"),
    ],
)
def test_errors(kwargs, match):
    with pytest.raises(WSOLValueError, match=match):
        fcam_seeds(torch.rand(1, 4, 4), **kwargs)
    with pytest.raises(WSOLValueError, match=match):
        (NEGEVSeeder if "min_p" in kwargs else FCAMSeeder)(**kwargs)


def test_cam_errors():
    with pytest.raises(WSOLValueError, match="cam"):
        fcam_seeds(torch.full((1, 4, 4), 2.0))
    with pytest.raises(WSOLValueError, match="cam"):
        negev_seeds(torch.rand(4, 4))
    with pytest.raises(WSOLTypeError, match="cam"):
        negev_seeds(torch.zeros(1, 4, 4, dtype=torch.long))
