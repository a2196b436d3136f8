"""CAMELYON16 patch protocol (survey App. B) against hand-computed selections on small synthetic slides."""

from __future__ import annotations

import collections
import itertools

import cv2
import numpy as np
import pytest

from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError
from wsolkit.data.camelyon import (
    INDEX_COLUMNS,
    PatchProtocol,
    Slide,
    calibrate_category2,
    extract_patches,
    otsu_threshold,
    read_index,
    sample_metastatic_patches,
    sample_normal_patches,
    sample_split,
    split_slides,
    synthetic_slide,
    tissue_mask,
)
from wsolkit.wsi import InMemorySlide, OpenSlideReader, SlideReader

S = 16  # patch size of the hand-made slides
PINK = (230, 150, 200)  # HSV saturation 89; white background has saturation 0

# A 3 x 4 grid of 16 x 16 cells. Tissue: the top k rows of each cell (k multiple of 4, so block means at the
# 4x-downsampled level are exact). Tumour: the first n pixels of each cell in raster order.
TISSUE_ROWS = [
    [16, 16, 16, 16],
    [16, 4, 0, 16],
    [16, 16, 16, 16],
]
TUMOUR = [
    [0, 63, 64, 128],
    [129, 200, 200, 256],
    [256, 250, 100, 40],
]
# Hand-computed with p_t = p_0 = 0.25, p_1 = 0.5 (fractions over 256 pixels):
#   (r, c)  tissue   p_m        verdict
#   (0, 1)  1.0      63/256     < p_0           -> dropped
#   (0, 2)  1.0      64/256     = p_0           -> Category 1
#   (0, 3)  1.0      128/256    = p_1           -> Category 1
#   (1, 0)  1.0      129/256    > p_1 (bin 10)  -> Category 2
#   (1, 1)  0.25     200/256    tissue = p_t, bin 15 -> Category 2
#   (1, 2)  0.0      200/256    no tissue       -> dropped
#   (1, 3)  1.0      1.0        bin 19          -> Category 2
#   (2, 0)  1.0      1.0        bin 19          -> Category 2
#   (2, 1)  1.0      250/256    bin 19          -> Category 2
#   (2, 2)  1.0      100/256                    -> Category 1
#   (2, 3)  1.0      40/256     < p_0           -> dropped
CAT1 = {(0, 2), (0, 3), (2, 2)}
CAT2 = {(1, 0), (1, 1), (1, 3), (2, 0), (2, 1)}
PROTO = dict(patch_size=S, p_t=0.25, p_0=0.25, p_1=0.5)


def hand_arrays(tissue_rows=TISSUE_ROWS, tumour=TUMOUR):
    rows, cols = len(tissue_rows), len(tissue_rows[0])
    img = np.full((rows * S, cols * S, 3), 255, np.uint8)
    ann = np.zeros((rows * S, cols * S), np.uint8)
    for r, c in itertools.product(range(rows), range(cols)):
        img[r * S : r * S + tissue_rows[r][c], c * S : (c + 1) * S] = PINK
        cell = np.zeros(S * S, np.uint8)
        cell[: tumour[r][c]] = 1
        ann[r * S : (r + 1) * S, c * S : (c + 1) * S] = cell.reshape(S, S)
    return img, ann


def hand_slide(name="tumor_a"):
    img, ann = hand_arrays()
    return Slide(name, InMemorySlide.from_array(img, 3), InMemorySlide.from_array(ann, 3, mode="max"))


NORMAL_ROWS = [
    [16, 0, 16, 4],
    [0, 16, 0, 16],
    [16, 16, 0, 0],
]
NORMAL_OK = {(0, 0), (0, 2), (0, 3), (1, 1), (1, 3), (2, 0), (2, 1)}  # tissue >= 0.25


def normal_slide(name):
    img, _ = hand_arrays(NORMAL_ROWS, [[0] * 4] * 3)
    return Slide(name, InMemorySlide.from_array(img, 3))


def cell(rec):
    assert rec.x % S == 0 and rec.y % S == 0
    return rec.y // S, rec.x // S


# ------------------------------------------------------------------------------------------------ readers
def test_in_memory_reader_matches_slicing():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    slide = InMemorySlide.from_array(img, 3)
    assert isinstance(slide, SlideReader)
    assert slide.level_dimensions == [(48, 32), (24, 16), (12, 8)]
    # level 1 is the rounded 2x2 block mean, computed here in float64
    ref = np.floor(img.astype(np.float64).reshape(16, 2, 24, 2, 3).mean(axis=(1, 3)) + 0.5)
    np.testing.assert_array_equal(slide.read_region((0, 0), 1, (24, 16))[:, :, :3], ref)
    reg = slide.read_region((6, 4), 1, (5, 3))  # level-0 location -> level-1 (3, 2)
    np.testing.assert_array_equal(reg[:, :, :3], ref[2:5, 3:8])
    out = slide.read_region((44, 30), 0, (8, 4))  # partly outside: transparent
    np.testing.assert_array_equal(out[:2, :4, :3], img[30:32, 44:48])
    assert (out[:2, :4, 3] == 255).all() and (out[2:, :, 3] == 0).all() and (out[:, 4:, 3] == 0).all()


def test_in_memory_reader_bad_inputs():
    with pytest.raises(WSOLTypeError, match="uint8"):
        InMemorySlide([np.zeros((4, 4, 3), np.float32)])
    with pytest.raises(ShapeError, match=r"\(4, 4, 2\)"):
        InMemorySlide([np.zeros((4, 4, 2), np.uint8)])
    with pytest.raises(WSOLValueError, match="num_levels"):
        InMemorySlide.from_array(np.zeros((4, 4), np.uint8), 5)


# ------------------------------------------------------------------------------------------------ tissue
def otsu_reference(values):
    """Otsu in float64: argmax over t of w0 w1 (mu0 - mu1)^2 with classes {v <= t}, {v > t}; first t on ties."""
    hist = np.bincount(values.ravel(), minlength=256).astype(np.float64)
    p = hist / hist.sum()
    var = np.full(256, -1.0)
    for t in range(256):
        w0, w1 = p[: t + 1].sum(), p[t + 1 :].sum()
        if w0 == 0 or w1 == 0:
            continue
        mu0 = (np.arange(t + 1) * p[: t + 1]).sum() / w0
        mu1 = (np.arange(t + 1, 256) * p[t + 1 :]).sum() / w1
        var[t] = w0 * w1 * (mu0 - mu1) ** 2
    return int(np.flatnonzero(var >= var.max() * (1 - 1e-12))[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_otsu_matches_reference(seed):
    rng = np.random.default_rng(seed)
    v = np.concatenate([rng.normal(40, 12, 3000), rng.normal(150, 25, 1000 + 500 * seed)])
    v = np.clip(v, 0, 255).astype(np.uint8)
    t = otsu_threshold(v)
    assert t == otsu_reference(v)
    assert 60 < t < 130


def test_tissue_mask_channels():
    rgb = np.array([[[255, 255, 255], PINK, [0, 0, 0]]], np.uint8)
    assert tissue_mask(rgb, 40).tolist() == [[False, True, False]]  # saturation: black is not tissue
    assert tissue_mask(rgb, 200, "gray").tolist() == [[False, True, True]]
    rgba = np.array([[[0, 0, 0, 0], [*PINK, 255]]], np.uint8)  # transparent = white background
    assert tissue_mask(rgba, 200, "gray").tolist() == [[False, True]]
    assert tissue_mask(rgba, 40).tolist() == [[False, True]]


def test_tissue_threshold_is_inclusive():
    # cell (1, 1) has exactly p_t = 25% tissue: kept at p_t = 0.25, dropped just above
    keep = {cell(r) for r in sample_metastatic_patches(hand_slide(), PatchProtocol(**PROTO))}
    assert (1, 1) in keep
    drop = {cell(r) for r in sample_metastatic_patches(hand_slide(), PatchProtocol(**{**PROTO, "p_t": 0.2501}))}
    assert drop == keep - {(1, 1)}
    # p_t = 0 also takes the tumour cell without tissue
    alls = {cell(r) for r in sample_metastatic_patches(hand_slide(), PatchProtocol(**{**PROTO, "p_t": 0.0}))}
    assert alls == keep | {(1, 2)}


def checkerboard_slide():
    """One tumour cell whose level-0 tissue is a pink/white checkerboard (50%); uniform mixed colour when reduced."""
    img = np.full((S, 2 * S, 3), 255, np.uint8)
    yy, xx = np.mgrid[:S, :S]
    img[:, :S][(yy + xx) % 2 == 0] = PINK
    img[:, S:] = PINK  # a full tissue cell so both colours exist
    ann = np.zeros((S, 2 * S), np.uint8)
    ann[:, :S] = 1
    return Slide("chk", InMemorySlide.from_array(img, 3), ann)


def test_tissue_double_check_at_level_0():
    # reduced mixed colour (243, 203, 228) has saturation 42: with threshold 20 the low level sees 100% tissue,
    # level 0 sees exactly 50%
    base = dict(patch_size=S, p_0=0.5, p_1=1.0, tissue_threshold=20)
    recs = sample_metastatic_patches(checkerboard_slide(), PatchProtocol(p_t=0.5, **base))
    assert [cell(r) for r in recs] == [(0, 0)] and recs[0].tissue_fraction == 0.5
    assert sample_metastatic_patches(checkerboard_slide(), PatchProtocol(p_t=0.6, **base)) == []
    # with threshold 50 the low level sees no tissue: rejected although level 0 has 50%
    base["tissue_threshold"] = 50
    assert sample_metastatic_patches(checkerboard_slide(), PatchProtocol(p_t=0.25, **base)) == []


# ------------------------------------------------------------------------------------------------ metastatic
@pytest.mark.parametrize("scan_level", [None, 0, 2])
def test_metastatic_categories_hand_computed(scan_level):
    recs = sample_metastatic_patches(hand_slide(), PatchProtocol(**PROTO, scan_level=scan_level), split="train")
    got = {cell(r): r for r in recs}
    assert {k for k, r in got.items() if r.category == 1} == CAT1
    assert {k for k, r in got.items() if r.category == 2} == CAT2
    for (r, c), rec in got.items():
        assert rec.tumour_fraction == TUMOUR[r][c] / 256
        assert rec.tissue_fraction == TISSUE_ROWS[r][c] / 16
        assert rec.label == 1 and rec.size == S and rec.split == "train" and rec.slide == "tumor_a"


def test_metastatic_with_2d_array_annotation():
    img, ann = hand_arrays()
    recs = sample_metastatic_patches(Slide("a", InMemorySlide.from_array(img, 3), ann), PatchProtocol(**PROTO))
    assert {cell(r) for r in recs} == CAT1 | CAT2


# ------------------------------------------------------------------------------------------------ calibration
def test_calibration_count_rounding_and_category():
    fr = [0.3, 0.45, 0.51, 0.6, 0.6, 0.8, 0.99, 1.0]
    cat2 = {2, 3, 4, 5, 6, 7}
    for n1, p_n, k in [(149, 0.01, 1), (150, 0.01, 2), (50, 0.01, 1), (49, 0.01, 0), (3, 0.5, 2), (100, 1.0, 6)]:
        idx = calibrate_category2(fr, n1, p_1=0.5, p_n=p_n, rng=0).tolist()
        assert len(idx) == k and len(set(idx)) == k and set(idx) <= cat2
    # p_1 inside a bin: only the Category 2 member of bin [0.5, 0.55) can be drawn
    assert calibrate_category2([0.51, 0.53], 100, p_1=0.52, p_n=1.0, rng=0).tolist() == [1]


def test_calibration_uniform_over_bins_then_patches():
    # bin 10 holds one patch, bin 19 nine: a bin is picked uniformly, then a patch within it
    fr = [0.52] + [0.96 + 0.004 * i for i in range(9)]
    counts = collections.Counter()
    trials = 4000
    for seed in range(trials):
        (i,) = calibrate_category2(fr, 100, p_n=0.01, rng=seed).tolist()
        counts[i] += 1
    assert abs(counts[0] / trials - 0.5) < 0.04  # per patch it would be 0.1
    for i in range(1, 10):
        assert abs(counts[i] / trials - 0.5 / 9) < 0.02


def test_calibration_without_repetition_drops_empty_bins():
    # k = 3 from bins {10: [a], 19: [b, c, d]}: a is missed only if bin 19 is drawn 3 times: P(a) = 1 - 1/8
    fr = [0.52, 0.97, 0.98, 0.99]
    trials = 4000
    hit = sum(0 in calibrate_category2(fr, 300, p_n=0.01, rng=s).tolist() for s in range(trials))
    assert abs(hit / trials - 7 / 8) < 0.025


# ------------------------------------------------------------------------------------------------ split / normal
def test_sample_split_hand_computed():
    slides = [hand_slide(), normal_slide("normal_a"), normal_slide("normal_b")]
    recs = sample_split(slides, PatchProtocol(**PROTO, p_n=0.5), split="valid")
    meta = [r for r in recs if r.label == 1]
    assert {cell(r) for r in meta if r.category == 1} == CAT1
    cat2 = [cell(r) for r in meta if r.category == 2]
    assert len(cat2) == 2 and set(cat2) <= CAT2  # round(3 * 0.5) = 2
    n_m = len(meta)
    assert n_m == 5
    per = collections.Counter(r.slide for r in recs if r.label == 0)
    assert per == {"normal_a": 3, "normal_b": 2}  # n_m / h = 2.5: the first slide takes the remainder
    for r in recs:
        if r.label == 0:
            assert r.category == 0 and r.tumour_fraction == 0.0 and cell(r) in NORMAL_OK
            assert r.tissue_fraction == NORMAL_ROWS[cell(r)[0]][cell(r)[1]] / 16
    assert all(r.split == "valid" for r in recs)


def test_no_overlaps():
    img, ann = synthetic_slide(384, 320, True, seed=3, num_levels=3)
    nimg, _ = synthetic_slide(384, 320, False, seed=4, num_levels=3)
    recs = sample_split([Slide("t", img, ann), Slide("n", nimg)], PatchProtocol(patch_size=32, p_n=1.0))
    assert len(recs) > 4
    for a, b in itertools.combinations(recs, 2):
        if a.slide == b.slide:
            overlap_x = a.x < b.x + b.size and b.x < a.x + a.size
            overlap_y = a.y < b.y + b.size and b.y < a.y + a.size
            assert not (overlap_x and overlap_y), (a, b)


def test_normal_sampling_uniform_and_exhaustive():
    proto = dict(PROTO)
    counts = collections.Counter()
    trials = 600
    for seed in range(trials):
        recs = sample_normal_patches(normal_slide("n"), 2, PatchProtocol(**proto, seed=seed))
        assert len(recs) == 2 and len({cell(r) for r in recs}) == 2
        counts.update(cell(r) for r in recs)
    assert set(counts) == NORMAL_OK
    for c in NORMAL_OK:  # 2 of 7 eligible cells: 2/7 each
        assert abs(counts[c] / trials - 2 / 7) < 0.07
    # asking for more than the slide holds returns every eligible cell once
    assert {cell(r) for r in sample_normal_patches(normal_slide("n"), 50, PatchProtocol(**proto))} == NORMAL_OK


def test_reproducible_by_seed():
    def run(seed):
        slides = [hand_slide(), normal_slide("normal_a"), normal_slide("normal_b")]
        return sample_split(slides, PatchProtocol(**PROTO, p_n=0.5, seed=seed))

    assert run(7) == run(7)
    assert any(run(7) != run(s) for s in range(8, 14))


def test_split_slides_hand_counts():
    names = [f"normal_{i:03d}" for i in range(10)] + [f"tumor_{i:03d}" for i in range(7)]
    meta = [n.startswith("tumor") for n in names]
    splits = split_slides(names, meta, {"train": 0.6, "valid": 0.2, "test": 0.2}, seed=0)
    # normal: 6/2/2; tumour: 4.2/1.4/1.4 -> 4/1/1 + the remaining one to the earlier tied split (valid)
    for k, (nn, nt) in {"train": (6, 4), "valid": (2, 2), "test": (2, 1)}.items():
        assert sum(not n.startswith("tumor") for n in splits[k]) == nn
        assert sum(n.startswith("tumor") for n in splits[k]) == nt
    assert sorted(itertools.chain(*splits.values())) == sorted(names)
    assert split_slides(names, meta, seed=0) == split_slides(names, meta, seed=0)
    assert split_slides(names, meta, seed=0) != split_slides(names, meta, seed=1)


# ------------------------------------------------------------------------------------------------ output
def test_extract_patches_writes_images_masks_index(tmp_path):
    tumour, normal = hand_slide(), normal_slide("normal_a")
    img, ann = hand_arrays()
    nimg, _ = hand_arrays(NORMAL_ROWS, [[0] * 4] * 3)
    index = extract_patches({"train": [tumour, normal]}, tmp_path, PatchProtocol(**PROTO, p_n=0.5))
    rows = read_index(index)
    assert tuple(rows[0]) == INDEX_COLUMNS
    assert sum(r["label"] for r in rows) == 5 and len(rows) == 10
    for r in rows:
        x, y = r["x"], r["y"]
        patch = cv2.cvtColor(cv2.imread(str(tmp_path / r["image"])), cv2.COLOR_BGR2RGB)
        mask = cv2.imread(str(tmp_path / r["mask"]), cv2.IMREAD_GRAYSCALE)
        src = img if r["label"] else nimg
        np.testing.assert_array_equal(patch, src[y : y + S, x : x + S])
        want = ann[y : y + S, x : x + S] * 255 if r["label"] else np.zeros((S, S))
        np.testing.assert_array_equal(mask, want)
        assert r["tumour_fraction"] == pytest.approx((mask > 0).mean())


# ------------------------------------------------------------------------------------------------ errors
def test_bad_inputs_typed_errors():
    with pytest.raises(WSOLValueError, match="p_t"):
        PatchProtocol(p_t=1.5)
    with pytest.raises(WSOLValueError, match="p_n"):
        PatchProtocol(p_n=-0.01)
    with pytest.raises(WSOLValueError, match=r"p_0.*<=.*p_1.*0\.6.*0\.5"):
        PatchProtocol(p_0=0.6, p_1=0.5)
    with pytest.raises(WSOLTypeError, match="patch_size"):
        PatchProtocol(patch_size=51.2)
    with pytest.raises(WSOLValueError, match=r"patch_size.*64.*\(64, 48\)"):
        sample_metastatic_patches(hand_slide(), PatchProtocol(patch_size=64))
    with pytest.raises(WSOLValueError, match=r"patch_size.*64.*\(64, 48\)"):
        sample_normal_patches(normal_slide("n"), 1, PatchProtocol(patch_size=64))
    img, ann = hand_arrays()
    with pytest.raises(ShapeError, match=r"annotation.*\(64, 48\).*\(64, 32\)"):
        sample_metastatic_patches(Slide("a", InMemorySlide.from_array(img, 3), ann[:32]), PatchProtocol(**PROTO))
    with pytest.raises(ShapeError, match=r"\(H, W\)"):
        sample_metastatic_patches(Slide("a", InMemorySlide.from_array(img, 3), ann[..., None]), PatchProtocol(**PROTO))
    with pytest.raises(WSOLTypeError, match="SlideReader"):
        sample_normal_patches(Slide("a", img), 1, PatchProtocol(**PROTO))
    with pytest.raises(WSOLValueError, match="no tumour annotation"):
        sample_metastatic_patches(normal_slide("n"), PatchProtocol(**PROTO))
    with pytest.raises(WSOLValueError, match="unique"):
        sample_split([normal_slide("n"), normal_slide("n")], PatchProtocol(**PROTO))
    with pytest.raises(WSOLValueError, match="WSI level"):
        extract_patches({"train": [normal_slide("n")], "test": [normal_slide("n")]}, "unused", PatchProtocol(**PROTO))
    with pytest.raises(WSOLValueError, match="sum to 1"):
        split_slides(["a", "b"], [True, False], {"train": 0.5, "test": 0.4})
    with pytest.raises(WSOLValueError, match=r"tumour_fractions.*\[0, 1\]"):
        calibrate_category2([0.5, 1.2], 10)
    with pytest.raises(FileNotFoundError):
        OpenSlideReader("no_such_slide.tif")


# ------------------------------------------------------------------------------------------------ OpenSlide
def write_pyramid_tiff(path, level0, num_levels, photometric):
    tifffile = pytest.importorskip("tifffile")
    slide = InMemorySlide.from_array(level0, num_levels, mode="area" if level0.ndim == 3 else "max")
    with tifffile.TiffWriter(path) as tw:
        for lvl, (w, h) in enumerate(slide.level_dimensions):
            a = slide.read_region((0, 0), lvl, (w, h))
            a = a[:, :, :3] if level0.ndim == 3 else a[:, :, 0]
            tw.write(a, tile=(16, 16), photometric=photometric, compression="zlib", subfiletype=0 if lvl == 0 else 1)


def test_openslide_adapter_on_pyramidal_tiff(tmp_path):
    pytest.importorskip("openslide")
    img, ann = hand_arrays()
    write_pyramid_tiff(tmp_path / "tumor_a.tif", img, 3, "rgb")
    write_pyramid_tiff(tmp_path / "tumor_a_mask.tif", ann, 3, "minisblack")
    nimg, _ = hand_arrays(NORMAL_ROWS, [[0] * 4] * 3)
    write_pyramid_tiff(tmp_path / "normal_a.tif", nimg, 3, "rgb")

    with OpenSlideReader(tmp_path / "tumor_a.tif") as reader:
        assert isinstance(reader, SlideReader)
        assert reader.level_dimensions == [(64, 48), (32, 24), (16, 12)]
        assert reader.level_downsamples == [1.0, 2.0, 4.0]
        np.testing.assert_array_equal(reader.read_region((16, 16), 0, (16, 16))[:, :, :3], img[16:32, 16:32])

    files = [
        Slide("tumor_a", str(tmp_path / "tumor_a.tif"), tmp_path / "tumor_a_mask.tif"),
        Slide("normal_a", tmp_path / "normal_a.tif"),
    ]
    memory = [hand_slide(), normal_slide("normal_a")]
    proto = PatchProtocol(**PROTO, p_n=0.5, seed=3)
    got = sample_split(files, proto)
    assert got == sample_split(memory, proto)
    assert {cell(r) for r in got if r.category == 1} == CAT1
    rows = read_index(extract_patches({"train": files}, tmp_path / "out", proto))
    for r in rows:
        mask = cv2.imread(str(tmp_path / "out" / r["mask"]), cv2.IMREAD_GRAYSCALE)
        np.testing.assert_array_equal(mask, ann[r["y"] : r["y"] + S, r["x"] : r["x"] + S] * 255 * r["label"])


def test_patches_dataset_roundtrip(tmp_path):
    from wsolkit.data.camelyon import CamelyonPatches

    img, ann = hand_arrays()
    extract_patches({"train": [hand_slide()], "test": [normal_slide("n")]}, tmp_path, PatchProtocol(**PROTO))
    ds = CamelyonPatches(tmp_path, "train")
    images, labels, masks = ds.tensors()
    assert images.shape == (len(ds), 3, S, S) and labels.tolist() == [1] * len(ds)
    for row, image, mask in zip(ds.rows, images, masks):
        x, y = row["x"], row["y"]
        np.testing.assert_array_equal((image.permute(1, 2, 0).numpy() * 255).round(), img[y : y + S, x : x + S])
        np.testing.assert_array_equal(mask.numpy(), ann[y : y + S, x : x + S])
    with pytest.raises(WSOLValueError, match="split"):
        CamelyonPatches(tmp_path, "valid")


def test_normal_shortfall_warns():
    slides = [hand_slide(), normal_slide("normal_a")]
    with pytest.warns(UserWarning, match="normal_a.*only 7"):
        recs = sample_split(slides, PatchProtocol(**{**PROTO, "p_0": 0.0, "p_n": 1.0}))
    assert sum(r.label == 0 for r in recs) == 7


def test_openslide_missing_names_the_extra(tmp_path, monkeypatch):
    import sys

    path = tmp_path / "slide.tif"
    path.write_bytes(b"")
    monkeypatch.setitem(sys.modules, "openslide", None)
    with pytest.raises(ImportError, match=r"openslide-python.*openslide-bin"):
        OpenSlideReader(path)


def test_extract_patches_declares_mask_convention(tmp_path):
    from wsolkit.data.masks import BINARY_255, read_dataset_json

    extract_patches({"train": [hand_slide(), normal_slide("n")]}, tmp_path, PatchProtocol(**PROTO))
    for split in ("train",):
        conv = read_dataset_json(tmp_path / "masks" / split)
        assert conv == BINARY_255
        for p in (tmp_path / "masks" / split).glob("*.png"):
            conv.decode(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE), str(p))  # every stored value is named


def test_xml_annotation_file_equals_mask_array(tmp_path):
    # rectangles of a CAMELYON16 XML file, one with an exclusion polygon (group _2) inside
    img, _ = hand_arrays()
    boxes = {"_0": [(0, 0, 40, 10), (10, 20, 60, 44)], "_2": [(20, 24, 30, 30)]}
    xml = ["<ASAP_Annotations><Annotations>"]
    ann = np.zeros(img.shape[:2], np.uint8)
    for group, rects in boxes.items():
        for x0, y0, x1, y1 in rects:
            pts = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
            coords = "".join(f'<Coordinate Order="{i}" X="{x}" Y="{y}"/>' for i, (x, y) in enumerate(pts))
            xml.append(f'<Annotation Type="Polygon" PartOfGroup="{group}"><Coordinates>{coords}</Coordinates>'
                       "</Annotation>")
            ann[y0:y1, x0:x1] = 0 if group == "_2" else 1  # pixel centres inside: x0 <= x + 0.5 < x1
    xml.append("</Annotations></ASAP_Annotations>")
    (tmp_path / "a.xml").write_text("".join(xml))
    proto = PatchProtocol(**PROTO)
    from_file = sample_metastatic_patches(Slide("a", InMemorySlide.from_array(img, 3), tmp_path / "a.xml"), proto)
    from_array = sample_metastatic_patches(Slide("a", InMemorySlide.from_array(img, 3), ann), proto)
    assert from_file == from_array and len(from_file) > 0
