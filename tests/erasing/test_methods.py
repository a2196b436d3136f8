"""The refinement methods built by ``create_method``: what each adds to a backbone + GAP model."""

import pytest
import torch
import torch.nn.functional as F

import wsolkit
from wsolkit._checks import WSOLValueError
from wsolkit.backbones import create_backbone
from wsolkit.erasing import ADL, CutMixModel, HaSModel, cutmix, default_adl_positions, hide_and_seek


def _bb():
    return create_backbone("smallcnn", output_stride=8, width=4)


def test_has_hides_the_input_in_training_only():
    torch.manual_seed(0)
    m = wsolkit.create_method("has", 2, backbone=_bb(), grid_size=8, generator=torch.Generator().manual_seed(3))
    assert isinstance(m, HaSModel)
    x, y = torch.rand(2, 3, 32, 32), torch.tensor([0, 1])
    hidden = hide_and_seek(x, 8, 0.5, generator=torch.Generator().manual_seed(3))
    m.train()
    torch.testing.assert_close(m(x).logits, wsolkit.WSOLModel.forward(m, hidden).logits)
    m.eval()
    torch.testing.assert_close(m(x).logits, m.head(m.backbone(x)).logits)
    m.hide.generator = torch.Generator().manual_seed(3)
    (step,) = list(m.train().training_steps(x, y))
    ref = F.cross_entropy(m.head(m.backbone(hidden)).logits, y)  # train mode (batch statistics) as in the step
    torch.testing.assert_close(step.total, ref)


def test_cutmix_trains_on_the_mixed_batch_and_forward_is_plain():
    torch.manual_seed(0)
    m = wsolkit.create_method("cutmix", 2, backbone=_bb(), generator=torch.Generator().manual_seed(5))
    assert isinstance(m, CutMixModel)
    x, y = torch.rand(4, 3, 32, 32, dtype=torch.float64), torch.tensor([0, 1, 1, 0])
    m = m.double().train()
    mix = cutmix(x, y, generator=torch.Generator().manual_seed(5))
    (step,) = list(m.training_steps(x, y))
    logits = m(mix.images).logits
    logp = logits - torch.logsumexp(logits, 1, keepdim=True)
    idx = torch.arange(4)
    ref = -(mix.lam * logp[idx, mix.labels_a] + (1 - mix.lam) * logp[idx, mix.labels_b]).mean()
    torch.testing.assert_close(step.total, ref)
    assert float(step.terms["lam"]) == pytest.approx(mix.lam) and mix.lam < 1.0
    m.eval()  # eval: no mixing, plain cross-entropy
    (step,) = list(m.training_steps(x, y))
    torch.testing.assert_close(step.total, F.cross_entropy(m(x).logits, y))


def test_adl_inserted_at_the_default_positions_and_identity_in_eval():
    bb = _bb()
    assert default_adl_positions(bb) == ["body.features.19", "body.features.26"]
    torch.manual_seed(0)
    m = wsolkit.create_method("adl", 2, backbone=bb, drop_rate=1.0, gamma=0.5)
    adls = [mod for mod in m.modules() if isinstance(mod, ADL)]
    assert len(adls) == 2 and all(a.drop_rate == 1.0 and a.gamma == 0.5 for a in adls)
    x = torch.rand(2, 3, 32, 32)
    m.eval()
    plain = m.head(torch.nn.Sequential(*[mod[0] if isinstance(mod, torch.nn.Sequential) else mod
                                         for mod in m.backbone.body.features])(x))
    torch.testing.assert_close(m(x).logits, plain.logits)
    res = create_backbone("resnet18", output_stride=8)
    assert default_adl_positions(res) == ["body.layer3", "body.layer4"]
    custom = wsolkit.create_method("adl", 2, backbone=_bb(), positions=["features.6"])
    assert sum(isinstance(mod, ADL) for mod in custom.modules()) == 1
    with pytest.raises(WSOLValueError, match="positions"):
        default_adl_positions(torch.nn.Conv2d(3, 3, 1))


@pytest.mark.parametrize("name", ["has", "adl", "acol", "spg", "cutmix"])
def test_backbone_by_name_and_unknown_options(name):
    m = wsolkit.create_method(name, 3, backbone="smallcnn", backbone_options={"width": 4},
                              **({"mid_channels": 8} if name in ("acol", "spg") else {}))
    assert m(torch.rand(1, 3, 32, 32)).logits.shape == (1, 3)
    with pytest.raises(TypeError):
        wsolkit.create_method(name, 3, backbone="smallcnn", not_an_option=1)
