import pytest
import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer

from wsolkit._checks import WSOLTypeError, WSOLValueError
from wsolkit.backbones import SmallCNN
from wsolkit.erasing import TSCAM


def _vit(**kw):
    torch.manual_seed(0)
    return VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, **kw).eval()


def _reference(vit, head, x):
    """float64: run the blocks one by one, attention softmax(q k^T / sqrt(d)) written out from the qkv weights."""
    vit = vit.double()
    x = x.double()
    t = vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(x))))
    rows = []
    for blk in vit.blocks:
        h = blk.norm1(t)
        qkv = F.linear(h, blk.attn.qkv.weight.double(), blk.attn.qkv.bias)
        b, n, _ = qkv.shape
        heads, d = 2, 16
        q = qkv[..., :32].reshape(b, n, heads, d).transpose(1, 2)
        k = qkv[..., 32:64].reshape(b, n, heads, d).transpose(1, 2)
        a = torch.softmax(q @ k.transpose(-1, -2) / d**0.5, dim=-1)
        rows.append(a[:, :, 0, 1:])  # class token -> patches
        t = blk(t)
    t = vit.norm(t)
    patches = t[:, 1:].transpose(1, 2).reshape(x.shape[0], 32, 4, 4)
    attention = torch.stack(rows).mean(dim=(0, 2)).reshape(x.shape[0], 1, 4, 4)
    semantic = F.conv2d(patches, head.weight.double(), head.bias.double(), padding=1)
    return attention, semantic


def test_attention_aggregation_matches_float64_reference():
    vit = _vit()
    fused_before = [blk.attn.fused_attn for blk in vit.blocks]
    model = TSCAM(vit, num_classes=3).eval()
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    assert [blk.attn.fused_attn for blk in vit.blocks] == fused_before
    assert all(len(blk.attn.qkv._forward_hooks) == 0 for blk in vit.blocks)
    attention, semantic = _reference(_vit(), model.head, x)
    assert torch.allclose(out.aux["attention"].double(), attention, atol=1e-5)
    assert torch.allclose(out.aux["semantic"].double(), semantic, atol=1e-4)
    assert torch.allclose(out.cams.double(), semantic * attention, atol=1e-4)
    assert torch.allclose(out.logits.double(), semantic.mean((-2, -1)), atol=1e-4)
    total = out.aux["attention"].sum((-2, -1))  # the class token's weight on itself is left out
    assert bool(((total > 0) & (total < 1)).all())
    assert out.aux["layer_attention"].shape == (2, 2, 2, 16)


def test_float64_model_and_non_fused_path_agree():
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    vit = _vit().double()
    model = TSCAM(vit, 2).double().eval()
    a = model(x).aux["attention"]
    captured = []
    for blk in vit.blocks:  # the explicit (non-fused) timm path, attention read at attn_drop
        blk.attn.fused_attn = False
        blk.attn.attn_drop.register_forward_hook(lambda m, i, o: captured.append(o[:, :, 0, 1:]))
    b = model(x).aux["attention"]
    ref = torch.stack(captured).mean(dim=(0, 2)).reshape(1, 1, 4, 4)
    assert torch.allclose(a, ref, atol=1e-12) and torch.allclose(b, ref, atol=1e-12)


def test_hooks_removed_after_exception_and_gradients():
    vit = _vit()
    model = TSCAM(vit, 2).train()
    with pytest.raises(RuntimeError):
        model(torch.randn(1, 5, 32, 32))  # wrong channel count fails inside the patch embedding
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(Exception):  # noqa: B017 - any failure inside a block
        vit.blocks[1].attn.qkv.register_forward_pre_hook(lambda m, i: (_ for _ in ()).throw(RuntimeError("boom")))
        model(x)
    vit.blocks[1].attn.qkv._forward_pre_hooks.clear()
    assert all(len(blk.attn.qkv._forward_hooks) == 0 for blk in vit.blocks)
    out = model(x)
    F.cross_entropy(out.logits, torch.tensor([1])).backward()
    assert vit.blocks[0].attn.qkv.weight.grad.abs().max() > 0 and model.head.weight.grad.abs().max() > 0


def test_bad_inputs():
    with pytest.raises(WSOLTypeError, match="VisionTransformer"):
        TSCAM(SmallCNN(4, 1), 2)
    with pytest.raises(WSOLValueError, match="class token"):
        TSCAM(_vit(class_token=False, global_pool="avg"), 2)
    with pytest.raises(WSOLValueError, match="num_classes"):
        TSCAM(_vit(), 0)
    with pytest.raises(WSOLValueError, match="x"):
        TSCAM(_vit(), 2)(torch.randn(3, 32, 32))


def test_create_method_builds_tscam_and_rejects_non_vit():
    import wsolkit

    m = wsolkit.create_method("tscam", 2, backbone="test_vit", backbone_options={"img_size": 32})
    assert isinstance(m, TSCAM) and isinstance(m, wsolkit.WSOLMethod)
    out = m.eval()(torch.rand(2, 3, 32, 32), torch.tensor([0, 1]))
    assert out.cams.shape[:2] == (2, 2)
    vit = _vit()
    assert wsolkit.create_method("tscam", 2, backbone=vit).vit is vit
    with pytest.raises(WSOLTypeError, match="VisionTransformer"):
        wsolkit.create_method("tscam", 2, backbone="test_resnet")
    with pytest.raises(WSOLValueError, match="timm model"):
        wsolkit.create_method("tscam", 2, backbone="not_a_model_xyz")
    with pytest.raises(WSOLValueError, match="backbone_options"):
        wsolkit.create_method("tscam", 2, backbone=vit, backbone_options={"img_size": 32})


def test_default_backbone_is_deit_small():
    import wsolkit
    from wsolkit.erasing import TSCAM_DEFAULT_BACKBONE

    # create_method's generic default ("resnet18") is replaced by the paper's DeiT-S/16; depth 1 keeps it small
    m = wsolkit.create_method("tscam", 2, backbone_options={"depth": 1, "img_size": 32})
    assert TSCAM_DEFAULT_BACKBONE == "deit_small_patch16_224"
    assert m.embed_dim == 384 and m.vit.patch_embed.patch_size == (16, 16)
