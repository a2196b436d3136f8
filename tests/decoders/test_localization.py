"""F-CAM / NEGEV decoders over a frozen GAP classifier on the synthetic camelyon benchmark (CPU, slow)."""

import pytest
import torch

from wsolkit.backbones import create_backbone
from wsolkit.data import SyntheticHistology
from wsolkit.decoders import DenseCRFLoss, FCAMLoss, FCAMSeeder, NEGEVLoss, NEGEVSeeder, create_fcam
from wsolkit.heads import GAP
from wsolkit.losses.elb import ELB
from wsolkit.models import WSOLModel
from wsolkit.training import evaluate, fit, predict_maps


@pytest.mark.slow
def test_fcam_negev_localize_camelyon():
    torch.manual_seed(0)
    x, y, _ = SyntheticHistology("camelyon", "train", n=240, size=64, seed=0).tensors()
    xt, yt, mt = SyntheticHistology("camelyon", "test", n=80, size=64, seed=1).tensors()
    bb = create_backbone("smallcnn", output_stride=8, width=16)
    classifier = WSOLModel(bb, GAP(bb.out_channels, 2))
    fit(classifier, x, y, epochs=8, batch_size=32, lr=3e-3, seed=0)
    frozen = {k: v.clone() for k, v in classifier.state_dict().items()}
    gap = evaluate(*predict_maps(classifier, xt, yt), yt, mt)

    results = {}
    for name in ("F-CAM", "NEGEV"):
        model = create_fcam(classifier)
        crf = DenseCRFLoss(weight=5e-8, scale_factor=0.5, method="grid")
        if name == "NEGEV":
            loss = NEGEVLoss(NEGEVSeeder(n_fg=20, n_bg=20, min_p=0.5, seed=0), crf=crf, size=ELB())
        else:
            loss = FCAMLoss(FCAMSeeder(n_fg=20, n_bg=20, min_p=0.3, seed=0), crf=crf, size=ELB())
        fit(model, x, y, epochs=4, batch_size=32, lr=3e-3, seed=0, step_fn=loss.training_step)
        results[name] = evaluate(*predict_maps(model, xt, yt), yt, mt)
    print(f"GAP CAM {gap}; F-CAM {results['F-CAM']}; NEGEV {results['NEGEV']}")
    for k, v in classifier.state_dict().items():
        assert torch.equal(v, frozen[k]), k
    for r in results.values():
        assert r["accuracy"] == gap["accuracy"]  # the frozen classifier's logits
        assert r["pxap"] >= 1.2 * r["pxap_baseline"], r
