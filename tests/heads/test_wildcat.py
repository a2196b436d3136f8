"""WILDCAT (survey eq. 6) against float64 references written with plain Python sorting.

References re-implemented here: eq. 6 itself; the MaxMin authors' ``WildCatPoolDecision.forward``
(sbelharbi/deep-wsl-histo-min-max-uncertainty, dropout on the sorted vector); Durand's ``WildcatPool2dFunction``
(durandtibo/wildcat.pytorch, forward and backward, halving when alpha != 0 and kmin > 0).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError
from wsolkit.heads import WILDCAT, class_wise_pool, create_head, wildcat_pool


def _n(k, n):
    # count for an int, max(1, round(k * n)) for a fraction
    if isinstance(k, int):
        return min(k, n)
    return max(1, min(n, round(k * n)))


def ref_wildcat(maps, kmax, kmin, alpha, keep=None, p=0.0):
    """Eq. 6; with ``keep`` (B, C, n) bool: the sorted vector's entries dropped at fixed positions (reference)."""
    b, c, h, w = maps.shape
    n = h * w
    out = torch.zeros(b, c, dtype=torch.float64)
    for i in range(b):
        for j in range(c):
            desc = sorted(maps[i, j].double().flatten().tolist(), reverse=True)
            if keep is not None:
                desc = [v * float(keep[i, j, t]) / (1 - p) for t, v in enumerate(desc)]
            npos, nneg = _n(kmax, n), _n(kmin, n)
            out[i, j] = sum(desc[:npos]) / npos
            if nneg > 0 and alpha != 0:
                out[i, j] += alpha * sum(desc[n - nneg :]) / nneg
    return out


def ref_durand(maps, kmax, kmin, alpha):
    """Durand's WildcatPool2dFunction in float64: forward scores and the gradient of their sum."""

    def positive_k(k, n):
        return 0 if k <= 0 else (round(k * n) if k < 1 else (n if k > n else int(k)))

    b, c, h, w = maps.shape
    n = h * w
    out = torch.zeros(b, c, dtype=torch.float64)
    grad = torch.zeros(b, c, n, dtype=torch.float64)
    for i in range(b):
        for j in range(c):
            vals = maps[i, j].double().flatten().tolist()
            order = sorted(range(n), key=lambda t: -vals[t])
            kp, kn = positive_k(kmax, n), positive_k(kmin, n)
            s = sum(vals[t] for t in order[:kp]) / kp
            g = [0.0] * n
            for t in order[:kp]:
                g[t] += 1 / kp
            if kn > 0 and alpha != 0:
                s = (s + alpha * sum(vals[t] for t in order[n - kn :]) / kn) / 2
                for t in order[n - kn :]:
                    g[t] += alpha / kn
                g = [v / 2 for v in g]
            out[i, j] = s
            grad[i, j] = torch.tensor(g, dtype=torch.float64)
    return out, grad.view(b, c, h, w)


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 1, 1, 1), (1, 2, 3, 3), (4, 2, 1, 5)])
@pytest.mark.parametrize(
    "kmax,kmin,alpha",
    [(1, 1, 1.0), (0.1, 0.2, 0.6), (3, None, 0.0), (0.01, 0.01, 0.7), (0.99, 0.5, 0.3), (100, 2, 1.0), (2, 0, 0.5)],
)
def test_matches_reference(shape, kmax, kmin, alpha):
    maps = torch.randn(*shape, dtype=torch.float64)
    got = wildcat_pool(maps, kmax, kmin, alpha)
    exp = ref_wildcat(maps, kmax, kmax if kmin is None else kmin, alpha)
    torch.testing.assert_close(got, exp)


def test_hand_values_and_ties():
    m = torch.tensor([[[[2.0, 2.0, 2.0], [-1.0, 0.0, -1.0]]]], dtype=torch.float64)
    # top-2 = {2, 2}; bottom-2 = {-1, -1}
    assert wildcat_pool(m, kmax=2, kmin=2, alpha=1.0).item() == pytest.approx(2.0 - 1.0)
    # top-4 = 2,2,2,0 -> 1.5 ; bottom-3 = -1,-1,0 -> -2/3
    assert wildcat_pool(m, kmax=4, kmin=3, alpha=0.5).item() == pytest.approx(1.5 - 1.0 / 3.0)
    # fraction smaller than one location still selects one: max + alpha * min
    assert wildcat_pool(m, kmax=0.01, kmin=0.01, alpha=1.0).item() == pytest.approx(1.0)
    # all equal map: any tie-breaking gives the same value
    c = torch.full((1, 1, 3, 3), 0.25, dtype=torch.float64)
    assert wildcat_pool(c, kmax=0.3, alpha=0.6).item() == pytest.approx(0.25 * 1.6)


def test_negative_term_is_not_lost():
    m = torch.tensor([[[[4.0, 0.0], [0.0, -8.0]]]])
    assert wildcat_pool(m, kmax=1, kmin=1, alpha=0.5).item() == pytest.approx(4.0 - 4.0)
    assert wildcat_pool(m, kmax=1, kmin=1, alpha=0.0).item() == pytest.approx(4.0)


def test_gradcheck():
    maps = torch.randn(2, 2, 3, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: wildcat_pool(x, 0.2, 0.3, 0.7), (maps,))
    # gradient reaches only the selected locations, with weight 1/n+ and alpha/n-
    x = torch.tensor([[[[3.0, 1.0, 2.0, -5.0]]]], requires_grad=True)
    wildcat_pool(x, kmax=2, kmin=1, alpha=0.5).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([[[[0.5, 0.0, 0.5, 0.5]]]]))


def test_dropout_identity_at_eval_and_values():
    x = torch.full((1, 1, 1, 1), 3.0)
    assert wildcat_pool(x, 1, alpha=0.0, dropout=0.75, training=False).item() == 3.0
    vals = {round(wildcat_pool(x, 1, alpha=0.0, dropout=0.75, training=True).item(), 5) for _ in range(200)}
    assert vals == {0.0, 12.0}  # inverted dropout: kept values scaled by 1 / (1 - p)
    # the head at eval: no dropout, logits = eq. 6 (float64 reference) on the modality average (its cams)
    head = WILDCAT(4, 2, modalities=5, kmax=0.09, kmin=0.09, alpha=0.0, dropout=0.75).eval()
    f = torch.randn(2, 4, 6, 6)
    out = head(f)
    torch.testing.assert_close(out.cams, out.aux["modality_maps"].mean(2))
    torch.testing.assert_close(out.logits.double(), ref_wildcat(out.cams, 0.09, 0.09, 0.0), rtol=1e-5, atol=1e-6)
    torch.manual_seed(0)
    train_logits = head.train()(f).logits
    head.eval()
    assert not torch.allclose(train_logits, out.logits)  # in train mode the same head drops entries


@pytest.mark.parametrize("kmax,kmin,alpha", [(0.2, 0.3, 0.6), (3, 2, 1.0), (0.6, 0.6, 0.5), (1, 0, 0.7)])
def test_dropout_matches_sorted_vector_reference(kmax, kmin, alpha):
    """Same draw: the mask is one uniform per position of the sorted vector, dropped where u < p."""
    maps = torch.randn(3, 2, 4, 5, dtype=torch.float64)
    p = 0.4
    torch.manual_seed(7)
    got = wildcat_pool(maps, kmax, kmin, alpha, dropout=p, training=True)
    torch.manual_seed(7)
    keep = torch.rand(3, 2, 20, dtype=torch.float64) >= p
    torch.testing.assert_close(got, ref_wildcat(maps, kmax, kmin, alpha, keep=keep, p=p))
    assert not torch.equal(got, ref_wildcat(maps, kmax, kmin, alpha))  # dropout did act


def test_training_logits_on_the_eval_scale():
    """A [1, 2] map, kmax = 0.09, p = 0.75 (MaxMin's setting): training logits average to the eval logit."""
    g = torch.Generator().manual_seed(0)
    m = 1 + torch.rand(1, 1, 28, 28, generator=g, dtype=torch.float64)
    reps = m.expand(4000, 1, 28, 28)
    ev = wildcat_pool(m, 0.09, 0.09, 0.0).item()
    tr = wildcat_pool(reps, 0.09, 0.09, 0.0, dropout=0.75, training=True).mean().item()
    ref_mean = float(np.mean(sorted(m.flatten().tolist(), reverse=True)[: round(0.09 * 784)]))
    assert ev == pytest.approx(ref_mean)
    assert tr == pytest.approx(ev, rel=0.03)
    # dropping the map before the selection (the earlier behaviour) picks the scaled survivors: several times larger
    torch.manual_seed(0)
    keep = (torch.rand(4000, 1, 784, dtype=torch.float64) >= 0.75) / 0.25
    before = (reps.reshape(4000, 1, 784) * keep).topk(round(0.09 * 784), dim=-1).values.mean().item()
    assert before / ev > 3


@pytest.mark.parametrize("kmax,kmin,alpha", [(0.2, 0.3, 0.6), (3, 2, 1.0), (2, 2, 0.0), (0.5, 0, 0.7)])
def test_durand_halving_matches_durand(kmax, kmin, alpha):
    maps = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    got = wildcat_pool(maps, kmax, kmin, alpha, durand_halving=True)
    exp, exp_grad = ref_durand(maps.detach(), kmax, kmin, alpha)
    torch.testing.assert_close(got, exp)
    got.sum().backward()
    torch.testing.assert_close(maps.grad, exp_grad)
    plain = wildcat_pool(maps.detach(), kmax, kmin, alpha)
    halved = alpha != 0 and kmin != 0
    torch.testing.assert_close(plain, 2 * exp if halved else exp)
    head = WILDCAT(4, 2, modalities=2, kmax=kmax, kmin=kmin, alpha=alpha, durand_halving=True).double()
    out = head(torch.randn(1, 4, 4, 5, dtype=torch.float64))
    torch.testing.assert_close(out.logits, ref_durand(out.cams.detach(), kmax, kmin, alpha)[0])
    assert "durand_halving=True" in repr(head)


def test_k_rule():
    m = torch.randn(1, 1, 3, 3, dtype=torch.float64)
    # a numpy integer is a count, the int 0 for kmin means no lowest-activation term
    torch.testing.assert_close(wildcat_pool(m, np.int64(2), 0, 0.6), wildcat_pool(m, 2, 2, 0.0))
    for bad in (1.0, 2.0, 0.0, 1.5, -0.1):
        with pytest.raises(WSOLValueError, match="kmax"):
            wildcat_pool(m, kmax=bad)
    with pytest.raises(WSOLValueError, match=r"kmax.*\(0, 1\).*int"):
        WILDCAT(4, 2, kmax=1.0)
    with pytest.raises(WSOLValueError, match="kmin"):
        wildcat_pool(m, kmax=2, kmin=0.0)
    with pytest.raises(WSOLValueError, match="kmin"):
        wildcat_pool(m, kmax=2, kmin=-1)


def test_module_matches_reference():
    k, c, m = 3, 2, 4
    head = WILDCAT(k, c, modalities=m, kmax=0.2, kmin=0.3, alpha=0.6).double()
    f = torch.randn(2, k, 5, 3, dtype=torch.float64)
    w = head.classifier.weight.detach().view(c * m, k)
    bias = head.classifier.bias.detach()
    maps = torch.einsum("ok,bkhw->bohw", w, f) + bias.view(1, -1, 1, 1)
    cams = maps.view(2, c, m, 5, 3).mean(2)
    out = head(f)
    torch.testing.assert_close(out.cams, cams)
    torch.testing.assert_close(out.logits, ref_wildcat(cams, 0.2, 0.3, 0.6))
    torch.testing.assert_close(out.aux["modality_maps"], maps.view(2, c, m, 5, 3))
    # function == Module
    torch.testing.assert_close(out.logits, wildcat_pool(class_wise_pool(maps, m), 0.2, 0.3, 0.6))
    assert "modalities=4" in repr(head)


def test_registry():
    head = create_head("wildcat", 6, 3, modalities=5, kmax=0.09, kmin=0.09, alpha=0.0, dropout=0.75)
    assert isinstance(head, WILDCAT)
    assert head(torch.randn(1, 6, 1, 1)).logits.shape == (1, 3)


@pytest.mark.parametrize(
    "kw,err",
    [
        ({"kmax": 0}, WSOLValueError),
        ({"kmax": -0.1}, WSOLValueError),
        ({"kmax": 1.5}, WSOLValueError),
        ({"kmax": 1.0}, WSOLValueError),
        ({"kmin": 0.0}, WSOLValueError),
        ({"kmin": 1.0}, WSOLValueError),
        ({"kmax": "a"}, WSOLTypeError),
        ({"kmax": True}, WSOLTypeError),
        ({"modalities": 0}, WSOLValueError),
        ({"alpha": -1.0}, WSOLValueError),
        ({"dropout": 1.0}, WSOLValueError),
        ({"dropout": -0.1}, WSOLValueError),
    ],
)
def test_bad_hyper_parameters(kw, err):
    with pytest.raises(err) as e:
        WILDCAT(4, 2, **kw)
    assert next(iter(kw)) in str(e.value)


def test_in_channels_mismatch():
    with pytest.raises(ShapeError, match=r"5 channels.*in_channels=4"):
        WILDCAT(4, 2)(torch.randn(1, 5, 3, 3))
    with pytest.raises(ShapeError, match="multiple of modalities"):
        class_wise_pool(torch.randn(1, 5, 2, 2), 2)
