"""Bottom-up pooling heads: features ``(B, K, h, w)`` → :class:`~wsolkit.output.WSOLOutput`.

Registered names (:func:`create_head`): ``"gap"``, ``"max"``, ``"lse"``, ``"wildcat"``, ``"prm"``, ``"deepmil"``.
"""

from wsolkit.heads._methods import bottom_up_method
from wsolkit.heads._registry import create_head, list_heads, register_head
from wsolkit.heads.gap import GAP, gap_pool
from wsolkit.heads.lse import LSE, lse_pool
from wsolkit.heads.max import MaxPool, max_pool
from wsolkit.heads.mil import DeepMIL, attention_pool
from wsolkit.heads.prm import PRM, find_peaks, prm_pool
from wsolkit.heads.wildcat import WILDCAT, class_wise_pool, wildcat_pool

__all__ = [
    "bottom_up_method",
    "GAP",
    "gap_pool",
    "MaxPool",
    "max_pool",
    "LSE",
    "lse_pool",
    "WILDCAT",
    "wildcat_pool",
    "class_wise_pool",
    "PRM",
    "prm_pool",
    "find_peaks",
    "DeepMIL",
    "attention_pool",
    "create_head",
    "list_heads",
    "register_head",
]
