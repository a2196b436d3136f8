"""The wsolevaluation metadata format: masks merged, ignore regions, boxes, odd paths, named errors."""

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from wsolkit._checks import WSOLValueError
from wsolkit.data.wsolevaluation import (
    WSOLEvalDataset,
    camelyon_fold,
    metadata_from_camelyon_patches,
    read_encoding,
    read_metadata,
    write_metadata,
)

ODD = "Warwick_QU_Dataset_(Released_2016_07_08)"


def _write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


@pytest.fixture()
def masks_split(tmp_path):
    """Two images in an OpenImages-like layout: image 0 has two masks and an ignore mask, image 1 no mask."""
    rng = np.random.default_rng(0)
    root, meta = tmp_path / "data root", tmp_path / "meta" / "fold-0" / "test"
    meta.mkdir(parents=True)
    img0, img1 = f"{ODD}/test A (1).png", "normal patches/p_1.png"
    rgb0 = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    _write_png(root / img0, rgb0)
    _write_png(root / img1, rng.integers(0, 256, (10, 12, 3), dtype=np.uint8))
    m_a, m_b, ig = (np.zeros((10, 12), np.uint8) for _ in range(3))
    m_a[1:4, 1:5] = 255
    m_b[3:7, 4:9] = 255
    ig[0:8, 0:10] = 255
    for name, a in (("m a.png", m_a), ("m_b.png", m_b), ("ignore (box).png", ig)):
        _write_png(root / ODD / name, a)
    (meta / "image_ids.txt").write_text(f"{img0}\n{img1}\n")
    (meta / "class_labels.txt").write_text(f"{img0},1\n{img1},0\n")
    (meta / "image_sizes.txt").write_text(f"{img0},12,10\n{img1},12,10\n")
    (meta / "localization.txt").write_text(
        f"{img0},{ODD}/m a.png,{ODD}/ignore (box).png\n{img0},{ODD}/m_b.png,\n{img1},,\n")
    (tmp_path / "meta" / "encoding.yaml").write_text("{normal: 0, tumor: 1}\n")
    fg = (m_a > 0) | (m_b > 0)
    expected0 = fg.astype(np.uint8)
    expected0[(ig > 0) & ~fg] = 255
    return root, meta, rgb0, expected0


def test_items_merge_masks_and_ignore(masks_split):
    root, meta, rgb0, expected0 = masks_split
    ds = WSOLEvalDataset(root, meta)
    assert ds.classes == ["normal", "tumor"]  # encoding.yaml two levels up (the survey's layout)
    assert len(ds) == 2 and ds.has_masks and ds.labels.tolist() == [1, 0]
    image, label, mask = ds[0]
    assert label == 1
    assert torch.equal(mask, torch.from_numpy(expected0))
    ref = torch.from_numpy(cv2.cvtColor(rgb0, cv2.COLOR_BGR2RGB)).permute(2, 0, 1).float() / 255
    assert torch.equal(image, ref)
    _, label1, mask1 = ds[1]
    assert label1 == 0 and mask1.dtype == torch.uint8 and int(mask1.sum()) == 0  # empty fields: all background
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert batch[0].shape == (2, 3, 10, 12) and batch[2].shape == (2, 10, 12)


def test_resize_keeps_mask_values(masks_split):
    root, meta, _, expected0 = masks_split
    _, _, mask = WSOLEvalDataset(root, meta, size=(20, 24))[0]
    ref = cv2.resize(expected0, (24, 20), interpolation=cv2.INTER_NEAREST)
    assert set(mask.unique().tolist()) <= {0, 1, 255}
    assert torch.equal(mask, torch.from_numpy(ref))


def test_missing_file_is_named(masks_split):
    root, meta, _, _ = masks_split
    (root / ODD / "m_b.png").unlink()
    with pytest.raises(WSOLValueError, match=r"m_b\.png"):
        WSOLEvalDataset(root, meta)
    ds = WSOLEvalDataset(root, meta, check_files=False)
    with pytest.raises(WSOLValueError, match=r"m_b\.png' does not exist"):
        ds[0]


def test_prefixes_map_to_the_spelling_on_disk(masks_split):
    root, meta, _, expected0 = masks_split
    (root / ODD).rename(root / "Warwick QU Dataset (Released 2016_07_08)")
    with pytest.raises(WSOLValueError, match="missing"):
        WSOLEvalDataset(root, meta)
    ds = WSOLEvalDataset(root, meta, prefixes={ODD: "Warwick QU Dataset (Released 2016_07_08)"})
    assert torch.equal(ds[0][2], torch.from_numpy(expected0))


def test_boxes_split(tmp_path):
    root, meta = tmp_path / "CUB", tmp_path / "metadata" / "CUB" / "test"
    meta.mkdir(parents=True)
    img = "001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg"
    _write_png(root / img, np.zeros((30, 40, 3), np.uint8))
    (meta / "image_ids.txt").write_text(img + "\n")
    (meta / "class_labels.txt").write_text(img + ",0\n")
    (meta / "image_sizes.txt").write_text(img + ",40,30\n")
    (meta / "localization.txt").write_text(f"{img},6,2,38,33\n{img},1,1,4,5\n")
    ds = WSOLEvalDataset(root, meta)
    assert read_metadata(meta).sizes == {img: (40, 30)}
    assert ds.boxes(0).tolist() == [[6, 2, 38, 33], [1, 1, 4, 5]]
    _, label, mask = ds[0]
    assert label == 0 and not ds.has_masks and bool((mask == 255).all())


@pytest.mark.parametrize("line, match", [
    ("a.png\n", "2 comma-separated"), ("a.png,x\n", "not an integer")])
def test_malformed_labels(tmp_path, line, match):
    (tmp_path / "image_ids.txt").write_text("a.png\n")
    (tmp_path / "class_labels.txt").write_text(line)
    with pytest.raises(WSOLValueError, match=match):
        read_metadata(tmp_path)


def test_ignore_on_second_line_is_an_error(tmp_path):
    (tmp_path / "image_ids.txt").write_text("a.png\n")
    (tmp_path / "class_labels.txt").write_text("a.png,0\n")
    (tmp_path / "localization.txt").write_text("a.png,m1.png,\na.png,m2.png,ig.png\n")
    with pytest.raises(WSOLValueError, match="first line"):
        read_metadata(tmp_path)


def test_encoding_forms(tmp_path):
    p = tmp_path / "encoding.yaml"
    p.write_text("benign: 0\nmalignant: 1\n")
    assert read_encoding(p) == ["benign", "malignant"]
    p.write_text("{a: 1, b: 2}")
    with pytest.raises(WSOLValueError, match="0..K-1"):
        read_encoding(p)


def test_write_then_read_roundtrip(tmp_path):
    items = [("x (1).png", 1, "x (1)_m.png", (8, 6)), ("y.png", 0, None, None)]
    write_metadata(tmp_path / "s", items)
    m = read_metadata(tmp_path / "s")
    assert m.image_ids == ["x (1).png", "y.png"] and m.labels == {"x (1).png": 1, "y.png": 0}
    assert m.masks == {"x (1).png": ["x (1)_m.png"], "y.png": []} and m.sizes == {"x (1).png": (8, 6)}
    with pytest.raises(WSOLValueError, match="commas"):
        write_metadata(tmp_path / "t", [("a,b.png", 0, None, None)])


def test_camelyon_patches_as_survey_folds(tmp_path):
    from wsolkit.data.camelyon import CamelyonPatches, PatchProtocol, Slide, extract_patches
    from wsolkit.data.camelyon.dataset import synthetic_slide

    slides = {}
    for split, seeds in (("train", (0, 1)), ("valid", (2, 3)), ("test", (4, 5))):
        out = []
        for s in seeds:
            tumour = s % 2 == 0
            image, annotation = synthetic_slide(256, 256, tumour, seed=s)
            out.append(Slide(f"{split}{s}", image, annotation))
        slides[split] = out
    root = extract_patches(slides, tmp_path / "patches", PatchProtocol(patch_size=64)).parent
    splits = metadata_from_camelyon_patches(root, tmp_path / "splits", valpx_per_class=1)
    ref = CamelyonPatches(root, "test")
    test = camelyon_fold(root, splits, 0, "test")
    assert test.classes == ["normal", "tumor"] and len(test) == len(ref)
    for i in (0, len(ref) - 1):
        a, b = ref[i], test[i]
        assert torch.equal(a[0], b[0]) and a[1] == b[1] and torch.equal(a[2], b[2])
    valpx = camelyon_fold(root, splits, 0, "valpx")
    classes_in_valid = sorted({int(r["label"]) for r in CamelyonPatches(root, "valid").rows})
    assert sorted(valpx.labels.tolist()) == classes_in_valid  # one per class present
    assert len(camelyon_fold(root, splits, 0, "valcl")) == len(CamelyonPatches(root, "valid"))
