"""Patch sampling of the protocol: metastatic patches (Categories 1 and 2), calibration, normal patches."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError, check_int, check_number, check_probability
from wsolkit.data.camelyon.protocol import PatchProtocol, PatchRecord
from wsolkit.data.camelyon.readers import Slide, _open
from wsolkit.data.camelyon.tissue import _box_fraction, _grid, _read_tissue_fraction, _rng, _slide_tissue

__all__ = [
    "calibrate_category2",
    "sample_metastatic_patches",
    "sample_normal_patches",
    "sample_split",
]


def _check_slide(slide: Any) -> Slide:
    if not isinstance(slide, Slide):
        raise WSOLTypeError(f"`slides` must hold Slide objects, got {type(slide).__name__}")
    return slide


def sample_metastatic_patches(
    slide: Slide, protocol: PatchProtocol | None = None, split: str = ""
) -> list[PatchRecord]:
    """All patches of a tumour slide with enough tissue and ``p_m >= p_0``, before calibration.

    Patches lie on the non-overlapping level-0 grid. A patch is kept when its tissue fraction is ``>= p_t`` at the
    low level and at level 0, and its tumour fraction ``p_m >= p_0``; ``category`` is 1 if ``p_m <= p_1`` else 2.

    Args:
        slide: a :class:`Slide` with an annotation.
        protocol: hyper-parameters (default: the paper's).
        split: split name stored in the records.

    Returns:
        records in row-major grid order.

    Example:
        >>> from wsolkit.data.camelyon import PatchProtocol, Slide, synthetic_slide
        >>> image, annotation = synthetic_slide(512, 384, metastatic=True, seed=0)
        >>> recs = sample_metastatic_patches(Slide("tumor_0", image, annotation), PatchProtocol(patch_size=64))
        >>> sorted({r.category for r in recs})
        [1, 2]
    """
    proto = protocol if protocol is not None else PatchProtocol()
    slide = _check_slide(slide)
    if not slide.metastatic:
        raise WSOLValueError(f"slide {slide.name!r} has no tumour annotation; metastatic patches need one")
    s = proto.patch_size
    with _open(slide.image, "slide.image") as reader, \
            _open(slide.annotation, "slide.annotation", True, reader) as annot:
        dims, adims = tuple(reader.level_dimensions[0]), tuple(annot.level_dimensions[0])
        if tuple(map(int, dims)) != tuple(map(int, adims)):
            raise ShapeError(
                f"annotation of slide {slide.name!r} must have the level-0 size of the slide (width, height)="
                f"{tuple(dims)}, got {tuple(adims)}"
            )
        grid = _grid(reader, proto, slide.name)
        tissue = _slide_tissue(reader, proto)
        # cells that may hold tumour, from a coarse level of the annotation (conservative: any positive pixel)
        if proto.p_0 == 0:
            candidates = grid
        else:
            if proto.scan_level is None:
                ok = [i for i, d in enumerate(annot.level_downsamples) if d <= max(1.0, s / 16)]
                level = max(ok) if ok else 0
            else:
                level = min(proto.scan_level, len(annot.level_dimensions) - 1)
            aw, ah = annot.level_dimensions[level]
            low = np.asarray(annot.read_region((0, 0), level, (aw, ah)))
            positive = low[:, :, 0] > 0 if low.ndim == 3 else low > 0
            if low.ndim == 3 and low.shape[2] == 4:
                positive &= low[:, :, 3] > 0
            d = float(annot.level_downsamples[level])
            candidates = [(x, y) for x, y in grid if _box_fraction(positive, d, x, y, s) > 0]
        out = []
        for x, y in candidates:
            m = np.asarray(annot.read_region((x, y), 0, (s, s)))
            ym = m[:, :, 0] > 0 if m.ndim == 3 else m > 0
            if m.ndim == 3 and m.shape[2] == 4:
                ym &= m[:, :, 3] > 0
            p_m = float(ym.mean())
            if p_m < proto.p_0:
                continue
            if _box_fraction(tissue.mask, tissue.downsample, x, y, s) < proto.p_t:
                continue
            p_t0 = _read_tissue_fraction(reader, tissue, proto, x, y)
            if p_t0 < proto.p_t:
                continue
            out.append(PatchRecord(split, slide.name, 1, 1 if p_m <= proto.p_1 else 2, x, y, s, p_m, p_t0))
        return out


def _round_half_up(v: float) -> int:
    return int(math.floor(v + 0.5 + 1e-9))


def calibrate_category2(
    tumour_fractions: Sequence[float] | np.ndarray,
    n_category1: int,
    p_1: float = 0.5,
    p_n: float = 0.01,
    bin_width: float = 0.05,
    rng: np.random.Generator | int | None = 0,
) -> np.ndarray:
    """Pick Category 2 patches by the histogram procedure of the survey (Appendix B).

    ``k = round(n_category1 * p_n)`` patches are drawn one at a time: a bin of the tumour-fraction histogram
    (``[0, 1]`` cut every ``bin_width``; the last bin includes 1) is picked uniformly among the non-empty bins
    holding patches with ``p_m > p_1``, then a patch is picked uniformly among that bin's remaining Category 2
    patches (without repetition). A bin left empty is no longer picked; fewer than ``k`` patches are returned
    only when Category 2 runs out.

    Args:
        tumour_fractions: ``p_m`` of every metastatic patch (Category 1 entries are ignored).
        n_category1: ``n``, the number of Category 1 patches.
        p_1: upper tumour fraction of Category 1 (as in :class:`PatchProtocol`).
        p_n: Category 2 patches drawn per Category 1 patch.
        bin_width: histogram bin width.
        rng: a numpy Generator or an integer seed.

    Shape:
        ``tumour_fractions`` ``(N,)`` -> ``(k,)`` int64 indices into it, in drawing order.

    Example:
        >>> fr = [0.3, 0.52, 0.53, 0.97, 1.0, 1.0]
        >>> idx = calibrate_category2(fr, n_category1=200, p_n=0.01, rng=0)
        >>> len(idx), all(fr[i] > 0.5 for i in idx)
        (2, True)
    """
    fr = np.asarray(tumour_fractions, dtype=np.float64).reshape(-1)
    if fr.size and (not np.all(np.isfinite(fr)) or fr.min() < 0 or fr.max() > 1):
        raise WSOLValueError(f"`tumour_fractions` must lie in [0, 1], got values in [{fr.min()}, {fr.max()}]")
    check_int(n_category1, "n_category1", 0)
    check_probability(p_1, "p_1")
    check_probability(p_n, "p_n")
    check_number(bin_width, "bin_width", 0.0, 1.0, low_inclusive=False)
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    k = _round_half_up(n_category1 * p_n)
    n_bins = max(1, int(math.ceil(1.0 / bin_width - 1e-9)))
    bins: dict[int, list[int]] = {}
    for i in np.flatnonzero(fr > p_1):
        b = min(int(math.floor(fr[i] / bin_width + 1e-9)), n_bins - 1)
        bins.setdefault(b, []).append(int(i))
    chosen: list[int] = []
    while len(chosen) < k and bins:
        keys = sorted(bins)
        b = keys[int(gen.integers(len(keys)))]
        members = bins[b]
        chosen.append(members.pop(int(gen.integers(len(members)))))
        if not members:
            del bins[b]
    return np.asarray(chosen, dtype=np.int64)


def sample_normal_patches(
    slide: Slide, n: int, protocol: PatchProtocol | None = None, split: str = ""
) -> list[PatchRecord]:
    """Up to ``n`` patches drawn uniformly without repetition from the non-overlapping grid of a normal slide.

    Grid cells are visited in a random order (seeded by ``protocol.seed`` and the slide name); a cell is accepted
    when its tissue fraction is ``>= p_t`` at the low level and at level 0. Fewer than ``n`` are returned only
    when the slide has fewer acceptable cells.

    Returns:
        records in drawing order.

    Example:
        >>> from wsolkit.data.camelyon import PatchProtocol, Slide, synthetic_slide
        >>> image, _ = synthetic_slide(512, 384, metastatic=False, seed=1)
        >>> len(sample_normal_patches(Slide("normal_0", image), 5, PatchProtocol(patch_size=64)))
        5
    """
    proto = protocol if protocol is not None else PatchProtocol()
    slide = _check_slide(slide)
    check_int(n, "n", 0)
    s = proto.patch_size
    out: list[PatchRecord] = []
    with _open(slide.image, "slide.image") as reader:
        grid = _grid(reader, proto, slide.name)
        if n == 0:
            return out
        tissue = _slide_tissue(reader, proto)
        rng = _rng(proto.seed, "normal", slide.name)
        for i in rng.permutation(len(grid)):
            x, y = grid[int(i)]
            if _box_fraction(tissue.mask, tissue.downsample, x, y, s) < proto.p_t:
                continue
            p_t0 = _read_tissue_fraction(reader, tissue, proto, x, y)
            if p_t0 < proto.p_t:
                continue
            out.append(PatchRecord(split, slide.name, 0, 0, x, y, s, 0.0, p_t0))
            if len(out) == n:
                break
    return out


def sample_split(
    slides: Sequence[Slide], protocol: PatchProtocol | None = None, split: str = "train"
) -> list[PatchRecord]:
    """The full protocol on the slides of one set: metastatic patches, calibration, then normal patches.

    Category 1 patches of all the tumour slides are kept; Category 2 is calibrated over the whole set
    (:func:`calibrate_category2`); ``n_m`` (Category 1 + calibrated Category 2) normal patches are spread over the
    ``h`` normal slides, ``n_m // h`` each plus one for the first ``n_m % h`` slides.

    Returns:
        metastatic records (Category 1 then calibrated Category 2, in grid order) followed by normal records.

    Example:
        >>> from wsolkit.data.camelyon import PatchProtocol, Slide, synthetic_slide
        >>> slides = [Slide(f"tumor_{i}", *synthetic_slide(512, 384, True, seed=i)) for i in range(2)]
        >>> slides += [Slide(f"normal_{i}", synthetic_slide(512, 384, False, seed=10 + i)[0]) for i in range(2)]
        >>> recs = sample_split(slides, PatchProtocol(patch_size=64, p_n=0.5))
        >>> n_m = sum(r.label for r in recs)
        >>> n_m == sum(1 - r.label for r in recs)
        True
    """
    proto = protocol if protocol is not None else PatchProtocol()
    if not isinstance(slides, Sequence) or isinstance(slides, (str, bytes)):
        raise WSOLTypeError(f"`slides` must be a sequence of Slide, got {type(slides).__name__}")
    slides = [_check_slide(s) for s in slides]
    names = [s.name for s in slides]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})[:5]
        raise WSOLValueError(f"slide names must be unique, got duplicates {dup}")
    metastatic: list[PatchRecord] = []
    for s in slides:
        if s.metastatic:
            metastatic.extend(sample_metastatic_patches(s, proto, split))
    cat1 = [r for r in metastatic if r.category == 1]
    cat2 = [r for r in metastatic if r.category == 2]
    idx = calibrate_category2(
        [r.tumour_fraction for r in cat2],
        len(cat1),
        proto.p_1,
        proto.p_n,
        proto.bin_width,
        _rng(proto.seed, "calibration", split),
    )
    keep = set(idx.tolist())
    chosen = cat1 + [r for i, r in enumerate(cat2) if i in keep]
    normals = [s for s in slides if not s.metastatic]
    n_m = len(chosen)
    for j, s in enumerate(normals):
        quota = n_m // len(normals) + (1 if j < n_m % len(normals) else 0)
        got = sample_normal_patches(s, quota, proto, split)
        if len(got) < quota:
            warnings.warn(
                f"normal slide {s.name!r} has only {len(got)} patches with tissue >= p_t={proto.p_t}, "
                f"{quota} were requested; the {split!r} set gets fewer normal than metastatic patches",
                stacklevel=2,
            )
        chosen.extend(got)
    return chosen
