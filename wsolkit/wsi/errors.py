"""Typed errors of whole-slide processing; each subclasses :class:`~wsolkit._checks.WSOLValueError` (a ValueError).

Example:
    >>> issubclass(MissingLevelError, ValueError), issubclass(UnknownMPPError, SlideError)
    (True, True)
"""

from __future__ import annotations

from wsolkit._checks import WSOLValueError

__all__ = [
    "SlideError",
    "MissingLevelError",
    "UnknownMPPError",
    "CorruptTileError",
    "UnsupportedSlideError",
    "AnnotationError",
    "AnnotationOutsideSlideError",
]


class SlideError(WSOLValueError):
    """A slide cannot be read as asked."""


class MissingLevelError(SlideError):
    """The requested pyramid level (or resolution) does not exist in the slide."""


class UnknownMPPError(SlideError):
    """A resolution in microns per pixel was asked of a slide whose file does not state its mpp."""


class CorruptTileError(SlideError):
    """A tile of the slide file could not be decoded."""


class UnsupportedSlideError(SlideError):
    """The file is not a slide format the reader backend can open (not a corrupt tile)."""


class AnnotationError(WSOLValueError):
    """An annotation file cannot be parsed (unknown format, malformed polygon)."""


class AnnotationOutsideSlideError(AnnotationError):
    """An annotation polygon lies outside the slide it is drawn on."""
