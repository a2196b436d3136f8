"""One mechanism for deprecations: a name kept for one release, out of ``__all__``, with one warning text.

Like timm's ``register_model_deprecations``: a module lists its deprecated names with what replaces them, and its
module-level ``__getattr__`` resolves them with a :class:`DeprecationWarning`; functions and call forms use
:func:`warn_deprecated`. Every deprecation is recorded in :data:`DEPRECATIONS`, so a test checks that none is in a
public ``__all__`` and that each one warns.

Example:
    >>> import warnings
    >>> __getattr__ = deprecated_names("mypkg", {"old_mean": ((0.5,), "mypkg.MEAN")})
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     value = __getattr__("old_mean")
    >>> value, str(w[0].message)
    ((0.5,), '`mypkg.old_mean` is deprecated since wsolkit 0.3 and will be removed in 0.4: use mypkg.MEAN')
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

__all__: list[str] = []

#: current deprecations: qualified old name → what replaces it
DEPRECATIONS: dict[str, str] = {}

_F = TypeVar("_F", bound=Callable[..., Any])


def _message(old: str, new: str, since: str, removed: str) -> str:
    return f"`{old}` is deprecated since wsolkit {since} and will be removed in {removed}: use {new}"


def warn_deprecated(old: str, new: str, *, since: str = "0.3", removed: str = "0.4", stacklevel: int = 3) -> None:
    """Emit the :class:`DeprecationWarning` of ``old`` (a name or a call form) replaced by ``new``.

    ``stacklevel`` 3 points at the caller of the function that calls this.
    """
    DEPRECATIONS.setdefault(old, new)
    warnings.warn(_message(old, new, since, removed), DeprecationWarning, stacklevel=stacklevel)


def deprecated(old: str, new: str, *, since: str = "0.3", removed: str = "0.4") -> Callable[[_F], _F]:
    """Decorator: calling the function warns that ``old`` is replaced by ``new``, then runs it."""
    DEPRECATIONS.setdefault(old, new)

    def deco(fn: _F) -> _F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            warn_deprecated(old, new, since=since, removed=removed)
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return deco


def deprecated_names(module: str, names: dict[str, tuple[Any, str]], *, since: str = "0.3",
                     removed: str = "0.4") -> Callable[[str], Any]:
    """A module ``__getattr__`` resolving deprecated ``names`` (``{old: (value, replacement)}``) with a warning.

    ``value`` may be a zero-argument callable marked with :func:`lazy` (imported on first use). The names stay out
    of the module's ``__all__`` and ``dir()``.
    """
    for old, (_, new) in names.items():
        DEPRECATIONS.setdefault(f"{module}.{old}", new)

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        value, new = names[name]
        warnings.warn(_message(f"{module}.{name}", new, since, removed), DeprecationWarning, stacklevel=2)
        return value() if getattr(value, "_lazy", False) else value

    return __getattr__


def lazy(fn: Callable[[], Any]) -> Callable[[], Any]:
    """Mark a zero-argument callable as the lazily computed value of a deprecated name."""
    fn._lazy = True  # type: ignore[attr-defined]
    return fn
