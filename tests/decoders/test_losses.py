import math

import numpy as np
import pytest
import torch

from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError
from wsolkit.decoders import (
    DenseCRFLoss,
    FCAMLoss,
    FCAMSeeder,
    NEGEVLoss,
    NEGEVSeeder,
    dense_crf_loss,
    negative_evidence_loss,
    seed_loss,
    seed_map,
    size_loss,
)
from wsolkit.losses.elb import ELB, elb
from wsolkit.output import WSOLOutput


def test_seed_loss_matches_manual_ce():
    logits = torch.randn(2, 2, 3, 4, dtype=torch.float64)
    seeds = torch.full((2, 3, 4), 255)
    seeds[0, 0, 0], seeds[0, 2, 3], seeds[1, 1, 1] = 1, 0, 1
    logp = torch.log_softmax(logits, 1)
    ref = -(logp[0, 1, 0, 0] + logp[0, 0, 2, 3] + logp[1, 1, 1, 1]) / 3
    torch.testing.assert_close(seed_loss(logits, seeds), ref)
    empty = seed_loss(logits.requires_grad_(True), torch.full((2, 3, 4), 255))
    assert float(empty.detach()) == 0.0 and empty.requires_grad
    with pytest.raises(ShapeError, match="2 channels"):
        seed_loss(torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(WSOLTypeError, match="seeds"):
        seed_loss(torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2))


def test_elb_values_and_derivative_at_branch_point():
    t = 4.0
    edge = -1.0 / t**2
    # barrier branch and linear branch meet with equal value and slope t at z = -1/t²
    z = torch.tensor([edge], dtype=torch.float64, requires_grad=True)
    val = elb(z, t)
    val.backward()
    torch.testing.assert_close(val.detach(), torch.tensor([2.0 * math.log(t) / t], dtype=torch.float64))
    torch.testing.assert_close(z.grad, torch.tensor([t], dtype=torch.float64))
    for dz in (-1e-7, 1e-7):
        zz = torch.tensor([edge + dz], dtype=torch.float64, requires_grad=True)
        elb(zz, t).backward()
        assert abs(float(zz.grad) - t) < 1e-4
    assert float(elb(torch.tensor([-2.0]), t)) == pytest.approx(-math.log(2.0) / t)


def test_size_loss_values_and_keep():
    probs = torch.softmax(torch.randn(3, 2, 4, 5, dtype=torch.float64), 1)
    t = 2.0
    sums = probs.flatten(2).sum(-1)
    per = -torch.log(sums).sum(1) / t  # all constraints deep inside: barrier branch
    torch.testing.assert_close(size_loss(probs, t), per.mean() / 2)  # mean over images and the 2 constraints
    keep = torch.tensor([True, False, True])
    torch.testing.assert_close(size_loss(probs, t, keep), (per[0] + per[2]) / 4)
    torch.testing.assert_close(size_loss(probs, ELB(t0=t, reduction="sum"), keep), per[0] + per[2])
    assert float(size_loss(probs, t, torch.zeros(3, dtype=torch.bool))) == 0.0
    # an empty foreground is infeasible (z = 0 > -1/t²): linear branch
    empty = torch.zeros(1, 2, 2, 2, dtype=torch.float64)
    empty[:, 0] = 1.0
    expect = -math.log(4.0) / t + (0.0 - math.log(1 / t**2) / t + 1 / t)
    assert float(size_loss(empty, t)) == pytest.approx(expect / 2)
    with pytest.raises(WSOLValueError, match="reduction"):
        size_loss(probs, ELB(reduction="none"))
    with pytest.raises(WSOLValueError, match="reduction"):
        FCAMLoss(FCAMSeeder(), size=ELB(reduction="none"))
    with pytest.raises(WSOLTypeError, match="size"):
        FCAMLoss(FCAMSeeder(), size=2.0)


def ref_fcam_size(fg_probs: np.ndarray, t: float) -> float:
    """float64 re-implementation of the reference size term: ``sbelharbi/fcam-wsol``, ``dlib/losses/fcams.py``
    ``MaxSizePositiveFcams.forward`` with its ``dlib/losses/elb.py`` ``ELB`` (mean over the batch):
    ``½ · Σ_{c ∈ {bg, fg}} mean_i ψ_t(−Σ_pixels S_c)``."""
    n = fg_probs.shape[0]
    both = np.stack([1.0 - fg_probs, fg_probs], 1)
    loss = 0.0
    for c in (0, 1):
        z = -both[:, c].reshape(n, -1).sum(-1)
        ct = -1.0 / t**2
        psi = np.where(z <= ct, -np.log(-np.minimum(z, ct)) / t, t * z - np.log(1.0 / t**2) / t + 1.0 / t)
        loss += psi.mean()
    return loss * 0.5


@pytest.mark.parametrize("t", [1.0, 3.0, 10.0])
def test_size_loss_is_the_reference_fcam_size_term(t):
    g = torch.Generator().manual_seed(int(t))
    logits = torch.randn(5, 2, 6, 7, generator=g, dtype=torch.float64) * 3
    logits[0, 1] -= 30  # one image with an (almost) empty foreground: linear branch of the ELB
    probs = torch.softmax(logits, 1)
    ref = ref_fcam_size(probs[:, 1].numpy(), t)
    assert float(size_loss(probs, ELB(t0=t, t_max=max(t, 10.0)))) == pytest.approx(ref, rel=1e-12)
    assert float(size_loss(probs, t)) == pytest.approx(ref, rel=1e-12)
    # the sum of the two penalties (wsolkit before this release) is twice the reference
    sums = probs.flatten(2).sum(-1)
    assert float(elb(-sums, t).sum(1).mean()) == pytest.approx(2 * ref, rel=1e-12)
    with pytest.raises(ShapeError, match="keep"):
        size_loss(probs, t, torch.ones(2, dtype=torch.bool))


def test_negative_evidence_loss():
    logits = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    neg = torch.tensor([True, False, True])
    ref = -torch.log_softmax(logits, 1)[neg, 0].mean()
    torch.testing.assert_close(negative_evidence_loss(logits, neg), ref)
    assert float(negative_evidence_loss(logits, torch.zeros(3, dtype=torch.bool))) == 0.0
    with pytest.raises(WSOLTypeError, match="negative"):
        negative_evidence_loss(logits, torch.tensor([1, 0, 1]))


def _output(b=4, h=12, w=12):
    logits = torch.randn(b, 2, h, w, dtype=torch.float64, requires_grad=True)
    cams = torch.randn(b, 2, 3, 3, dtype=torch.float64)
    return WSOLOutput(torch.zeros(b, 2), torch.softmax(logits, 1)[:, 1:], {"decoder_logits": logits,
                                                                              "classifier_cams": cams})


def test_fcam_loss_composition():
    """Composition test: FCAMLoss weights and sums wsolkit's own term functions (compared with themselves, called
    directly); each term is checked against a reference in its own test above."""
    out = _output()
    labels = torch.tensor([0, 1, 1, 0])
    images = 255 * torch.rand(4, 3, 12, 12, dtype=torch.float64)
    crf = DenseCRFLoss(weight=1e-4, sigma_xy=5.0)
    barrier = ELB(t0=3.0)
    loss_fn = FCAMLoss(FCAMSeeder(n_fg=3, n_bg=3, seed=1), crf=crf, size=barrier, seed_weight=2.0, size_weight=0.5)
    total, terms = loss_fn(out, labels, images)
    logits = out.aux["decoder_logits"]
    cam = seed_map(out.aux["classifier_cams"].float(), labels, (12, 12))
    seeds = FCAMSeeder(n_fg=3, n_bg=3, seed=1)(cam)
    probs = torch.softmax(logits, 1)
    torch.testing.assert_close(terms["seeds"], 2.0 * seed_loss(logits, seeds))
    torch.testing.assert_close(terms["crf"], dense_crf_loss(probs, images, 1e-4, sigma_xy=5.0))
    torch.testing.assert_close(terms["size"], 0.5 * size_loss(probs, 3.0))
    torch.testing.assert_close(total, terms["seeds"] + terms["crf"] + terms["size"])
    total.backward()
    assert logits.grad is not None


def test_negev_skips_negative_images():
    """Composition test: NEGEVLoss against wsolkit's own term functions called directly (each term has its own
    reference test); what it checks is the routing of negative images (no seeds, no size term for them)."""
    out = _output()
    labels = torch.tensor([0, 1, 1, 0])
    loss_fn = NEGEVLoss(NEGEVSeeder(n_fg=5, n_bg=5, seed=2), size=ELB(), negative_classes=(0,),
                        negative_weight=3.0)
    total, terms = loss_fn(out, labels)
    logits = out.aux["decoder_logits"]
    cam = seed_map(out.aux["classifier_cams"].float(), labels, (12, 12))
    seeds = NEGEVSeeder(n_fg=5, n_bg=5, seed=2)(cam)
    seeds[labels == 0] = 255
    probs = torch.softmax(logits, 1)
    torch.testing.assert_close(terms["seeds"], seed_loss(logits, seeds))
    torch.testing.assert_close(terms["size"], size_loss(probs, 1.0, labels != 0))
    torch.testing.assert_close(terms["negative"], 3.0 * negative_evidence_loss(logits, labels == 0))
    # all images negative: only the negative-evidence term remains
    _, terms = loss_fn(out, torch.zeros(4, dtype=torch.long))
    t = {k: float(v.detach()) for k, v in terms.items()}
    assert t["seeds"] == 0.0 and t["size"] == 0.0 and t["negative"] > 0


def test_fcam_loss_errors():
    loss_fn = FCAMLoss(FCAMSeeder(), crf=DenseCRFLoss())
    out = _output()
    with pytest.raises(WSOLTypeError, match="images"):
        loss_fn(out, torch.tensor([0, 1, 1, 0]))
    with pytest.raises(ShapeError, match="labels"):
        loss_fn(out, torch.tensor([0, 1]), torch.zeros(4, 3, 12, 12))
    with pytest.raises(WSOLTypeError, match="FCAM"):
        loss_fn(WSOLOutput(torch.zeros(1, 2), torch.zeros(1, 2, 2, 2), {}), torch.tensor([0]))
    with pytest.raises(WSOLTypeError, match="negative_classes"):
        NEGEVLoss(NEGEVSeeder(), negative_classes=0)
    with pytest.raises(WSOLValueError, match="negative_weight"):
        NEGEVLoss(NEGEVSeeder(), negative_weight=-1.0)


def test_training_trains_only_the_decoder():
    import wsolkit
    from wsolkit.training import IMAGENET_MEAN, IMAGENET_STD, fit_tensors

    clf = wsolkit.create_method("gap", 2, backbone=wsolkit.create_backbone("smallcnn", output_stride=8, width=4))
    before = {k: v.clone() for k, v in clf.state_dict().items()}
    model = wsolkit.create_method("negev", classifier=clf, seeder=NEGEVSeeder(n_fg=4, n_bg=4),
                                  crf=DenseCRFLoss(1e-6, scale_factor=0.5), input_normalization=(IMAGENET_MEAN,
                                                                                                 IMAGENET_STD))
    dec_before = [p.detach().clone() for p in model.decoder.parameters()]
    x = torch.rand(8, 3, 32, 32)
    y = torch.tensor([0, 1] * 4)
    hist = fit_tensors(model, x, y, epochs=1, batch_size=4, lr=1e-2)
    assert len(hist) == 1 and math.isfinite(hist[0])
    for k, v in clf.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not clf.training and not any(p.requires_grad for p in clf.parameters())
    assert any(not torch.equal(a, p) for a, p in zip(dec_before, model.decoder.parameters()))
