"""B-LOC subset and model selector."""

from __future__ import annotations

import pytest
import torch

from wsolkit._checks import WSOLTypeError, WSOLValueError
from wsolkit.metrics.selection import BLOC_PER_CLASS, ModelSelector, bloc_subset


def test_bloc_subset_balanced_deterministic_and_no_global_rng():
    labels = torch.tensor([0, 1] * 20 + [2] * 7)
    state = torch.get_rng_state()
    idx = bloc_subset(labels, BLOC_PER_CLASS["camelyon16"], seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.bincount(labels[idx]).tolist() == [5, 5, 5]
    assert idx.unique().numel() == 15 and torch.equal(idx, idx.sort().values)
    assert torch.equal(idx, bloc_subset(labels, 5, seed=3))
    assert not torch.equal(idx, bloc_subset(labels, 5, seed=4))
    assert BLOC_PER_CLASS["glas"] == 3


def test_bloc_subset_errors():
    with pytest.raises(WSOLValueError, match="class 1 has 1 samples"):
        bloc_subset(torch.tensor([0, 0, 1]), 2)
    with pytest.raises(WSOLTypeError):
        bloc_subset(torch.tensor([0.0, 1.0]), 1)
    with pytest.raises(WSOLValueError):
        bloc_subset(torch.tensor([0, 1]), 0)


def test_model_selector_tracks_both_and_keeps_states():
    model = torch.nn.Linear(2, 1)
    sel = ModelSelector(keep_states=True)
    scores = [(30.0, 70.0), (45.0, 80.0), (45.0, 90.0), (20.0, 90.0)]
    weights = []
    for e, (loc, cl) in enumerate(scores):
        with torch.no_grad():
            model.weight.fill_(e)
        weights.append(e)
        sel.update(e, loc, cl, model=model)
    assert sel.best("b-loc")["epoch"] == 1  # tie at epoch 2 keeps the earliest
    assert sel.best("b-cl")["epoch"] == 2
    assert float(sel.state("b-loc")["weight"][0, 0]) == 1.0
    assert float(sel.state("b-cl")["weight"][0, 0]) == 2.0
    assert len(sel.history) == 4 and sel.summary()["b-cl"]["cls"] == 90.0
    with pytest.raises(WSOLValueError, match="criterion"):
        sel.best("loc")
    with pytest.raises(WSOLValueError, match="update"):
        ModelSelector().best()
    with pytest.raises(WSOLValueError, match="keep_states"):
        s2 = ModelSelector()
        s2.update(0, 1.0, 1.0)
        s2.state()


def test_public_api_surface():
    import wsolkit.metrics as m

    assert sorted(m.__all__) == sorted([
        "pxap", "bin_index", "localization_histogram", "LocalizationHistogram",
        "confusion_curves", "confusion_areas", "overlap_curves", "pxap_from_histogram", "threshold_index",
        "localization_metrics", "box_accuracy", "LocalizationMeter", "BoxAccuracyMeter", "ClassificationMeter",
        "BLOC_PER_CLASS", "bloc_subset", "ModelSelector", "histogram_metrics", "classification_metrics", "MetricDict",
        "confidence_change", "deletion_insertion", "road", "noisy_linear_imputation", "ConfidenceChangeMeter",
        "DeletionInsertionMeter", "ROADMeter", "model_randomization", "SanityResult", "spearman", "ssim",
        "spearman_abs", "hog", "hog_similarity", "LocalizationScalar", "PxAP", "PeakIoU", "F1Pos", "F1Neg",
        "froc", "FROCResult", "evaluation_mask", "itc_labels", "slide_auc",
    ])
    for name in m.__all__:
        assert hasattr(m, name)
    from wsolkit.metrics.pxap import binned_counts, pxap, pxap_from_counts  # path used by wsolkit.training

    assert callable(binned_counts) and callable(pxap) and callable(pxap_from_counts)
