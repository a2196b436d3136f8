import numpy as np
import pytest
import torch

from wsolkit._checks import WSOLTypeError, WSOLValueError
from wsolkit.backbones import SmallCNN, create_backbone
from wsolkit.erasing import ADL, adl, insert_adl


def _ref_drop(x, gamma):
    """float64 loops: mask[b, i, j] = mean_k x[b, k, i, j] < gamma * max_ij(mean_k x[b])."""
    x = x.double().numpy()
    out = np.empty_like(x)
    for b in range(x.shape[0]):
        att = x[b].mean(0)
        thr = gamma * att.max()
        out[b] = x[b] * (att < thr)
    return torch.from_numpy(out)


def _ref_importance(x):
    x = x.double().numpy()
    att = x.mean(1, keepdims=True)
    return torch.from_numpy(x / (1.0 + np.exp(-att)))


def test_drop_branch_per_sample_threshold():
    x = torch.rand(3, 4, 5, 6)
    x[1] *= 10.0  # very different maxima: a batch-wide threshold would drop nothing in samples 0 and 2
    x[2] -= 0.5
    out = adl(x, drop_rate=1.0, gamma=0.9)
    ref = _ref_drop(x, 0.9)
    assert torch.allclose(out.double(), ref, atol=1e-6)
    for b in range(3):  # each sample loses at least its own peak
        assert (out[b].sum(0) == 0).any()


def test_importance_branch():
    x = torch.randn(2, 3, 4, 4)
    assert torch.allclose(adl(x, drop_rate=0.0, gamma=0.9).double(), _ref_importance(x), atol=1e-6)


def test_branch_choice_follows_generator():
    x = torch.randn(2, 3, 4, 4)
    g, g_ref = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    drop, imp = _ref_drop(x, 0.8), _ref_importance(x)
    n_drop = 0
    for _ in range(400):
        use_drop = bool(torch.rand((), generator=g_ref) < 0.75)
        out = adl(x, 0.75, 0.8, generator=g).double()
        assert torch.allclose(out, drop if use_drop else imp, atol=1e-6)
        n_drop += use_drop
    assert 0.68 < n_drop / 400 < 0.82


def test_identity_in_eval():
    x = torch.randn(2, 3, 4, 4)
    assert adl(x, training=False) is x
    layer = ADL(0.75, 0.9).eval()
    assert torch.equal(layer(x), x)
    assert "drop_rate=0.75, gamma=0.9" in repr(layer)


def test_gradients_float64():
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: adl(t, drop_rate=0.0, gamma=0.9), (x,))
    # drop branch: the mask is a constant, the gradient is the mask itself
    out = adl(x, drop_rate=1.0, gamma=0.9)
    out.sum().backward()
    mask = (x.detach().mean(1, keepdim=True) < 0.9 * x.detach().mean(1).flatten(1).amax(1).view(-1, 1, 1, 1))
    assert torch.equal(x.grad, mask.double().expand_as(x))


def test_insert_adl_smallcnn_eval_unchanged_train_changed():
    net = SmallCNN(width=4, depth=2).eval()
    x = torch.randn(2, 3, 16, 16)
    before = net(x)
    assert insert_adl(net, ["features.12", "features.6"], drop_rate=1.0, gamma=0.5) == ["features.12", "features.6"]
    assert sum(isinstance(m, ADL) for m in net.modules()) == 2
    assert torch.equal(net(x), before)
    net.train()
    assert not torch.allclose(net(x), before)


@pytest.mark.parametrize(
    "name,positions",
    [
        ("resnet18", ["layer3", "layer4.1"]),
        # the torchvision trunk of create_backbone is a Sequential: layer4 is its item 7
        pytest.param("tv:resnet18", ["7"], marks=pytest.mark.slow),
        pytest.param("vgg11", ["features_13", "features_18"], marks=pytest.mark.slow),  # ~130M params to build
        ("torchvision.resnet18", ["layer3", "layer4"]),
        pytest.param("torchvision.vgg11", ["features.13"], marks=pytest.mark.slow),
    ],
)
def test_insert_adl_timm_torchvision(name, positions):
    if name.startswith("torchvision."):
        import torchvision

        bb = getattr(torchvision.models, name.split(".")[1])(num_classes=3).eval()
    else:
        bb = create_backbone(name).eval()
    x = torch.randn(1, 3, 64, 64)
    before = bb(x)
    resolved = insert_adl(bb, positions)
    assert len(resolved) == len(positions)
    assert all(bb.get_submodule(r)[1].__class__ is ADL for r in resolved)
    assert torch.equal(bb(x), before)


def test_insert_adl_parent_and_child():
    net = SmallCNN(width=2, depth=1)
    seq = torch.nn.Sequential(net)
    insert_adl(seq, ["0", "0.features.3"])
    assert isinstance(seq[0][1], ADL) and isinstance(seq[0][0].features[3][1], ADL)


def test_bad_inputs():
    net = SmallCNN(width=2, depth=1)
    with pytest.raises(WSOLValueError, match="layer9"):
        insert_adl(net, ["layer9"])
    with pytest.raises(WSOLValueError, match="did you mean"):
        insert_adl(net, ["features.33"])
    with pytest.raises(WSOLTypeError, match="positions"):
        insert_adl(net, "features.3")
    with pytest.raises(WSOLValueError, match="at least one"):
        insert_adl(net, [])
    with pytest.raises(WSOLValueError, match="drop_rate"):
        insert_adl(net, ["features.3"], drop_rate=1.5)
    with pytest.raises(WSOLValueError, match="drop_rate"):
        ADL(drop_rate=-0.1)
    with pytest.raises(WSOLValueError, match="gamma"):
        adl(torch.zeros(1, 1, 2, 2), gamma=2.0)
    with pytest.raises(WSOLValueError, match="x"):
        adl(torch.zeros(1, 2, 2))
    with pytest.raises(WSOLTypeError, match="backbone"):
        insert_adl("net", ["a"])
    assert sum(isinstance(m, ADL) for m in net.modules()) == 0  # failed calls left nothing behind
