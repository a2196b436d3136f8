"""CAMELYON16 FROC / slide AUC against a Python 3 re-implementation of the organisers' ``Evaluation_FROC.py``.

The reference below follows computationalpathologygroup/Camelyon16 ``Python/Evaluation_FROC.py`` step by step with
scipy (``distance_transform_edt``, ``binary_fill_holes``, ``label`` with a 3x3 structure = skimage's
``connectivity=2``) and numpy (``major_axis_length`` = 4 sqrt of the largest eigenvalue of the coordinates'
population covariance, as ``regionprops``); the one Python 2 construct, ``Ycorr[i]/pow(2, level)`` on ints, is
written ``//``. Lesion probabilities are kept in the script's float32 array and compared in float64 (Python 2 numpy),
and the set of thresholds is sorted on exact values (numpy 1.x scalar comparisons).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from wsolkit._checks import ShapeError, WSOLValueError
from wsolkit.metrics.froc import (
    evaluation_mask,
    fp_tp_probs,
    froc,
    froc_curve,
    froc_score,
    itc_labels,
    slide_auc,
)

nd = pytest.importorskip("scipy.ndimage")


# ---------------------------------------------------------------- reference (float64, Python 3)
def ref_evaluation_mask(pixelarray, resolution, level):
    distance = nd.distance_transform_edt(255 - pixelarray)
    threshold = 75 / (resolution * pow(2, level) * 2)
    binary = distance < threshold
    filled = nd.binary_fill_holes(binary)
    lab, _ = nd.label(filled, structure=np.ones((3, 3), int))
    return lab


def ref_major_axis(lab, k):
    ys, xs = np.nonzero(lab == k)
    cov = np.cov(np.stack([ys, xs]).astype(np.float64), bias=True)
    return 4 * np.sqrt(max(np.linalg.eigvalsh(cov).max(), 0.0))


def ref_itc(lab, resolution, level):
    threshold = 275 / (resolution * pow(2, level))
    return [i for i in range(1, lab.max() + 1) if ref_major_axis(lab, i) < threshold]


def ref_fp_tp(ycorr, xcorr, probs, is_tumor, lab, itc, level):
    max_label = int(np.amax(lab)) if is_tumor else 0
    fp_probs, tp_probs = [], np.zeros((max_label,), dtype=np.float32)
    if is_tumor:
        for i in range(len(xcorr)):
            hit = lab[ycorr[i] // pow(2, level), xcorr[i] // pow(2, level)]
            if hit == 0:
                fp_probs.append(probs[i])
            elif hit not in itc and float(probs[i]) > float(tp_probs[hit - 1]):
                tp_probs[hit - 1] = probs[i]
    else:
        fp_probs = list(probs)
    return fp_probs, tp_probs, max_label - len(itc)


def ref_froc(data):
    unlisted_fps = [p for s in data for p in s[0]]
    unlisted_tps = [p for s in data for p in s[1]]
    total_fps, total_tps = [], []
    # numpy 1.x (the script's) compares a float32 scalar with a Python float in float64; numpy 2 in float32, which
    # orders the mixed set differently: sort on the exact values as the script did
    all_probs = sorted(set(unlisted_fps + unlisted_tps), key=float)
    for thresh in all_probs[1:]:
        total_fps.append((np.asarray(unlisted_fps) >= thresh).sum())
        total_tps.append((np.asarray(unlisted_tps, np.float32) >= thresh).sum())
    total_fps.append(0)
    total_tps.append(0)
    return np.asarray(total_fps) / float(len(data)), np.asarray(total_tps) / float(sum(s[2] for s in data))


# ---------------------------------------------------------------- synthetic slides
def tumour_mask(rng, shape=(160, 220)):
    """uint8 0/255 mask at level 5: big blobs, rings with holes, single-pixel ITCs, a lesion touching the border."""
    m = np.zeros(shape, np.uint8)
    for _ in range(rng.integers(1, 4)):
        c = (int(rng.integers(20, shape[1] - 20)), int(rng.integers(20, shape[0] - 20)))
        cv2.ellipse(m, c, (int(rng.integers(8, 30)), int(rng.integers(5, 25))), float(rng.uniform(0, 180)), 0, 360,
                    255, -1)
    c = (int(rng.integers(30, shape[1] - 30)), int(rng.integers(30, shape[0] - 30)))
    cv2.circle(m, c, int(rng.integers(14, 22)), 255, 3)  # a ring: its inside is a hole to fill
    for _ in range(rng.integers(2, 6)):
        m[rng.integers(0, shape[0]), rng.integers(0, shape[1])] = 255
    m[: rng.integers(2, 6), : rng.integers(5, 40)] = 255
    return m


def detections(rng, mask, n=40, level=5):
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    rows = []
    grid = np.round(rng.uniform(0, 1, 8), 1)  # repeated probabilities: ties across FP / TP and within lesions
    for i in range(n):
        if len(ys) and i % 2 == 0:
            j = rng.integers(len(ys))
            y, x = ys[j] * 2**level + rng.integers(0, 2**level), xs[j] * 2**level + rng.integers(0, 2**level)
        else:
            y, x = rng.integers(0, h * 2**level), rng.integers(0, w * 2**level)
        p = float(grid[rng.integers(len(grid))]) if i % 3 == 0 else float(rng.uniform())
        rows.append((p, int(x), int(y)))
    return rows


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("resolution,level", [(0.243, 5), (0.226, 5), (0.5, 4)])
def test_evaluation_mask_and_itc_match_reference(seed, resolution, level):
    m = tumour_mask(np.random.default_rng(seed))
    ref = ref_evaluation_mask(m, resolution, level)
    got = evaluation_mask(m, resolution, level)
    assert np.array_equal(got, ref)
    assert itc_labels(got, resolution, level) == ref_itc(ref, resolution, level)
    assert np.array_equal(evaluation_mask(m == 255, resolution, level), ref)  # bool masks too


def test_fill_holes_and_eight_connectivity():
    m = np.zeros((60, 60), np.uint8)
    cv2.rectangle(m, (10, 10), (49, 49), 255, 1)  # a 1-px square outline: inside filled
    m[55, 2] = 255
    m[56, 3] = 255  # diagonal neighbours: one component
    lab = evaluation_mask(m, resolution=75 / (32 * 2 * 1.5), level=5)  # dilation radius 1.5 px
    assert lab.max() == 2 and lab[30, 30] == 1 and lab[55, 2] == lab[56, 3] == 2


@pytest.mark.parametrize("seed", range(5))
def test_froc_matches_reference(seed):
    rng = np.random.default_rng(100 + seed)
    res, level = 0.243, 5
    slides, ref_data, dets, masks = [], [], {}, {}
    for s in range(5):
        tumour = s < 3
        m = tumour_mask(rng) if tumour else np.zeros((160, 220), np.uint8)
        d = detections(rng, m, n=int(rng.integers(0, 50)), level=level)
        dets[f"s{s}"], masks[f"s{s}"] = d, (m if tumour else None)
        lab = ref_evaluation_mask(m, res, level) if tumour else None
        itc = ref_itc(lab, res, level) if tumour else []
        p, x, y = ([r[0] for r in d], [r[1] for r in d], [r[2] for r in d])
        ref_data.append(ref_fp_tp(y, x, p, tumour, lab, itc, level))
        got = fp_tp_probs(d, evaluation_mask(m, res, level) if tumour else None, itc, level)
        assert got.fp_probs == ref_data[-1][0]
        assert np.array_equal(got.tp_probs, ref_data[-1][1]) and got.tp_probs.dtype == np.float32
        assert got.num_tumors == ref_data[-1][2]
        slides.append(got)
    fps, sens = froc_curve(slides)
    rfps, rsens = ref_froc(ref_data)
    assert np.array_equal(fps, rfps) and np.array_equal(sens, rsens)
    r = froc(dets, masks, resolution=res, level=level)
    assert np.array_equal(r.fps, rfps) and np.array_equal(r.sensitivity, rsens)
    at = np.interp([0.25, 0.5, 1, 2, 4, 8], rfps[::-1], rsens[::-1])
    assert r.score == pytest.approx(float(at.mean()), abs=1e-12)


def test_quirks_by_hand():
    # one tumour slide, two lesions far apart, one normal slide
    m = np.zeros((100, 100), bool)
    m[10:50, 10:50] = True
    m[60:95, 60:95] = True
    lab = evaluation_mask(m)
    assert lab.max() == 2 and itc_labels(lab) == []
    d = [(0.0, 30 * 32, 30 * 32), (0.3, 31 * 32 + 31, 31 * 32), (0.7, 70 * 32, 70 * 32), (0.3, 2, 2)]
    s = fp_tp_probs(d, lab, [])
    # the 0.0 hit is not a TP (strict >); 0.3 is stored as float32; (2, 2) -> pixel (0, 0) is background
    assert s.tp_probs.tolist() == [np.float32(0.3), np.float32(0.7)] and s.fp_probs == [0.3]
    n = fp_tp_probs([(0.5, 1, 1)], None)
    fps, sens = froc_curve([s, n])
    # distinct values: 0.3 (FP), float32(0.3) (TP), 0.5 (FP), float32(0.7) (TP); the lowest is skipped
    vals = sorted({0.3, float(np.float32(0.3)), 0.5, float(np.float32(0.7))})
    assert len(fps) == len(vals[1:]) + 1
    assert fps.tolist()[-1] == 0 and sens.tolist()[-1] == 0
    # quirks=False: float64, every probability a threshold (the curve reaches all detections)
    s2 = fp_tp_probs(d, lab, [], quirks=False)
    f2, se2 = froc_curve([s2, fp_tp_probs([(0.5, 1, 1)], None, quirks=False)], quirks=False)
    assert se2[0] == 1.0 and f2[0] == 1.0  # at threshold 0.0: both lesions, FPs 0.3 and 0.5 over 2 slides


def test_froc_score_interpolation():
    score, at = froc_score(np.array([8.0, 4.0, 2.0, 1.0, 0.0]), np.array([1.0, 0.8, 0.6, 0.4, 0.0]))
    assert at.tolist() == pytest.approx([0.1, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert score == pytest.approx(np.mean([0.1, 0.2, 0.4, 0.6, 0.8, 1.0]))


def test_bad_inputs():
    lab = np.zeros((10, 10), np.int32)
    lab[2:5, 2:5] = 1
    with pytest.raises(WSOLValueError, match="outside the evaluation mask"):
        fp_tp_probs([(0.5, 10 * 32, 0)], lab, [])
    with pytest.raises(WSOLValueError, match="outside the evaluation mask"):
        fp_tp_probs([(0.5, -1, 0)], lab, [])
    with pytest.raises(WSOLValueError, match="no 255"):
        evaluation_mask(np.ones((4, 4), np.uint8))
    with pytest.raises(ShapeError):
        fp_tp_probs([(0.5, 1)], lab, [])
    with pytest.raises(WSOLValueError, match="integers"):
        fp_tp_probs([(0.5, 1.5, 2)], lab, [])
    with pytest.raises(WSOLValueError, match="no lesion"):
        froc({"a": [(0.5, 1, 1)]}, {})
    with pytest.raises(WSOLValueError, match="no detections entry"):
        froc({"a": []}, {"b": np.ones((4, 4), bool)})
    assert evaluation_mask(np.zeros((5, 5), np.uint8)).max() == 0


def test_slide_auc_matches_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.integers(0, 2, 30)
        y[:2] = [0, 1]
        s = np.round(rng.uniform(size=30), 1)  # ties
        assert slide_auc(s, y) == pytest.approx(metrics.roc_auc_score(y, s), abs=1e-12)
    with pytest.raises(WSOLValueError, match="both"):
        slide_auc([0.1, 0.2], [1, 1])
