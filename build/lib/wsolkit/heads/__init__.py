"""Bottom-up pooling heads: features ``(B, K, h, w)`` → :class:`~wsolkit.output.WSOLOutput`.

GAP, MAX-Pool, LSE, WILDCAT and PRM are one :class:`ConvPoolHead` (1×1 class-map convolution + a pooling function)
with different ``pool_type``; Deep MIL (attention pooling of the features) is its own head. Registered names
(:func:`create_head`, :func:`list_heads`): ``"gap"``, ``"max"``, ``"lse"``, ``"wildcat"``, ``"prm"``, ``"deepmil"``
(and ``"acol"``, ``"spg"`` from :mod:`wsolkit.erasing`). As methods: ``wsolkit.create_method("wildcat", 2,
backbone="resnet18")``.
"""

from wsolkit.heads._registry import create_head, list_heads, register_head
from wsolkit.heads.conv_pool import ConvPoolHead, Pooling, class_wise_pool, list_poolings, register_pooling
from wsolkit.heads.gap import GAP, GAPPooling, gap_pool
from wsolkit.heads.lse import LSE, LSEPooling, lse_pool
from wsolkit.heads.max import MaxPool, MaxPooling, max_pool
from wsolkit.heads.mil import DeepMIL, attention_pool
from wsolkit.heads.prm import PRM, PRMPooling, find_peaks, prm_pool
from wsolkit.heads.wildcat import WILDCAT, WILDCATPooling, wildcat_pool

from wsolkit.heads._methods import bottom_up_method  # isort: skip  (registers the methods; needs the heads above)

__all__ = [
    "bottom_up_method",
    "ConvPoolHead",
    "Pooling",
    "register_pooling",
    "list_poolings",
    "GAP",
    "GAPPooling",
    "gap_pool",
    "MaxPool",
    "MaxPooling",
    "max_pool",
    "LSE",
    "LSEPooling",
    "lse_pool",
    "WILDCAT",
    "WILDCATPooling",
    "wildcat_pool",
    "class_wise_pool",
    "PRM",
    "PRMPooling",
    "prm_pool",
    "find_peaks",
    "DeepMIL",
    "attention_pool",
    "create_head",
    "list_heads",
    "register_head",
]
