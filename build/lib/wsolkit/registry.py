"""The one registry mechanism of wsolkit: methods, heads and backbones are looked up the same way.

Key rule (every registry): names are case-insensitive, ``-``, ``_`` and spaces are ignored and ``plusplus`` means
``++`` — so ``"Grad-CAM++"``, ``"gradcam_plusplus"`` and ``"gradcam++"`` name the same method. ``list_*(pattern)``
takes a shell-style pattern (:mod:`fnmatch`, case-insensitive) and returns the canonical names sorted
alphabetically. An unknown name raises :class:`UnknownNameError` (a :class:`ValueError`) listing close matches.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from wsolkit._checks import WSOLTypeError, WSOLValueError, close_matches

__all__ = ["Registry", "RegistryEntry", "UnknownNameError", "normalize_name"]

T = TypeVar("T")


class UnknownNameError(WSOLValueError):
    """A name is not in a registry (the message lists close matches)."""


def normalize_name(name: str) -> str:
    """Registry key of ``name``: lower case, ``-``/``_``/spaces removed, ``plusplus`` → ``++``.

    Example:
        >>> normalize_name("Grad-CAM_PlusPlus"), normalize_name("Smooth Grad-CAM++")
        ('gradcam++', 'smoothgradcam++')
    """
    if not isinstance(name, str):
        raise WSOLTypeError(f"a registry name must be a string, got {type(name).__name__}")
    return re.sub(r"[\s_\-]", "", name.lower()).replace("plusplus", "++")


@dataclass(frozen=True)
class RegistryEntry(Generic[T]):
    """One registered object with its canonical name and free-form metadata."""

    name: str
    obj: T
    info: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """A named collection with one key rule (:func:`normalize_name`), patterns and helpful errors.

    Args:
        kind: what the registry holds, used in messages (``"method"``, ``"head"``, ``"backbone"``).

    Example:
        >>> r = Registry("thing")
        >>> r.register("Grad-CAM", 1)
        >>> r.get("gradcam"), r.list("grad*")
        (1, ['gradcam'])
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, RegistryEntry[T]] = {}

    def register(self, name: str, obj: T, *, overwrite: bool = False, **info: Any) -> None:
        """Add ``obj`` under ``name``; a different object under a taken name needs ``overwrite=True``."""
        key = normalize_name(name)
        old = self._entries.get(key)
        if old is not None and old.obj is not obj and not overwrite:
            raise WSOLValueError(f"a {self.kind} named {key!r} is already registered ({old.obj!r}); "
                                 f"pass overwrite=True to replace it")
        self._entries[key] = RegistryEntry(key, obj, dict(info))

    def decorator(self, name: str, **info: Any) -> Callable[[T], T]:
        """``@registry.decorator(name)`` form of :meth:`register`."""

        def deco(obj: T) -> T:
            self.register(name, obj, **info)
            return obj

        return deco

    def entry(self, name: str) -> RegistryEntry[T]:
        """The entry of ``name``; :class:`UnknownNameError` with close matches when absent."""
        key = normalize_name(name)
        if key not in self._entries:
            hint = close_matches(key, self._entries)
            extra = f"; did you mean {hint}?" if hint else f"; list_{self.kind}s() shows the {len(self)} names"
            raise UnknownNameError(f"unknown {self.kind} `name`={name!r}{extra}")
        return self._entries[key]

    def get(self, name: str) -> T:
        """The object registered under ``name``."""
        return self.entry(name).obj

    def list(self, pattern: str = "*") -> list[str]:
        """Canonical names matching the shell-style ``pattern`` (same key rule as names), sorted alphabetically."""
        if not isinstance(pattern, str):
            raise WSOLTypeError(f"`pattern` must be a string, got {type(pattern).__name__}")
        pat = re.sub(r"[\s_\-]", "", pattern.lower()).replace("plusplus", "++")
        return sorted(k for k in self._entries if fnmatch.fnmatchcase(k, pat))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and normalize_name(name) in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self)} entries)"
