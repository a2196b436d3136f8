"""CAM ops against float64 references (select, upsample, normalize, threshold, postprocess)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wsolkit import cams
from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError


def _ref_normalize(x: np.ndarray) -> np.ndarray:
    out = np.zeros_like(x, dtype=np.float64)
    for idx in np.ndindex(*x.shape[:-2]):
        m = x[idx].astype(np.float64)
        lo, hi = m.min(), m.max()
        out[idx] = 0.0 if hi == lo else (m - lo) / (hi - lo)
    return out


def _ref_bilinear(m: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear resize with half-pixel centres (align_corners=False), written from the definition."""
    h, w = m.shape
    out = np.zeros((out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            y = max((i + 0.5) * h / out_h - 0.5, 0.0)
            x = max((j + 0.5) * w / out_w - 0.5, 0.0)
            y0, x0 = min(int(np.floor(y)), h - 1), min(int(np.floor(x)), w - 1)
            y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
            dy, dx = y - y0, x - x0
            out[i, j] = (
                m[y0, x0] * (1 - dy) * (1 - dx) + m[y0, x1] * (1 - dy) * dx + m[y1, x0] * dy * (1 - dx)
                + m[y1, x1] * dy * dx
            )
    return out


def test_select_picks_label_map():
    x = torch.randn(3, 4, 5, 6, dtype=torch.float64)
    labels = torch.tensor([3, 0, 2])
    out = cams.select(x, labels)
    for b in range(3):
        assert torch.equal(out[b], x[b, labels[b]])
    assert torch.equal(cams.select(x, 1), x[:, 1])


def test_select_class_agnostic_ignores_labels():
    x = torch.randn(2, 1, 3, 3)
    assert torch.equal(cams.select(x, None), x[:, 0])
    assert torch.equal(cams.select(x, torch.tensor([5, 7])), x[:, 0])


@pytest.mark.parametrize("size", [(7, 7), (13, 9), (1, 1)])
def test_upsample_matches_reference(size):
    x = torch.rand(2, 3, 4, dtype=torch.float64)
    out = cams.upsample(x, size)
    for b in range(2):
        np.testing.assert_allclose(out[b].numpy(), _ref_bilinear(x[b].numpy(), *size), atol=1e-12)
    out4 = cams.upsample(x[:, None], size)
    assert out4.shape == (2, 1, *size)


def test_upsample_single_pixel_is_constant():
    out = cams.upsample(torch.tensor([[[2.5]]]), 5)
    assert torch.allclose(out, torch.full((1, 5, 5), 2.5), atol=1e-6, rtol=0)


def test_normalize_matches_reference_and_constant_maps():
    x = torch.randn(3, 2, 5, 4, dtype=torch.float64)
    x[1, 0] = 3.0  # constant map
    out = cams.normalize(x)
    np.testing.assert_allclose(out.numpy(), _ref_normalize(x.numpy()), atol=1e-12)
    assert torch.all(out[1, 0] == 0)
    single = cams.normalize(torch.tensor([[[4.0]]]))
    assert torch.equal(single, torch.zeros(1, 1, 1))
    y = cams.normalize(torch.randn(4, 6, 6))
    assert torch.allclose(y.flatten(1).amin(1), torch.zeros(4)) and torch.allclose(y.flatten(1).amax(1), torch.ones(4))


def test_normalize_rejects_nan_and_inf():
    x = torch.zeros(2, 3, 3)
    x[1, 1, 1] = float("nan")
    with pytest.raises(WSOLValueError, match="`cams` must be finite, got 1 NaN"):
        cams.normalize(x)
    x[1, 1, 1] = float("inf")
    with pytest.raises(ValueError, match="Inf"):
        cams.normalize(x)


def test_threshold_rule_is_greater_or_equal():
    x = torch.tensor([[[0.25, 0.5], [0.75, 1.0]]])
    assert cams.threshold(x, 0.5).tolist() == [[[False, True], [True, True]]]
    per_image = cams.threshold(torch.stack([x[0], x[0]]), torch.tensor([0.0, 1.0]))
    assert per_image[0].all() and per_image[1].sum() == 1


def test_postprocess_equals_chain():
    x = torch.randn(2, 3, 5, 5)
    labels = torch.tensor([2, 1])
    ref = cams.normalize(cams.upsample(cams.select(x, labels), (17, 17)))
    assert torch.equal(cams.postprocess(x, labels, (17, 17)), ref)
    ref64 = _ref_normalize(np.stack([_ref_bilinear(x[b, labels[b]].double().numpy(), 17, 17) for b in range(2)]))
    np.testing.assert_allclose(cams.postprocess(x.double(), labels, 17).numpy(), ref64, atol=1e-10)


def test_gradients_flow_through_ops():
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda t: cams.postprocess(t, torch.tensor([0, 2]), 6), (x,))
    assert F.mse_loss(cams.upsample(x, 8), torch.zeros(2, 3, 8, 8, dtype=torch.float64)).requires_grad


@pytest.mark.parametrize(
    "call, err, pattern",
    [
        (lambda: cams.select(torch.zeros(4, 7, 7), torch.zeros(4, dtype=torch.long)), ShapeError,
         r"`cams` must have shape \(B, C, h, w\), got \(4, 7, 7\)"),
        (lambda: cams.select(torch.zeros(2, 3, 4, 4), torch.zeros(3, dtype=torch.long)), ShapeError,
         r"`labels` must have shape \(2,\)"),
        (lambda: cams.select(torch.zeros(2, 3, 4, 4), torch.tensor([0, 3])), ShapeError, r"\[0, 2\]"),
        (lambda: cams.select(torch.zeros(2, 3, 4, 4), torch.tensor([0.0, 1.0])), WSOLTypeError, "integer"),
        (lambda: cams.select(torch.zeros(2, 3, 4, 4), None), WSOLTypeError, "labels"),
        (lambda: cams.upsample(torch.zeros(2, 3, 4, 4, 1), 8), ShapeError, "`cams`"),
        (lambda: cams.upsample(torch.zeros(2, 4, 4, dtype=torch.long), 8), WSOLTypeError, "floating"),
        (lambda: cams.upsample(torch.zeros(2, 4, 4), (0, 3)), ShapeError, "size"),
        (lambda: cams.normalize(torch.zeros(5)), ShapeError, r"got \(5\)"),
        (lambda: cams.threshold(torch.zeros(2, 4, 4), torch.zeros(3)), ShapeError, "tau"),
        (lambda: cams.select([1, 2], 0), WSOLTypeError, "torch.Tensor"),
    ],
)
def test_bad_inputs_raise_typed_errors(call, err, pattern):
    with pytest.raises(err, match=pattern):
        call()


def test_constant_map_stays_zero_after_upsampling():
    x = torch.full((2, 1, 7, 7), 0.3)
    out = cams.postprocess(x, None, (224, 224))
    assert torch.equal(out, torch.zeros(2, 224, 224))
    tiny = torch.tensor([[[0.0, 1e-30], [0.0, 0.0]]], dtype=torch.float64)  # a real (tiny) range is kept
    assert float(cams.normalize(tiny).max()) == 1.0
