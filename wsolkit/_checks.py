"""Typed input checks shared by every part of wsolkit.

Every error raised here subclasses :class:`ValueError` or :class:`TypeError`, so ordinary ``except`` clauses
work, and every message names the offending argument and what was seen (shape, dtype or value).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch

__all__ = [
    "WSOLValueError",
    "WSOLTypeError",
    "ShapeError",
    "check_tensor",
    "check_ndim",
    "check_shape",
    "check_floating",
    "check_integer",
    "check_finite",
    "check_same_batch",
    "check_same_spatial",
    "check_mask_values",
    "check_labels",
    "check_number",
    "check_int",
    "check_probability",
    "check_choice",
    "close_matches",
]


class WSOLValueError(ValueError):
    """A value (number, option, tensor content) is not acceptable."""


class WSOLTypeError(TypeError):
    """An argument has the wrong type or dtype."""


class ShapeError(WSOLValueError):
    """A tensor has the wrong number of dimensions or the wrong shape."""


def _shape(x: torch.Tensor) -> str:
    return "(" + ", ".join(str(s) for s in x.shape) + ")"


def check_tensor(x: Any, name: str) -> torch.Tensor:
    """Raise :class:`WSOLTypeError` unless ``x`` is a tensor; return it."""
    if not isinstance(x, torch.Tensor):
        raise WSOLTypeError(f"`{name}` must be a torch.Tensor, got {type(x).__name__}")
    return x


def check_ndim(x: Any, name: str, ndims: int | Sequence[int], layout: str | None = None) -> torch.Tensor:
    """Check that ``x`` is a tensor with one of ``ndims`` dimensions.

    Args:
        x: the tensor.
        name: argument name used in the message.
        ndims: allowed number(s) of dimensions.
        layout: human readable expected layout, e.g. ``"(B, C, h, w)"``.
    """
    check_tensor(x, name)
    allowed = (ndims,) if isinstance(ndims, int) else tuple(ndims)
    if x.ndim not in allowed:
        expect = layout if layout is not None else " or ".join(f"{n}-D" for n in allowed)
        raise ShapeError(f"`{name}` must have shape {expect}, got {_shape(x)}")
    return x


def check_shape(x: Any, name: str, shape: Sequence[int | None], layout: str | None = None) -> torch.Tensor:
    """Check ``x.shape`` against ``shape`` where ``None`` matches any size."""
    check_ndim(x, name, len(shape), layout)
    for got, want in zip(x.shape, shape):
        if want is not None and got != want:
            expect = layout or "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise ShapeError(f"`{name}` must have shape {expect}, got {_shape(x)}")
    return x


def check_floating(x: Any, name: str) -> torch.Tensor:
    """Raise :class:`WSOLTypeError` unless ``x`` is a floating point tensor."""
    check_tensor(x, name)
    if not x.is_floating_point():
        raise WSOLTypeError(f"`{name}` must be a floating point tensor, got dtype {x.dtype}")
    return x


def check_integer(x: Any, name: str) -> torch.Tensor:
    """Raise :class:`WSOLTypeError` unless ``x`` is an integer (or bool) tensor."""
    check_tensor(x, name)
    if x.is_floating_point() or x.is_complex():
        raise WSOLTypeError(f"`{name}` must be an integer tensor, got dtype {x.dtype}")
    return x


def _compiling() -> bool:
    """True while ``torch.compile`` traces: checks of tensor *values* (finite, label range, mask values) would read
    data back to Python (``.item()``), a graph break in every compiled forward, so they run in eager mode only;
    checks of shapes and dtypes always run."""
    return torch.compiler.is_compiling()


def check_finite(x: torch.Tensor, name: str) -> torch.Tensor:
    """Raise :class:`WSOLValueError` if ``x`` holds NaN or Inf values (skipped under ``torch.compile``: see
    :func:`_compiling`)."""
    if x.is_floating_point() and not _compiling() and not bool(torch.isfinite(x).all()):
        n_nan = int(torch.isnan(x).sum())
        n_inf = int(torch.isinf(x).sum())
        raise WSOLValueError(
            f"`{name}` must be finite, got {n_nan} NaN and {n_inf} Inf values in a tensor of shape {_shape(x)}"
        )
    return x


def check_same_batch(a: torch.Tensor, a_name: str, b: torch.Tensor, b_name: str) -> None:
    """Raise :class:`ShapeError` unless ``a`` and ``b`` share the batch (first) dimension."""
    if a.shape[0] != b.shape[0]:
        raise ShapeError(
            f"`{a_name}` and `{b_name}` must have the same batch size, got {_shape(a)} and {_shape(b)}"
        )


def check_same_spatial(a: torch.Tensor, a_name: str, b: torch.Tensor, b_name: str) -> None:
    """Raise :class:`ShapeError` unless the last two dimensions of ``a`` and ``b`` agree."""
    if a.shape[-2:] != b.shape[-2:]:
        raise ShapeError(
            f"`{a_name}` and `{b_name}` must have the same spatial size, got {_shape(a)} and {_shape(b)}"
        )


def check_mask_values(mask: torch.Tensor, name: str, ignore_index: int | None = 255) -> torch.Tensor:
    """Raise :class:`WSOLValueError` unless ``mask`` only holds 0, 1 (and ``ignore_index``)."""
    check_tensor(mask, name)
    if _compiling():
        return mask
    ok = (mask == 0) | (mask == 1)
    if ignore_index is not None:
        ok = ok | (mask == ignore_index)
    if not bool(ok.all()):
        bad = torch.unique(mask[~ok])[:5].tolist()
        allowed = "{0, 1" + (f", {ignore_index}" if ignore_index is not None else "") + "}"
        raise WSOLValueError(f"`{name}` must only contain values in {allowed}, found {bad}")
    return mask


def check_labels(labels: Any, name: str, batch: int, num_classes: int) -> torch.Tensor:
    """Check a ``(B,)`` integer label tensor against the batch size and the number of classes."""
    check_integer(labels, name)
    if labels.ndim != 1 or labels.shape[0] != batch:
        raise ShapeError(f"`{name}` must have shape ({batch},), got {_shape(labels)}")
    if labels.numel() > 0 and not _compiling():
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= num_classes:
            raise WSOLValueError(
                f"`{name}` must be class indices in [0, {num_classes - 1}], got values in [{lo}, {hi}]"
            )
    return labels


def check_number(
    value: Any,
    name: str,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> float:
    """Check that ``value`` is a real number within the given bounds; return it as float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = float(value)
        else:
            raise WSOLTypeError(f"`{name}` must be a number, got {type(value).__name__}")
    value = float(value)
    if math.isnan(value):
        raise WSOLValueError(f"`{name}` must not be NaN")
    if low is not None and (value < low or (value == low and not low_inclusive)):
        raise WSOLValueError(f"`{name}` must be {'>=' if low_inclusive else '>'} {low}, got {value}")
    if high is not None and (value > high or (value == high and not high_inclusive)):
        raise WSOLValueError(f"`{name}` must be {'<=' if high_inclusive else '<'} {high}, got {value}")
    return value


def check_int(value: Any, name: str, low: int | None = None, high: int | None = None) -> int:
    """Check that ``value`` is an integer within ``[low, high]``; return it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise WSOLTypeError(f"`{name}` must be an int, got {type(value).__name__} ({value!r})")
    if low is not None and value < low:
        raise WSOLValueError(f"`{name}` must be >= {low}, got {value}")
    if high is not None and value > high:
        raise WSOLValueError(f"`{name}` must be <= {high}, got {value}")
    return value


def check_probability(value: Any, name: str) -> float:
    """Check that ``value`` is a number in ``[0, 1]``."""
    return check_number(value, name, 0.0, 1.0)


def close_matches(word: str, choices: Iterable[str], n: int = 5) -> list[str]:
    """Names among ``choices`` that look like ``word`` (for "did you mean" messages)."""
    choices = list(choices)
    out = difflib.get_close_matches(word, choices, n=n, cutoff=0.5)
    if not out:
        low = word.lower()
        out = [c for c in choices if low in c.lower()][:n]
    return out


def check_choice(value: Any, name: str, choices: Iterable[str]) -> str:
    """Check that ``value`` is one of ``choices``; the error lists close matches."""
    choices = list(choices)
    if value not in choices:
        hint = close_matches(str(value), choices)
        extra = f"; did you mean {hint}?" if hint else f"; choose from {sorted(choices)}"
        raise WSOLValueError(f"`{name}`={value!r} is not supported{extra}")
    return value
