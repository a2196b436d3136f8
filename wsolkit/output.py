"""The output contract shared by every bottom-up head and WSOL model."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

__all__ = ["WSOLOutput"]


class WSOLOutput(NamedTuple):
    """What every WSOL head / model returns from ``forward``.

    A :class:`~typing.NamedTuple`, so it unpacks like a tuple and passes through DDP and ``torch.compile``.

    Attributes:
        logits: class scores before softmax.
        cams: raw class activation maps, one per class, at the feature resolution, unnormalised and differentiable
            unless the method says otherwise. Class-agnostic methods use ``C = 1``.
        aux: method-specific tensors (second branch, side maps, attention weights, ...). Empty dict when none.

    Shape:
        - logits: :math:`(B, C)`
        - cams: :math:`(B, C, h, w)` (class-agnostic methods: :math:`(B, 1, h, w)`)

    Example:
        >>> out = WSOLOutput(torch.zeros(2, 3), torch.zeros(2, 3, 7, 7), {})
        >>> logits, cams, aux = out
        >>> cams.shape
        torch.Size([2, 3, 7, 7])
    """

    logits: torch.Tensor
    cams: torch.Tensor
    aux: dict[str, Any]
