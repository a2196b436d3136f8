"""Every method, through :func:`wsolkit.localize`: the map returned for a target is the map of that class.

On inputs whose prediction differs from the asked class y (y = prediction + 1 mod K), the map for y must equal the
method's map of class y computed without localize: the selected channel for methods with one map per class, the
explanation of y for explainers (and CAM), the erasing for y for ACoL. ``"pred"`` must equal the map of the argmax;
methods whose map does not depend on the asked class must give the same logits and maps whatever ``labels`` is.
"""

from __future__ import annotations

import pytest
import torch

import wsolkit
from wsolkit.cams import postprocess

K, B, S = 3, 4, 32
TINY_OPTIONS: dict[str, dict] = {  # as in test_methods.py: small on the CPU
    "tscam": {"backbone": "test_vit", "backbone_options": {"img_size": S}},
    "sscam": {"n_samples": 2}, "iscam": {"n_samples": 2}, "smoothgradcam++": {"n_samples": 2},
    "maxmin": {"u": 2}, "acol": {"mid_channels": 16}, "spg": {"mid_channels": 16},
}


def build(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    opts = dict(TINY_OPTIONS.get(name, {}))
    if wsolkit.method_info(name)["needs"] == "classifier":  # a GAP classifier: maps of every class are not 0
        clf = wsolkit.create_method("gap", K, backbone=wsolkit.create_backbone("smallcnn", output_stride=8, width=8))
        return wsolkit.create_method(name, classifier=clf.eval(), **opts)
    opts.setdefault("backbone", wsolkit.create_backbone("smallcnn", output_stride=8, width=8))
    return wsolkit.create_method(name, K, **opts)

#: methods whose map of class y is computed for y (they use ``labels`` at inference)
TARGETED = {n for n in wsolkit.list_methods() if wsolkit.method_info(n)["family"] in ("explainer", "cam")} | {"acol"}
#: a few seconds each on the CPU
SLOW = {"sscam", "iscam", "tscam", "maxmin", "ablationcam"}


def _params():
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in wsolkit.list_methods()]


def _direct(method, x, labels):
    """``method(x, labels)`` in eval mode, seeded like the localize call (SmoothGrad / SS-CAM draw noise)."""
    torch.manual_seed(1)
    method.eval()
    with torch.enable_grad() if getattr(method, "needs_grad", False) else torch.no_grad():
        return method(x, labels) if labels is not None else method(x)


def _localize(method, x, target, **kw):
    torch.manual_seed(1)
    return wsolkit.localize(method, x, target, **kw)


@pytest.mark.parametrize("name", _params())
def test_the_map_of_the_asked_class(name):
    m = build(name)
    x = torch.rand(B, 3, S, S, generator=torch.Generator().manual_seed(3))
    pred = _localize(m, x, "pred")
    assert pred.target.tolist() == pred.logits.argmax(1).tolist()
    y = (pred.target + 1) % K  # never the prediction
    asked = _localize(m, x, y)
    assert asked.target.tolist() == y.tolist() and asked.maps.shape == (B, S, S)
    torch.testing.assert_close(asked.logits, pred.logits)

    out_y = _direct(m, x, y)
    if out_y.cams.shape[1] == 1:  # class-specific maps: computed for y
        want = postprocess(out_y.cams.detach().float(), None, (S, S))
    else:
        want = postprocess(out_y.cams.detach().float(), y, (S, S))
    torch.testing.assert_close(asked.maps, want, rtol=1e-5, atol=1e-6)

    # "pred" is the map of the argmax, asked explicitly
    out_p = _direct(m, x, pred.target)
    want_p = postprocess(out_p.cams.detach().float(), pred.target if out_p.cams.shape[1] > 1 else None, (S, S))
    torch.testing.assert_close(pred.maps, want_p, rtol=1e-5, atol=1e-6)

    if name in TARGETED:
        # the asked class changes the map (this test would not see a method that ignores it)
        assert not torch.equal(asked.maps, pred.maps)
    else:
        # target-free: labels change neither logits nor maps
        free = _direct(m, x, None)
        torch.testing.assert_close(out_y.logits, free.logits)
        torch.testing.assert_close(out_y.cams, free.cams)
        torch.testing.assert_close(asked.maps, postprocess(free.cams.detach().float(), y, (S, S)), rtol=1e-5,
                                   atol=1e-6)


def test_acol_erases_for_the_asked_class():
    # the map of y is the fusion of branch A's map and branch B's map on features erased where A's map of y is
    # high: the erasing computed by hand for y, not for the prediction
    m = build("acol").eval()
    s = 96  # 12 x 12 features: regions of A's maps differ between classes
    x = torch.rand(B, 3, s, s, generator=torch.Generator().manual_seed(3))
    head = m.head
    with torch.no_grad():  # branch B above branch A, so the fused map of y shows where B looked after erasing
        [c for c in head.branch_b.modules() if isinstance(c, torch.nn.Conv2d)][-1].bias.add_(1.0)
        feats = m.backbone(x)
        cams_a = head.branch_a(feats)
    pred = wsolkit.localize(m, x, "pred")
    y = (pred.target + 1) % K
    loc = wsolkit.localize(m, x, y, normalize=False)
    with torch.no_grad():
        a_y = cams_a[torch.arange(B), y]  # branch A's map of y, min-max normalised, erased where >= delta
        lo, hi = a_y.amin((1, 2), keepdim=True), a_y.amax((1, 2), keepdim=True)
        region = (a_y - lo) / (hi - lo) >= head.delta
        cams_b = head.branch_b(feats * (~region)[:, None].to(feats))
        want_y = torch.maximum(cams_a, cams_b)[torch.arange(B), y]
        a_p = cams_a[torch.arange(B), pred.target]  # the same for the prediction: another map of y
        region_p = (a_p - a_p.amin((1, 2), keepdim=True)) / (a_p.amax((1, 2), keepdim=True) -
                                                              a_p.amin((1, 2), keepdim=True)) >= head.delta
        other_y = torch.maximum(cams_a, head.branch_b(feats * (~region_p)[:, None].to(feats)))[torch.arange(B), y]
    torch.testing.assert_close(loc.maps, wsolkit.cams.upsample(want_y, (s, s)), rtol=1e-5, atol=1e-6)
    assert (region != region_p).any() and not torch.equal(want_y, other_y)  # erasing for y is not for the pred


def test_localize_owns_modes_and_checks_targets():
    m = build("gradcam")
    m.train()
    x = torch.rand(2, 3, S, S)
    with torch.no_grad():  # a gradient explainer works whatever the caller's grad mode
        loc = wsolkit.localize(m, x, 1)
    assert m.training and m.classifier.training and loc.target.tolist() == [1, 1]
    assert float(loc.maps.amin()) == 0.0 and float(loc.maps.amax()) == 1.0
    with pytest.raises(ValueError, match="labels"):
        wsolkit.localize(m, x, "label")
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        wsolkit.localize(m, x, K)
    with pytest.raises(TypeError, match="class indices"):
        wsolkit.localize(m, x, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        wsolkit.localize(m, x, torch.tensor([0, 1, 2]))
    g = build("gap")
    with torch.enable_grad():
        loc = wsolkit.localize(g, x)
    assert not loc.maps.requires_grad and not loc.logits.requires_grad  # no_grad for methods that do not need it
    assert wsolkit.localize(g, x, size=(8, 12)).maps.shape == (2, 8, 12)
