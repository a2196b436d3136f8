"""Folder and CSV datasets: items equal the files written, masks decoded by their declared convention, named errors."""

import csv

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from wsolkit._checks import WSOLValueError
from wsolkit.data import BINARY_255, CSVDataset, ImageFolderDataset, SyntheticHistology
from wsolkit.data.masks import IGNORE


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    ds = SyntheticHistology("glas", "test", n=6, size=64, seed=3)
    images, masks = ds.to_folder(root)
    return ds, images, masks


def test_items_equal_rendered_files(folder):
    ds, images, masks = folder
    data = ImageFolderDataset(images, masks)
    assert data.classes == ["benign", "malignant"]
    assert data.mask_convention == BINARY_255  # read from masks/dataset.json
    assert len(data) == 6
    by_stem = {s: i for i, s in enumerate(data.stems)}
    for i in range(ds.n):
        rgb, m = ds.render(i)
        image, label, mask = data[by_stem[f"test_{i:04d}"]]
        assert label == ds.label(i)
        assert torch.equal(mask, torch.from_numpy(m))  # 0/255 on disk -> 0/1 in memory, exactly
        ref = torch.from_numpy((np.clip(rgb, 0, 1) * 255).round().astype(np.float32) / 255).permute(2, 0, 1)
        assert torch.allclose(image, ref, atol=1e-7)


def test_csv_dataset_matches_folder(folder, tmp_path):
    ds, images, masks = folder
    data = ImageFolderDataset(images, masks)
    path = tmp_path / "list.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "mask"])
        for (img, label, m), in zip(data.samples):
            w.writerow([str(img), data.classes[label], str(m)])
    other = CSVDataset(path, root="/")
    assert other.classes == data.classes and other.mask_convention == BINARY_255
    for a, b in zip(data, other):
        assert torch.equal(a[0], b[0]) and a[1] == b[1] and torch.equal(a[2], b[2])


@pytest.mark.filterwarnings("ignore:.pin_memory.:UserWarning")
def test_loader_with_workers_pin_memory_persistent(folder):
    _, images, masks = folder
    data = ImageFolderDataset(images, masks)
    ref = list(DataLoader(data, batch_size=4))
    got = list(DataLoader(data, batch_size=4, num_workers=2, persistent_workers=True, pin_memory=True))
    for a, b in zip(ref, got):
        for u, v in zip(a, b):
            assert torch.equal(u, v)


def test_images_without_masks_get_all_ignored_masks(folder):
    _, images, _ = folder
    x, y, m = next(iter(DataLoader(ImageFolderDataset(images), batch_size=6)))
    assert x.shape == (6, 3, 64, 64) and y.tolist() == [0, 0, 0, 1, 1, 1]
    assert m.dtype == torch.uint8 and bool((m == IGNORE).all())


def test_preprocess_and_size_are_applied(folder):
    _, images, masks = folder
    plain = ImageFolderDataset(images, masks)
    data = ImageFolderDataset(images, masks, preprocess=lambda t: t * 2 - 1, size=32)
    image, _, mask = data[0]
    ref = torch.nn.functional.interpolate(plain[0][0][None], (32, 32), mode="bilinear", antialias=True)[0] * 2 - 1
    assert image.shape == (3, 32, 32) and torch.allclose(image, ref)
    assert mask.shape == (32, 32) and set(mask.unique().tolist()) <= {0, 1}


def _one_class_folder(tmp_path, n=2):
    (tmp_path / "img" / "a").mkdir(parents=True)
    (tmp_path / "msk").mkdir()
    for i in range(n):
        cv2.imwrite(str(tmp_path / "img" / "a" / f"x{i}.png"), np.zeros((8, 8, 3), np.uint8))
        cv2.imwrite(str(tmp_path / "msk" / f"x{i}.png"), np.zeros((8, 8), np.uint8))
    return tmp_path / "img", tmp_path / "msk"


@pytest.mark.parametrize("workers", [0, 1])
def test_corrupt_image_names_the_file(tmp_path, workers):
    images, masks = _one_class_folder(tmp_path)
    (images / "a" / "x1.png").write_bytes(b"not a png")
    loader = DataLoader(ImageFolderDataset(images, masks), batch_size=2, num_workers=workers)
    with pytest.raises(WSOLValueError, match="x1.png"):
        next(iter(loader))


def test_missing_mask(tmp_path):
    images, masks = _one_class_folder(tmp_path)
    (masks / "x1.png").unlink()
    with pytest.raises(WSOLValueError, match="x1.png"):
        ImageFolderDataset(images, masks, missing_masks="error")
    data = ImageFolderDataset(images, masks)
    assert data.has_mask(0) and not data.has_mask(1) and bool((data[1][2] == IGNORE).all())


def test_mask_of_another_size(tmp_path):
    images, masks = _one_class_folder(tmp_path)
    cv2.imwrite(str(masks / "x0.png"), np.zeros((4, 8), np.uint8))
    with pytest.raises(WSOLValueError, match=r"x0.png.*\(4, 8\).*\(8, 8\)"):
        ImageFolderDataset(images, masks)[0]


def test_undeclared_255_masks_are_an_error_not_nan(tmp_path):
    images, masks = _one_class_folder(tmp_path)
    cv2.imwrite(str(masks / "x0.png"), np.full((8, 8), 255, np.uint8))
    with pytest.raises(WSOLValueError, match=r"x0.png.*\[255\]"):
        ImageFolderDataset(images, masks)[0]
    assert int(ImageFolderDataset(images, masks, mask_convention=BINARY_255)[0][2].max()) == 1


def test_unknown_class_folder_and_empty_folder(tmp_path):
    images, _ = _one_class_folder(tmp_path)
    (images / "b").mkdir()
    with pytest.raises(WSOLValueError, match=r"\['b'\]"):
        ImageFolderDataset(images, classes=["a"])
    with pytest.raises(WSOLValueError, match="has no"):
        ImageFolderDataset(images)  # the class folder b is empty
    (tmp_path / "empty").mkdir()
    with pytest.raises(WSOLValueError, match="empty"):
        ImageFolderDataset(tmp_path / "empty")
    with pytest.raises(WSOLValueError, match="does not exist"):
        ImageFolderDataset(tmp_path / "nope")


def test_csv_errors_name_the_line(tmp_path):
    images, _ = _one_class_folder(tmp_path)
    path = tmp_path / "l.csv"
    path.write_text(f"{images / 'a' / 'x0.png'},0\n{images / 'a' / 'gone.png'},1\n")
    with pytest.raises(WSOLValueError, match="line 2.*gone.png"):
        CSVDataset(path)
    path.write_text(f"{images / 'a' / 'x0.png'},0,{tmp_path / 'nomask.png'}\n")
    with pytest.raises(WSOLValueError, match="line 1.*nomask.png"):
        CSVDataset(path)
