"""Registry of bottom-up pooling heads: ``create_head(name, in_channels, num_classes, **kwargs)``."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn

from wsolkit._checks import WSOLValueError, close_matches

__all__ = ["register_head", "create_head", "list_heads"]

_HEADS: dict[str, type[nn.Module]] = {}


def register_head(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator adding a head to the registry under ``name`` (lower case)."""

    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        key = name.lower()
        if key in _HEADS and _HEADS[key] is not cls:
            raise WSOLValueError(f"a head named {key!r} is already registered ({_HEADS[key].__name__})")
        _HEADS[key] = cls
        return cls

    return deco


def list_heads() -> list[str]:
    """Registered head names, sorted.

    Example:
        >>> "gap" in list_heads()
        True
    """
    return sorted(_HEADS)


def create_head(name: str, in_channels: int, num_classes: int, **kwargs) -> nn.Module:
    """Build a registered head.

    Args:
        name: registry name (case-insensitive), see :func:`list_heads`.
        in_channels: feature channels K of the backbone.
        num_classes: number of classes C.
        **kwargs: head hyper-parameters.

    Example:
        >>> head = create_head("gap", in_channels=16, num_classes=3)
        >>> head(torch.zeros(2, 16, 5, 5)).logits.shape
        torch.Size([2, 3])
    """
    key = str(name).lower()
    if key not in _HEADS:
        hint = close_matches(key, _HEADS)
        raise WSOLValueError(
            f"unknown head `name`={name!r}; " + (f"did you mean {hint}?" if hint else f"choose from {list_heads()}")
        )
    return _HEADS[key](in_channels, num_classes, **kwargs)
