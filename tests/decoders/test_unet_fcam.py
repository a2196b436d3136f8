import copy

import pytest
import torch
import torch.nn as nn

from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError
from wsolkit.backbones import create_backbone
from wsolkit.decoders import FCAM, DecoderBlock, UNetDecoder, create_fcam, encoder_channels, feature_layers
from wsolkit.heads import GAP
from wsolkit.models import WSOLModel


def _classifier(name="smallcnn", **kw):
    bb = create_backbone(name, **kw)
    return WSOLModel(bb, GAP(bb.out_channels, 3))


@pytest.mark.parametrize(
    "name, kw, levels",
    [
        ("resnet18", {}, [2, 4, 8, 16, 32]),
        ("resnet50", {}, [2, 4, 8, 16, 32]),
        ("vgg16", {}, [1, 2, 4, 8, 16, 32]),
        ("resnet18", {"output_stride": 8}, [2, 4, 8, 8, 8]),
    ],
)
def test_decoder_shapes_timm_backbones_odd_sizes(name, kw, levels):
    clf = _classifier(name, **kw)
    channels, reductions = encoder_channels(clf)
    assert reductions == levels
    model = create_fcam(clf)
    assert model.decoder.decoder_channels == (256, 128, 64, 32, 16)
    for h, w in ((67, 45),):
        x = torch.randn(1, 3, h, w)
        with torch.no_grad():
            out = model(x)
            ref = clf(x)
        assert out.cams.shape == (1, 1, h, w)
        assert out.aux["decoder_logits"].shape == (1, 2, h, w)
        torch.testing.assert_close(out.logits, ref.logits)
        torch.testing.assert_close(out.aux["classifier_cams"], ref.cams)
        dec = out.aux["decoder_logits"]
        torch.testing.assert_close(out.cams[:, 0], dec[:, 1] - dec[:, 0])  # foreground logit (raw evidence)
        torch.testing.assert_close(out.aux["probs"][:, 0], torch.softmax(dec, 1)[:, 1])


def test_smallcnn_levels_and_decoder_resolution():
    clf = _classifier("smallcnn", output_stride=8, width=4)
    assert feature_layers(clf) == [f"backbone.body.features.{i}" for i in (5, 12, 19, 26)]
    assert encoder_channels(clf) == ([4, 8, 16, 32], [1, 2, 4, 8])
    dec = UNetDecoder([4, 8, 16, 32], (16, 8, 4))
    feats = [torch.randn(1, c, 40 // r, 40 // r) for c, r in zip([4, 8, 16, 32], [1, 2, 4, 8])]
    assert dec(feats).shape == (1, 2, 40, 40)  # reaches full resolution without a final resize


def test_decoder_block_structure():
    block = DecoderBlock(8, 4, 6)
    kinds = [type(m) for m in block.convs]
    assert kinds == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU] * 2
    assert all(m.bias is None for m in block.convs if isinstance(m, nn.Conv2d))
    assert block.convs[0].in_channels == 12
    # nearest x2 then nearest resize to the skip equals direct computation
    x = torch.randn(1, 8, 3, 3)
    up = torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")
    up = torch.nn.functional.interpolate(up, size=(5, 7), mode="nearest")
    skip = torch.randn(1, 4, 5, 7)
    block.eval()
    torch.testing.assert_close(block(x, skip), block.convs(torch.cat([up, skip], 1)))
    assert "skip_channels=4" in repr(block)


def test_channel_mismatch_names_encoder_and_decoder():
    clf = _classifier("smallcnn", output_stride=8, width=4)
    model = FCAM(clf, UNetDecoder([4, 8, 16, 64], (8, 8, 8)))
    with pytest.raises(ShapeError, match=r"encoder.*\[4, 8, 16, 32\].*decoder.*encoder_channels.*\[4, 8, 16, 64\]"):
        model(torch.zeros(1, 3, 32, 32))


def test_bad_inputs():
    clf = _classifier("smallcnn", output_stride=8, width=4)
    with pytest.raises(WSOLValueError, match="not sub-modules"):
        FCAM(clf, UNetDecoder([4], (4,)), encoder=["backbone.nope"])
    with pytest.raises(WSOLValueError, match="feature layers"):
        feature_layers(nn.Sequential(nn.Conv2d(3, 4, 3)))
    with pytest.raises(WSOLTypeError, match="encoder"):
        FCAM(clf, UNetDecoder([4], (4,)), encoder="backbone")
    with pytest.raises(WSOLTypeError, match="classifier"):
        FCAM("clf", UNetDecoder([4], (4,)))
    model = create_fcam(clf)
    with pytest.raises(ShapeError, match="x"):
        model(torch.zeros(3, 32, 32))
    with pytest.raises(WSOLTypeError, match="features"):
        model.decoder(torch.zeros(1, 4, 8, 8))
    with pytest.raises(WSOLValueError, match="encoder_channels"):
        UNetDecoder([4, 0])


def _no_hooks(model):
    return all(not m._forward_hooks for m in model.modules())


def test_frozen_classifier_is_frozen():
    clf = _classifier("smallcnn", output_stride=8, width=4)
    clf.train()
    # give BN non-trivial statistics first
    with torch.no_grad():
        clf(torch.randn(4, 3, 32, 32))
    before = copy.deepcopy(clf.state_dict())
    model = create_fcam(clf)
    assert all(not p.requires_grad for p in clf.parameters())
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    dec_before = copy.deepcopy(model.decoder.state_dict())
    model.train()
    assert model.training and model.decoder.training and not clf.training
    assert not any(m.training for m in clf.modules())
    for _ in range(3):
        out = model(torch.randn(4, 3, 32, 32))
        loss = out.aux["decoder_logits"].square().mean() + out.logits.sum() * 0
        opt.zero_grad()
        loss.backward()
        opt.step()
    clf.train()  # even if someone flips the classifier back, forward puts it in eval
    model(torch.randn(2, 3, 32, 32))
    after = clf.state_dict()
    for k, v in before.items():
        assert torch.equal(v, after[k]), k
    assert all(p.grad is None for p in clf.parameters())
    assert any(not torch.equal(v, model.decoder.state_dict()[k]) for k, v in dec_before.items())
    assert _no_hooks(model)
    model.eval()
    assert not model.decoder.training


def test_hooks_removed_after_exception():
    clf = _classifier("smallcnn", output_stride=8, width=4)
    model = create_fcam(clf)
    with pytest.raises(RuntimeError):
        model(torch.zeros(1, 5, 32, 32))  # wrong channels fail inside the classifier
    assert _no_hooks(model)


def test_unfrozen_classifier_receives_gradients():
    clf = _classifier("smallcnn", output_stride=8, width=4)
    model = create_fcam(clf, freeze_classifier=False)
    model.train()
    assert clf.training
    model(torch.randn(2, 3, 32, 32)).aux["decoder_logits"].sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in clf.backbone.parameters())


def test_separate_encoder_module():
    import timm

    clf = _classifier("smallcnn", output_stride=8, width=4)
    enc = timm.create_model("resnet18", features_only=True, out_indices=(0, 1, 2))
    model = create_fcam(clf, encoder=enc)
    assert model.decoder.encoder_channels == (64, 64, 128)
    assert all(not p.requires_grad for p in enc.parameters()) and not enc.training
    out = model(torch.randn(1, 3, 45, 39))
    assert out.cams.shape == (1, 1, 45, 39)
    assert "encoder=module" in repr(model)
