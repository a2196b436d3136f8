"""The synthetic histology-like benchmark: determinism, content, speed-independent properties."""

import numpy as np
import pytest
import torch

from wsolkit._checks import WSOLValueError
from wsolkit.data import SyntheticHistology


@pytest.mark.parametrize("kind", ["glas", "camelyon"])
def test_deterministic_bit_for_bit(kind):
    a = SyntheticHistology(kind, "train", n=6, size=64, seed=3)
    b = SyntheticHistology(kind, "train", n=6, size=64, seed=3)
    for i in (0, 5, 2):
        xa, ya, ma = a[i]
        xb, yb, mb = b[i]
        assert torch.equal(xa, xb) and ya == yb and torch.equal(ma, mb)
    c = SyntheticHistology(kind, "test", n=6, size=64, seed=3)
    assert not torch.equal(a[0][0], c[0][0])
    d = SyntheticHistology(kind, "train", n=6, size=64, seed=4)
    assert not torch.equal(a[0][0], d[0][0])


@pytest.mark.parametrize("kind", ["glas", "camelyon"])
@pytest.mark.parametrize("size", [64, 150])
def test_item_contract(kind, size):
    ds = SyntheticHistology(kind, "valid", n=4, size=size, seed=0)
    x, y, m = ds[1]
    assert x.shape == (3, size, size) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert m.shape == (size, size) and m.dtype == torch.uint8 and set(m.unique().tolist()) <= {0, 1}
    assert y == 1 and ds[0][1] == 0 and len(ds) == 4


def test_masks_by_class():
    glas = SyntheticHistology("glas", "train", n=10, size=64).tensors()
    assert all(glas[2][i].any() for i in range(10))  # both classes have glands
    cam = SyntheticHistology("camelyon", "train", n=10, size=64).tensors()
    for i in range(10):
        assert bool(cam[2][i].any()) == (cam[1][i] == 1)


def test_colour_alone_does_not_give_the_class_away():
    x, y, _ = SyntheticHistology("camelyon", "train", n=60, size=64, seed=0).tensors()
    mean_rgb = x.mean((2, 3)).numpy()
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    acc = cross_val_score(LogisticRegression(max_iter=1000), mean_rgb, y.numpy(), cv=3).mean()
    assert acc < 0.85  # image-mean colour is a weak cue; the class is in the texture


def test_tensors_equal_items():
    ds = SyntheticHistology("glas", "test", n=3, size=64)
    x, y, m = ds.tensors()
    for i in range(3):
        xi, yi, mi = ds[i]
        assert torch.equal(x[i], xi) and int(y[i]) == yi and torch.equal(m[i], mi)
    assert np.array_equal(ds[-1][0].numpy(), x[2].numpy())


def test_bad_arguments():
    with pytest.raises(WSOLValueError, match="kind"):
        SyntheticHistology("glass")
    with pytest.raises(WSOLValueError, match="size"):
        SyntheticHistology("glas", size=32)
    with pytest.raises(WSOLValueError, match="split"):
        SyntheticHistology("glas", split="val")
    with pytest.raises(IndexError):
        SyntheticHistology("glas", n=2, size=64)[2]
