"""Bottom-up pooling heads: features ``(B, K, h, w)`` → :class:`~wsolkit.output.WSOLOutput`."""

from wsolkit.heads._registry import create_head, list_heads, register_head
from wsolkit.heads.gap import GAP, gap_pool

__all__ = ["GAP", "gap_pool", "create_head", "list_heads", "register_head"]
