"""Registry of heads: ``create_head(name, in_channels, num_classes, **options)``, ``list_heads(pattern)``.

Same mechanism and key rule as the method registry (:mod:`wsolkit.registry`): case-insensitive, ``-``/``_``/spaces
ignored; unknown names raise :class:`~wsolkit.registry.UnknownNameError` with close matches. Other packages add
heads with the :func:`register_head` decorator (``wsolkit.erasing`` registers ``"acol"`` and ``"spg"``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn as nn

from wsolkit.registry import Registry

__all__ = ["register_head", "create_head", "list_heads"]

_HEADS: Registry[type[nn.Module]] = Registry("head")


def register_head(name: str, *, overwrite: bool = False) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator adding a head to the registry under ``name``.

    The class is called as ``cls(in_channels, num_classes, **options)`` and its ``forward(features)`` returns a
    :class:`~wsolkit.output.WSOLOutput` (set the class attribute ``uses_labels = True`` to also receive
    ``labels=`` at training time). A different class under a taken name needs ``overwrite=True``.

    Example:
        >>> from wsolkit.heads import GAP
        >>> @register_head("my-gap", overwrite=True)
        ... class MyGAP(GAP):
        ...     pass
        >>> list_heads("my*")
        ['mygap']
    """

    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        _HEADS.register(name, cls, overwrite=overwrite)
        return cls

    return deco


def list_heads(pattern: str = "*") -> list[str]:
    """Registered head names matching ``pattern`` (:mod:`fnmatch`, case-insensitive), sorted alphabetically.

    Example:
        >>> [n for n in list_heads() if n in ("gap", "lse", "wildcat")]
        ['gap', 'lse', 'wildcat']
        >>> list_heads("*cat")
        ['wildcat']
    """
    return _HEADS.list(pattern)


def create_head(name: str, in_channels: int, num_classes: int, **options: Any) -> nn.Module:
    """Build a registered head.

    Args:
        name: a name of :func:`list_heads` (key rule of :mod:`wsolkit.registry`).
        in_channels: feature channels K of the backbone.
        num_classes: number of classes C.
        **options: the head's hyper-parameters.

    Raises:
        UnknownNameError: unknown ``name`` (the message lists close matches).

    Example:
        >>> head = create_head("GAP", in_channels=16, num_classes=3)
        >>> head(torch.zeros(2, 16, 5, 5)).logits.shape
        torch.Size([2, 3])
    """
    return _HEADS.get(name)(in_channels, num_classes, **options)
