"""The protocol's hyper-parameters (:class:`PatchProtocol`), its patch record and the WSI-level split."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from wsolkit._checks import (
    ShapeError,
    WSOLValueError,
    check_choice,
    check_int,
    check_number,
    check_probability,
)
from wsolkit.wsi.tissue import TISSUE_CHANNELS as _CHANNELS

__all__ = ["PatchProtocol", "PatchRecord", "split_slides"]


@dataclass(frozen=True)
class PatchProtocol:
    """Hyper-parameters of the protocol; the defaults are the survey's (Appendix B).

    Args:
        patch_size: patch side at level 0 (paper: 512).
        p_t: minimum tissue fraction of a patch, at the low level and at level 0 (paper: 10%).
        p_0: minimum tumour fraction of a metastatic patch (paper: 20%).
        p_1: upper tumour fraction of Category 1; above it is Category 2 (paper: 50%).
        p_n: Category 2 patches drawn per Category 1 patch (paper: 1%).
        bin_width: width of the tumour-fraction histogram bins used by the calibration (paper: 0.05).
        tissue_level: pyramid level of the Otsu tissue mask (paper: 6; the coarsest level if the slide has
            fewer levels).
        tissue_channel: ``"saturation"`` (HSV S channel, tissue = above threshold) or ``"gray"`` (tissue = at or
            below threshold).
        tissue_threshold: fixed 0-255 threshold instead of Otsu (``None``: Otsu per slide).
        scan_level: annotation level used to find the grid cells that may hold tumour before the exact level-0
            count (``None``: the coarsest level with downsample ``<= patch_size / 16``; ``0``: exhaustive).
        seed: seed of every random choice; the same seed gives the same patches.

    Example:
        >>> PatchProtocol().p_t, PatchProtocol().p_0, PatchProtocol().p_1, PatchProtocol().p_n
        (0.1, 0.2, 0.5, 0.01)
        >>> PatchProtocol(p_0=0.6, p_1=0.5)
        Traceback (most recent call last):
        ...
        wsolkit._checks.WSOLValueError: `p_0` must be <= `p_1`, got p_0=0.6 and p_1=0.5
    """

    patch_size: int = 512
    p_t: float = 0.10
    p_0: float = 0.20
    p_1: float = 0.50
    p_n: float = 0.01
    bin_width: float = 0.05
    tissue_level: int = 6
    tissue_channel: str = "saturation"
    tissue_threshold: int | None = None
    scan_level: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check_int(self.patch_size, "patch_size", 1)
        for name in ("p_t", "p_0", "p_1", "p_n"):
            check_probability(getattr(self, name), name)
        if self.p_0 > self.p_1:
            raise WSOLValueError(f"`p_0` must be <= `p_1`, got p_0={self.p_0} and p_1={self.p_1}")
        check_number(self.bin_width, "bin_width", 0.0, 1.0, low_inclusive=False)
        check_int(self.tissue_level, "tissue_level", 0)
        check_choice(self.tissue_channel, "tissue_channel", _CHANNELS)
        if self.tissue_threshold is not None:
            check_int(self.tissue_threshold, "tissue_threshold", 0, 255)
        if self.scan_level is not None:
            check_int(self.scan_level, "scan_level", 0)
        check_int(self.seed, "seed", 0)


@dataclass(frozen=True)
class PatchRecord:
    """One sampled patch (level-0 box ``[x, x + size) x [y, y + size)`` of ``slide``).

    ``label``: 0 normal, 1 metastatic. ``category``: 0 normal, 1 or 2 (metastatic Category 1 / 2).
    """

    split: str
    slide: str
    label: int
    category: int
    x: int
    y: int
    size: int
    tumour_fraction: float
    tissue_fraction: float


def split_slides(
    names: Sequence[str],
    metastatic: Sequence[bool],
    fractions: Mapping[str, float] | None = None,
    seed: int = 0,
) -> dict[str, list[str]]:
    """WSI-level split, stratified by slide class (normal / metastatic).

    Within each class the slides are shuffled with ``seed`` and cut by the fractions; counts are rounded by the
    largest remainder so they sum to the class size (ties go to the earlier split).

    Args:
        names: unique slide names.
        metastatic: ``True`` for tumour slides, one per name.
        fractions: split name -> fraction, summing to 1 (default ``{"train": 0.6, "valid": 0.2, "test": 0.2}``).
        seed: shuffling seed.

    Returns:
        split name -> slide names (in the order of ``names``).

    Example:
        >>> names = [f"normal_{i}" for i in range(5)] + [f"tumor_{i}" for i in range(5)]
        >>> splits = split_slides(names, [n.startswith("tumor") for n in names], {"train": 0.6, "test": 0.4})
        >>> {k: len(v) for k, v in splits.items()}
        {'train': 6, 'test': 4}
    """
    fractions = dict(fractions) if fractions is not None else {"train": 0.6, "valid": 0.2, "test": 0.2}
    if len(fractions) == 0:
        raise WSOLValueError("`fractions` must name at least one split")
    for k, v in fractions.items():
        check_probability(v, f"fractions[{k!r}]")
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-6:
        raise WSOLValueError(f"`fractions` must sum to 1, got {total} ({fractions})")
    names = list(names)
    metastatic = [bool(m) for m in metastatic]
    if len(names) != len(metastatic):
        raise ShapeError(f"`names` and `metastatic` must have the same length, got {len(names)} and {len(metastatic)}")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})[:5]
        raise WSOLValueError(f"`names` must be unique, got duplicates {dup}")
    check_int(seed, "seed", 0)
    keys = list(fractions)
    assigned: dict[str, str] = {}
    for cls in (False, True):
        members = [n for n, m in zip(names, metastatic) if m == cls]
        rng = np.random.default_rng([seed, int(cls)])
        order = [members[i] for i in rng.permutation(len(members))]
        quotas = [fractions[k] * len(members) for k in keys]
        counts = [int(math.floor(q + 1e-9)) for q in quotas]
        rest = len(members) - sum(counts)
        by_remainder = sorted(range(len(keys)), key=lambda i: (-(quotas[i] - counts[i]), i))
        for i in by_remainder[:rest]:
            counts[i] += 1
        start = 0
        for k, c in zip(keys, counts):
            for n in order[start : start + c]:
                assigned[n] = k
            start += c
    return {k: [n for n in names if assigned[n] == k] for k in keys}
