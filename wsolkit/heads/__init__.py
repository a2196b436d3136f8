"""Bottom-up pooling heads: features ``(B, K, h, w)`` → :class:`~wsolkit.output.WSOLOutput`."""

from wsolkit.heads._registry import create_head, list_heads, register_head
from wsolkit.heads.gap import GAP, gap_pool
from wsolkit.heads.wildcat import WILDCAT, class_wise_pool, wildcat_pool

__all__ = [
    "GAP",
    "gap_pool",
    "WILDCAT",
    "wildcat_pool",
    "class_wise_pool",
    "create_head",
    "list_heads",
    "register_head",
]
