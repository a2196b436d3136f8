"""explain (see the issue tracker for status)."""

__all__: list[str] = []
