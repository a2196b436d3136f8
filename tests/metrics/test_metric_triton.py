"""The fused Triton kernel equals the torch path exactly (CPU, ``TRITON_INTERPRET=1``)."""

from __future__ import annotations

import importlib

import pytest
import torch

pytest.importorskip("triton")


@pytest.fixture()
def interpreted(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    from wsolkit.metrics import _triton

    try:
        mod = importlib.reload(_triton)
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"Triton interpreter unavailable: {exc}")
    if not mod._HAS_TRITON:
        pytest.skip("triton import failed")
    yield mod
    monkeypatch.delenv("TRITON_INTERPRET")
    importlib.reload(_triton)


@pytest.mark.parametrize("t", [1, 10, 1000])
@pytest.mark.parametrize("normalize", [False, True])
def test_triton_equals_torch(interpreted, t, normalize):
    from wsolkit.metrics.histogram import _histogram_update, _normalize_with, _prepare_scores

    g = torch.Generator().manual_seed(t)
    raw = torch.randn(3, 5, 5, generator=g) * 2
    raw[1] = 0.25  # constant map
    masks = torch.randint(0, 2, (3, 37, 29), generator=g, dtype=torch.uint8)
    masks[:, :3] = 255
    if not normalize:
        raw = torch.rand(3, 37, 29, generator=g)
        raw[0, 0, :4] = torch.tensor([0.0, 1.0, 0.5, 0.999])
    want = _histogram_update(raw, masks, t, 255, normalize=normalize, backend="torch")
    scores, lo, hi = _prepare_scores(raw, masks, None, normalize)
    got = interpreted.histogram(scores, masks, t, 255, lo, hi, block=256)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    # without normalisation arguments on already normalised maps
    if normalize:
        norm = _normalize_with(scores, lo, hi)
        got2 = interpreted.histogram(norm, masks, t, 255, None, None, block=256)
        assert torch.equal(got2[0], want[0]) and torch.equal(got2[1], want[1])


def test_triton_large_t_fallback_and_int_masks(interpreted):
    from wsolkit.metrics.histogram import _histogram_update

    g = torch.Generator().manual_seed(0)
    cams = torch.rand(2, 16, 16, generator=g)
    masks = torch.randint(0, 2, (2, 16, 16), generator=g)
    masks[0, 0] = -1
    want = _histogram_update(cams, masks, 5000, -1, backend="torch")
    got = interpreted.histogram(cams, masks, 5000, -1, None, None, block=128)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
