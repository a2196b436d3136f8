"""GAP/CAM head (survey eqs. 2-3) on hand-made inputs, and WSOLModel."""

import pytest
import torch

from wsolkit import WSOLModel, WSOLOutput, create_backbone, create_head, list_heads
from wsolkit._checks import ShapeError, WSOLValueError
from wsolkit.heads import GAP, gap_pool
from wsolkit.registry import UnknownNameError


def test_gap_eq3_on_hand_made_4x4_feature_map():
    feats = torch.arange(32, dtype=torch.float64).view(1, 2, 4, 4)  # F_0 = 0..15, F_1 = 16..31
    head = GAP(2, 2).double()
    with torch.no_grad():
        head.classifier.weight.copy_(torch.tensor([[1.0, 0.0], [0.5, -1.0]]).view(2, 2, 1, 1))
        head.bias.copy_(torch.tensor([0.25, -0.5]))
    out = head(feats)
    # M_0 = F_0 + 0.25, M_1 = 0.5 F_0 - F_1 - 0.5 = 0.5 * k - (16 + k) - 0.5
    k = torch.arange(16, dtype=torch.float64).view(4, 4)
    assert torch.equal(out.cams[0, 0], k + 0.25)
    assert torch.allclose(out.cams[0, 1], 0.5 * k - (16 + k) - 0.5)
    # s_c = mean(M_c) + b_c: mean(k) = 7.5
    assert torch.allclose(out.logits, torch.tensor([[7.5 + 0.25, 0.5 * 7.5 - 23.5 - 0.5]], dtype=torch.float64))
    assert isinstance(out, WSOLOutput) and out.aux == {}


def test_gap_equals_pool_then_linear():
    feats = torch.randn(3, 8, 5, 7, dtype=torch.float64)
    head = GAP(8, 4).double()
    w = head.classifier.weight.view(4, 8)
    ref = feats.mean((2, 3)) @ w.T + head.bias
    assert torch.allclose(head(feats).logits, ref)
    assert torch.allclose(gap_pool(head(feats).cams), feats.mean((2, 3)) @ w.T + head.bias)


def test_gap_loads_a_checkpoint_with_the_bias_outside_the_convolution():
    head = GAP(3, 2)
    old = {"classifier.weight": torch.randn(2, 3, 1, 1), "bias": torch.tensor([0.5, -1.0])}
    head.load_state_dict(old)
    assert torch.equal(head.classifier.bias, old["bias"])
    assert torch.equal(head.classifier.weight, old["classifier.weight"])
    assert sorted(head.state_dict()) == ["classifier.bias", "classifier.weight"]


def test_gap_gradcheck_and_registry():
    head = create_head("GAP", 4, 3).double()
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda t: head(t).logits, (x,))
    assert "gap" in list_heads()


def test_gap_errors():
    head = GAP(8, 2)
    with pytest.raises(ShapeError, match="has 4 channels but the head was built with in_channels=8"):
        head(torch.zeros(1, 4, 3, 3))
    with pytest.raises(ShapeError, match=r"\(B, K, h, w\)"):
        head(torch.zeros(4, 3, 3))
    with pytest.raises(WSOLValueError, match="in_channels"):
        GAP(0, 2)
    with pytest.raises(UnknownNameError, match="did you mean"):
        create_head("gapp", 4, 2)


def test_wsol_model_shapes_batch1_odd():
    bb = create_backbone("smallcnn", output_stride=8, width=4)
    model = WSOLModel(bb, GAP(bb.out_channels, 3)).eval()
    out = model(torch.rand(1, 3, 67, 45))
    assert out.logits.shape == (1, 3) and out.cams.shape == (1, 3, 8, 5)
    logits, maps = model.localize(torch.rand(2, 3, 64, 64))
    assert maps.shape == (2, 64, 64) and float(maps.max()) <= 1.0
    with pytest.raises(ShapeError, match=r"`x` must have shape \(B, 3, H, W\)"):
        model(torch.zeros(3, 64, 64))
