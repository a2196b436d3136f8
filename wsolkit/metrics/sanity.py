"""Model-randomisation sanity check (Adebayo et al. 2018, "Sanity checks for saliency maps", cascading form).

Starting from the top (output) layer, the classifier's layers are re-initialised one after another, cumulatively;
after each step the explanation method is rebuilt over the randomised copy and its maps for the same images and
classes are compared with the maps of the trained model, per image, by the four similarities of the paper: the
Spearman rank correlation of the maps (signed) and of their absolute values (the paper's default), SSIM, and the
Pearson correlation of their HOG features. A method whose maps depend on the learned weights decorrelates as layers
are randomised; one whose maps do not change fails the check.

The pass / fail verdict is **wsolkit's rule, not the paper's** (Adebayo et al. report similarity curves and give no
threshold): with every layer random, the mean of each similarity named in ``criteria`` — by default both Spearman
correlations — must be below ``threshold`` (0.5). The ranks decide because a map whose ranking never changed has
not changed in any way a threshold on it can see, while its structure similarity can fall: ``base ** 12`` has
Spearman 1 with ``base`` and an SSIM well below 0.5.

Any method of the protocol works: pass a factory ``classifier -> method`` (e.g.
``lambda clf: wsolkit.create_method("gradcam", classifier=clf)``) whose result is called as ``method(x, labels)``
and returns a :class:`~wsolkit.output.WSOLOutput` (its ``cams`` are post-processed: select → upsample → min-max) or a
``(B, H, W)`` map tensor (min-max normalised per image).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from wsolkit import cams as cam_ops
from wsolkit._checks import WSOLTypeError, WSOLValueError, check_ndim, check_number

__all__ = [
    "spearman",
    "spearman_abs",
    "ssim",
    "hog",
    "hog_similarity",
    "randomizable_layers",
    "SanityResult",
    "model_randomization",
]

#: Similarities of :class:`SanityResult`, in the order of its table.
SIMILARITIES = ("spearman", "spearman_abs", "ssim", "hog")


def _rank(x: torch.Tensor) -> torch.Tensor:
    """Ranks along the last dim with ties given their average rank (as ``scipy.stats.rankdata``), float64."""
    x = x.double()
    order = torch.argsort(x, dim=-1, stable=True)
    xs = torch.gather(x, -1, order)
    n = x.shape[-1]
    pos = torch.arange(n, dtype=torch.float64).expand_as(xs)
    new = torch.ones_like(xs, dtype=torch.bool)
    new[..., 1:] = xs[..., 1:] != xs[..., :-1]
    group = new.long().cumsum(-1) - 1  # tie-group id of each sorted element
    sums = torch.zeros_like(xs).scatter_add_(-1, group, pos)
    cnt = torch.zeros_like(xs).scatter_add_(-1, group, torch.ones_like(pos))
    avg = torch.gather(sums / cnt.clamp_min(1), -1, group) + 1
    return torch.empty_like(avg).scatter_(-1, order, avg)


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of each pair of maps (average ranks for ties; NaN when a map is constant).

    Shape:
        - a, b: :math:`(B, H, W)`; output: :math:`(B,)`

    Example:
        >>> x = torch.rand(2, 4, 4)
        >>> spearman(x, 2 * x + 1).tolist(), spearman(x, -x).tolist()
        ([1.0, 1.0], [-1.0, -1.0])
    """
    ra, rb = _rank(a.flatten(1)), _rank(b.flatten(1))
    ra = ra - ra.mean(1, keepdim=True)
    rb = rb - rb.mean(1, keepdim=True)
    den = (ra.square().sum(1) * rb.square().sum(1)).sqrt()
    return torch.where(den > 0, (ra * rb).sum(1) / den.clamp_min(1e-300), torch.full_like(den, float("nan")))


def spearman_abs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of the absolute values of each pair of maps (Adebayo et al.'s default).

    On raw (signed) maps it ignores the sign: a map whose sign flipped but whose magnitudes kept their order has
    ``spearman_abs`` 1.

    Shape:
        - a, b: :math:`(B, H, W)`; output: :math:`(B,)`

    Example:
        >>> x = torch.rand(2, 4, 4) + 0.1
        >>> spearman_abs(x, -x).tolist()
        [1.0, 1.0]
    """
    return spearman(a.abs(), b.abs())


def hog(maps: torch.Tensor, orientations: int = 9, cell: int = 8, block: int = 2, eps: float = 1e-5) -> torch.Tensor:
    """Histogram-of-oriented-gradients features of each map (Dalal & Triggs; the layout of ``skimage.feature.hog``).

    Centred differences ``[−1, 0, 1]`` (0 on the border rows / columns); unsigned orientation in ``[0°, 180°)``
    split into ``orientations`` equal bins, hard assignment; per ``cell × cell`` cell the gradient magnitudes of
    each bin are averaged (pixels beyond the last full cell are dropped); every ``block × block`` window of cells
    (stride one cell) is L2-Hys normalised (``v/√(Σv² + ε²)``, clipped at 0.2, normalised again). Maps smaller than
    ``block`` cells use ``cell = max(1, min(H, W) // block)``. Float64.

    Shape:
        - maps: :math:`(B, H, W)`; output: :math:`(B, F)` with
          ``F = (n_h − block + 1)·(n_w − block + 1)·block²·orientations``

    Example:
        >>> hog(torch.rand(2, 16, 16)).shape  # 2×2 cells of 8 px, one block of 2×2 cells, 9 bins
        torch.Size([2, 36])
    """
    check_ndim(maps, "maps", 3, "(B, H, W)")
    x = maps.double()
    h, w = x.shape[-2:]
    if min(h, w) < cell * block:
        cell = max(1, min(h, w) // block)
    gx, gy = torch.zeros_like(x), torch.zeros_like(x)
    gx[:, :, 1:-1] = x[:, :, 2:] - x[:, :, :-2]
    gy[:, 1:-1, :] = x[:, 2:, :] - x[:, :-2, :]
    mag = torch.sqrt(gx * gx + gy * gy)
    ang = torch.rad2deg(torch.atan2(gy, gx)) % 180.0
    bins = (ang / (180.0 / orientations)).floor().long().clamp_(0, orientations - 1)
    nh, nw = h // cell, w // cell
    mag, bins = mag[:, : nh * cell, : nw * cell], bins[:, : nh * cell, : nw * cell]
    onehot = F.one_hot(bins, orientations).to(x.dtype) * mag[..., None]  # (B, H', W', O)
    hist = onehot.reshape(x.shape[0], nh, cell, nw, cell, orientations).mean((2, 4))  # (B, nh, nw, O)
    blocks = hist.unfold(1, block, 1).unfold(2, block, 1)  # (B, bh, bw, O, block, block)
    v = blocks.permute(0, 1, 2, 4, 5, 3).reshape(x.shape[0], blocks.shape[1], blocks.shape[2], -1)
    v = v / torch.sqrt(v.square().sum(-1, keepdim=True) + eps**2)
    v = v.clamp(max=0.2)
    v = v / torch.sqrt(v.square().sum(-1, keepdim=True) + eps**2)
    return v.flatten(1)


def hog_similarity(a: torch.Tensor, b: torch.Tensor, **options) -> torch.Tensor:
    """Pearson correlation of the :func:`hog` features of each pair of maps (NaN when a feature vector is constant).

    Shape:
        - a, b: :math:`(B, H, W)`; output: :math:`(B,)`

    Example:
        >>> x = torch.rand(2, 16, 16)
        >>> bool(torch.allclose(hog_similarity(x, 3 * x), torch.ones(2, dtype=torch.float64)))
        True
    """
    fa, fb = hog(a, **options), hog(b, **options)
    fa = fa - fa.mean(1, keepdim=True)
    fb = fb - fb.mean(1, keepdim=True)
    den = (fa.square().sum(1) * fb.square().sum(1)).sqrt()
    return torch.where(den > 0, (fa * fb).sum(1) / den.clamp_min(1e-300), torch.full_like(den, float("nan")))


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0, sigma: float = 1.5, size: int = 11) -> torch.Tensor:
    """Structural similarity of each pair of maps (Wang et al. 2004): Gaussian window (σ 1.5, 11 × 11, valid part),
    ``C1 = (0.01 L)²``, ``C2 = (0.03 L)²``, population (co)variances; the mean of the SSIM map. Float64.

    Shape:
        - a, b: :math:`(B, H, W)` with ``H, W >= size``; output: :math:`(B,)`

    Example:
        >>> x = torch.rand(2, 16, 16)
        >>> [round(v, 6) for v in ssim(x, x).tolist()]
        [1.0, 1.0]
    """
    a, b = a.double()[:, None], b.double()[:, None]
    m = min(a.shape[-2:])
    if m < size:  # small maps: the largest odd window that fits
        size = m if m % 2 else m - 1
    r = size // 2
    g = torch.exp(-((torch.arange(size, dtype=torch.float64) - r) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    win = (g[:, None] * g[None, :])[None, None]

    def filt(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, win)

    mu_a, mu_b = filt(a), filt(b)
    va = filt(a * a) - mu_a**2
    vb = filt(b * b) - mu_b**2
    cov = filt(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (va + vb + c2))
    return s.flatten(1).mean(1)


def randomizable_layers(model: nn.Module) -> list[str]:
    """Names of the modules holding parameters directly, from the top (last registered) to the bottom.

    Example:
        >>> randomizable_layers(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2)))
        ['3', '0']
    """
    names = [n for n, m in model.named_modules() if n and any(True for _ in m.parameters(recurse=False))]
    return names[::-1]


def _reinit(module: nn.Module) -> None:
    if hasattr(module, "reset_parameters"):
        module.reset_parameters()
        return
    for p in module.parameters(recurse=False):  # pragma: no cover - modules without reset_parameters
        nn.init.normal_(p, std=0.01)


def _maps(method: Callable, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The method's maps, post-processed (select → upsample → min-max) and raw (select → upsample, signed)."""
    if isinstance(method, nn.Module):  # a method: the one inference path
        from wsolkit.inference import localize

        raw = localize(method, images, labels, normalize=False).maps.detach().float()
        return cam_ops.normalize(raw), raw
    out = method(images, labels)
    cams = getattr(out, "cams", out)
    if not isinstance(cams, torch.Tensor):
        raise WSOLTypeError(f"the method must return a WSOLOutput or a (B, H, W) tensor, got {type(out).__name__}")
    if cams.ndim == 3:
        cams = cams[:, None]
    check_ndim(cams, "cams", 4, "(B, K, h, w) or (B, H, W)")
    raw = cam_ops.upsample(cam_ops.select(cams.detach().float(), labels), tuple(images.shape[-2:]))
    return cam_ops.normalize(raw), raw


def _similarities(ref: tuple[torch.Tensor, torch.Tensor], new: tuple[torch.Tensor, torch.Tensor]) -> dict:
    """Rank and structure similarities on the post-processed maps; ``spearman_abs`` on the raw (signed) maps."""
    return {"spearman": spearman(ref[0], new[0]), "spearman_abs": spearman_abs(ref[1], new[1]),
            "ssim": ssim(ref[0], new[0]), "hog": hog_similarity(ref[0], new[0])}


@dataclass
class SanityResult:
    """Similarity of the maps of progressively randomised models to the trained model's maps.

    ``steps[0]`` is ``"trained"`` (similarity 1); ``steps[k]`` names the last layer randomised at step ``k``
    (layers ``1..k`` of the cascade are random). ``spearman``, ``ssim``, ``spearman_abs`` and ``hog`` are
    ``(len(steps), B)`` float64 (``None`` for the last two when not computed).

    The verdict (:attr:`passed`) is wsolkit's rule, not the paper's (which gives no threshold): with every layer
    random, the mean (a constant map counting as 0) of each similarity in ``criteria`` is below ``threshold``.
    """

    steps: list[str]
    spearman: torch.Tensor
    ssim: torch.Tensor
    threshold: float = 0.5
    maps: list[torch.Tensor] = field(default_factory=list, repr=False)
    spearman_abs: torch.Tensor | None = None
    hog: torch.Tensor | None = None
    criteria: tuple[str, ...] = ("spearman", "spearman_abs")

    def _last_mean(self, name: str) -> float:
        values = getattr(self, name)
        if values is None:
            raise WSOLValueError(f"`criteria` names {name!r}, which this result does not hold")
        return float(torch.nan_to_num(values[-1], nan=0.0).mean())  # a constant map shares no ranking/structure

    @property
    def passed(self) -> bool:
        """True when, with every layer randomised, the mean of every similarity in ``criteria`` (default: the
        signed and the absolute-value Spearman correlations) is below ``threshold``: the maps' ranking changed.

        This rule is ours: Adebayo et al. give no threshold. Requiring the ranks to change means a map that is a
        monotone function of the trained map (``base ** 12``: Spearman 1, SSIM well below 0.5) fails.
        """
        return all(self._last_mean(name) < self.threshold for name in self.criteria)

    def table(self) -> list[dict]:
        """One row per step: layer, mean / sd of each similarity, and how many maps were constant.

        A constant map (undefined correlation) counts as 0, the rule :attr:`passed` uses, so the last row's means
        are the figures the verdict is taken on; ``constant`` says how many images that rule touched.
        """
        names = [n for n in SIMILARITIES if getattr(self, n) is not None]
        rows = []
        for k, step in enumerate(self.steps):
            vals = {n: getattr(self, n)[k] for n in names}
            row: dict = {"layer": step}
            constant = torch.zeros_like(vals["spearman"], dtype=torch.bool)
            for n, v in vals.items():
                constant |= torch.isnan(v)
                v = torch.nan_to_num(v, nan=0.0)
                row[n], row[f"{n}_sd"] = float(v.mean()), float(v.std(unbiased=False))
            row["constant"] = int(constant.sum())
            rows.append(row)
        return rows

    def __str__(self) -> str:
        names = [n for n in SIMILARITIES if getattr(self, n) is not None]
        width = max(len(s) for s in self.steps)
        lines = [f"{'layer'.ljust(width)}" + "".join(f"  {n:>12}" for n in names), "-" * (width + 14 * len(names))]
        lines += [f"{r['layer'].ljust(width)}" + "".join(f"  {r[n]:12.3f}" for n in names) for r in self.table()]
        lines.append(f"passed: {self.passed} (wsolkit's rule: mean {' and '.join(self.criteria)} with every layer "
                     f"random < {self.threshold})")
        return "\n".join(lines)


def model_randomization(
    method_factory: Callable[[nn.Module], Callable],
    classifier: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    layers: Sequence[str] | None = None,
    seed: int = 0,
    threshold: float = 0.5,
    keep_maps: bool = False,
    criteria: Sequence[str] = ("spearman", "spearman_abs"),
) -> SanityResult:
    """Cascading model-randomisation check of an explanation method (Adebayo et al. 2018).

    Args:
        method_factory: ``classifier -> method``; ``method(x, labels)`` returns a ``WSOLOutput`` or ``(B, H, W)``.
        classifier: the trained classifier (left unchanged: copies are randomised).
        images: inputs ``(B, C, H, W)``.
        labels: explained classes (``None``: the trained classifier's predictions, kept for every step).
        layers: module names to randomise, in cascade order (default: :func:`randomizable_layers`, top first).
        seed: seed of the re-initialisations (the global RNG is restored afterwards).
        threshold: the check passes when the mean of every similarity of ``criteria`` with every layer random is
            below it (wsolkit's rule; the paper gives no threshold).
        keep_maps: keep the (post-processed) maps of every step in the result.
        criteria: similarities the verdict requires below ``threshold``, among ``"spearman"``, ``"spearman_abs"``,
            ``"ssim"``, ``"hog"``. Default: both rank correlations (a map whose ranking never changed fails).

    Returns:
        A :class:`SanityResult` (``table()``, ``passed``, ``spearman`` / ``spearman_abs`` / ``ssim`` / ``hog`` per
        step and image).

    Example:
        >>> clf = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                     nn.Linear(4, 2))
        >>> def saliency(c):  # input-gradient saliency as a (B, H, W) map callable
        ...     def run(x, y):
        ...         x = x.clone().requires_grad_(True)
        ...         g, = torch.autograd.grad(c(x).gather(1, y[:, None]).sum(), x)
        ...         return g.abs().amax(1)
        ...     return run
        >>> res = model_randomization(saliency, clf, torch.rand(2, 3, 16, 16))
        >>> [r["layer"] for r in res.table()]
        ['trained', '4', '0']
    """
    check_ndim(images, "images", 4, "(B, C, H, W)")
    threshold = check_number(threshold, "threshold", -1.0, 1.0)
    criteria = tuple(criteria)
    unknown = [c for c in criteria if c not in SIMILARITIES]
    if unknown or not criteria:
        raise WSOLValueError(f"`criteria` must be a non-empty subset of {SIMILARITIES}, got {criteria!r}")
    names = list(layers) if layers is not None else randomizable_layers(classifier)
    mods = dict(classifier.named_modules())
    missing = [n for n in names if n not in mods]
    if missing:
        raise WSOLValueError(f"`layers` {missing} are not modules of the classifier; "
                             f"candidates: {randomizable_layers(classifier)[:10]}")
    if not names:
        raise WSOLValueError("the classifier has no layer with parameters to randomise")
    was_training = classifier.training
    classifier.eval()
    try:
        if labels is None:
            with torch.no_grad():
                out = classifier(images)
                labels = getattr(out, "logits", out).argmax(1)
        labels = torch.as_tensor(labels).long()
        ref = _maps(method_factory(classifier), images, labels)
        model = copy.deepcopy(classifier)
        model_mods = dict(model.named_modules())
        sims = {k: [v] for k, v in _similarities(ref, ref).items()}
        kept = [ref[0]]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for name in names:
                for m in model_mods[name].modules():
                    if any(True for _ in m.parameters(recurse=False)):
                        _reinit(m)
                maps = _maps(method_factory(model), images, labels)
                for k, v in _similarities(ref, maps).items():
                    sims[k].append(v)
                kept.append(maps[0])
    finally:
        classifier.train(was_training)
    st = {k: torch.stack(v) for k, v in sims.items()}
    return SanityResult(["trained", *names], st["spearman"], st["ssim"], threshold, kept if keep_maps else [],
                        spearman_abs=st["spearman_abs"], hog=st["hog"], criteria=criteria)
