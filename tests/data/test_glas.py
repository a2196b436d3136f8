"""GlaS as released (Warwick QU folder, *.bmp, *_anno.bmp instances, Grade.csv) and through the survey's folds."""

import cv2
import numpy as np
import pytest
import torch

from wsolkit._checks import WSOLValueError
from wsolkit.data import GlaS, glas_fold
from wsolkit.data.glas import GLAS_FOLDER, GLAS_FOLDER_SPLITS, read_grades
from wsolkit.data.wsolevaluation import write_metadata

GRADES = [("testA_1", "benign"), ("testA_2", "malignant"), ("testB_1", "malignant"), ("train_1", "benign"),
          ("train_2", "malignant")]


@pytest.fixture()
def warwick(tmp_path):
    """The released layout (spaces in the folder name, ' benign' cells with spaces as in the real Grade.csv)."""
    rng = np.random.default_rng(1)
    d = tmp_path / "GlaS-2015" / GLAS_FOLDER
    d.mkdir(parents=True)
    rows = ["name,patient ID,grade (GlaS),grade (Sirinukunwattana et al. 2015)"]
    annos = {}
    for i, (name, grade) in enumerate(GRADES):
        rows.append(f"{name}, {i}, {grade}, adenomatous")
        assert cv2.imwrite(str(d / f"{name}.bmp"), rng.integers(0, 256, (9, 13, 3), dtype=np.uint8))
        anno = np.zeros((9, 13), np.uint8)
        anno[1:4, 1:4] = 1
        anno[5:8, 6:12] = 7  # instance ids: every non-zero value is gland
        annos[name] = anno
        assert cv2.imwrite(str(d / f"{name}_anno.bmp"), anno)
    (d / "Grade.csv").write_text("\n".join(rows) + "\n")
    return d, annos


def test_released_splits(warwick):
    d, annos = warwick
    for split, names in (("train", ["train_1", "train_2"]), ("testA", ["testA_1", "testA_2"]),
                         ("test", ["testA_1", "testA_2", "testB_1"]), (None, sorted(n for n, _ in GRADES))):
        ds = GlaS(d.parent, split)
        assert ds.image_ids == [f"{n}.bmp" for n in names]
        assert ds.labels.tolist() == [dict(GRADES)[n] == "malignant" for n in names]
    ds = GlaS(d, "testA")  # the Warwick folder itself
    image, label, mask = ds[1]
    assert label == 1 and image.shape == (3, 9, 13)
    assert torch.equal(mask, torch.from_numpy((annos["testA_2"] > 0).astype(np.uint8)))


def test_grades_errors(warwick, tmp_path):
    d, _ = warwick
    assert read_grades(d / "Grade.csv")["testB_1"] == 1
    bad = tmp_path / "Grade.csv"
    bad.write_text("name,patient ID,grade (GlaS)\ntestA_1,1,healthy\n")
    with pytest.raises(WSOLValueError, match="line 2.*'healthy'"):
        read_grades(bad)
    with pytest.raises(WSOLValueError, match="not the GlaS folder"):
        GlaS(tmp_path / "nowhere")
    with pytest.raises(WSOLValueError, match="split"):
        GlaS(d, "validation")


@pytest.mark.parametrize("spelling", [GLAS_FOLDER, GLAS_FOLDER_SPLITS])
def test_survey_fold_over_either_spelling(warwick, tmp_path, spelling):
    d, annos = warwick
    if spelling != GLAS_FOLDER:
        d = d.rename(d.parent / spelling)
    splits = tmp_path / "wsol-done-right-splits"
    (splits / "GLAS").mkdir(parents=True)
    (splits / "GLAS" / "encoding.yaml").write_text("{benign: 0, malignant: 1}\n")
    f = GLAS_FOLDER_SPLITS  # the survey's files always use underscores
    write_metadata(splits / "GLAS" / "fold-2" / "valpx",
                   [(f"{f}/train_2.bmp", 1, f"{f}/train_2_anno.bmp", (13, 9)),
                    (f"{f}/train_1.bmp", 0, f"{f}/train_1_anno.bmp", (13, 9))])
    ds = glas_fold(d.parent, splits, 2, "valpx")
    assert ds.classes == ["benign", "malignant"] and ds.labels.tolist() == [1, 0]
    assert torch.equal(ds[0][2], torch.from_numpy((annos["train_2"] > 0).astype(np.uint8)))
    ref = GlaS(d, "train")
    assert torch.equal(ds[1][0], ref[0][0])
    with pytest.raises(WSOLValueError, match="fold-3"):
        glas_fold(d.parent, splits, 3, "valpx")
