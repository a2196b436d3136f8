"""Model-randomisation sanity check (Adebayo et al. 2018, "Sanity checks for saliency maps", cascading form).

Starting from the top (output) layer, the classifier's layers are re-initialised one after another, cumulatively;
after each step the explanation method is rebuilt over the randomised copy and its maps for the same images and
classes are compared with the maps of the trained model by the Spearman rank correlation and SSIM (per image). A
method whose maps depend on the learned weights decorrelates as layers are randomised; one whose maps do not change
fails the check.

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

__all__ = ["spearman", "ssim", "randomizable_layers", "SanityResult", "model_randomization"]


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


def _maps(method: Callable, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    if isinstance(method, nn.Module):  # a method: the one inference path
        from wsolkit.inference import localize

        return localize(method, images, labels).maps
    out = method(images, labels)
    cams = getattr(out, "cams", out)
    if not isinstance(cams, torch.Tensor):
        raise WSOLTypeError(f"the method must return a WSOLOutput or a (B, H, W) tensor, got {type(out).__name__}")
    if cams.ndim == 3:
        cams = cams[:, None]
    check_ndim(cams, "cams", 4, "(B, K, h, w) or (B, H, W)")
    return cam_ops.postprocess(cams.detach().float(), labels, tuple(images.shape[-2:]))


@dataclass
class SanityResult:
    """Similarity of the maps of progressively randomised models to the trained model's maps.

    ``steps[0]`` is ``"trained"`` (similarity 1); ``steps[k]`` names the last layer randomised at step ``k``
    (layers ``1..k`` of the cascade are random). ``spearman`` and ``ssim`` are ``(len(steps), B)`` float64.
    """

    steps: list[str]
    spearman: torch.Tensor
    ssim: torch.Tensor
    threshold: float = 0.5
    maps: list[torch.Tensor] = field(default_factory=list, repr=False)

    @property
    def passed(self) -> bool:
        """True when, with every layer randomised, the mean Spearman correlation or the mean SSIM with the trained
        model's maps is below ``threshold`` (the maps changed in rank order or in structure)."""
        sp = torch.nan_to_num(self.spearman[-1], nan=0.0)  # a constant map shares no ranking with the trained one
        ss = torch.nan_to_num(self.ssim[-1], nan=0.0)
        return bool(min(float(sp.mean()), float(ss.mean())) < self.threshold)

    def table(self) -> list[dict]:
        """One row per step: layer, mean / sd of Spearman and SSIM, and how many maps were constant.

        A constant map (undefined correlation) counts as 0, the rule :attr:`passed` uses, so the last row's means
        are the figures the verdict is taken on; ``constant`` says how many images that rule touched.
        """
        rows = []
        for k, name in enumerate(self.steps):
            sp, ss = self.spearman[k], self.ssim[k]
            constant = int((torch.isnan(sp) | torch.isnan(ss)).sum())
            sp, ss = torch.nan_to_num(sp, nan=0.0), torch.nan_to_num(ss, nan=0.0)
            rows.append({"layer": name, "spearman": float(sp.mean()), "spearman_sd": float(sp.std(unbiased=False)),
                         "ssim": float(ss.mean()), "ssim_sd": float(ss.std(unbiased=False)), "constant": constant})
        return rows

    def __str__(self) -> str:
        width = max(len(s) for s in self.steps)
        lines = [f"{'layer'.ljust(width)}  spearman      ssim", "-" * (width + 22)]
        lines += [f"{r['layer'].ljust(width)}  {r['spearman']:8.3f}  {r['ssim']:8.3f}" for r in self.table()]
        lines.append(f"passed: {self.passed} (mean Spearman or SSIM with every layer random < {self.threshold})")
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
) -> SanityResult:
    """Cascading model-randomisation check of an explanation method (Adebayo et al. 2018).

    Args:
        method_factory: ``classifier -> method``; ``method(x, labels)`` returns a ``WSOLOutput`` or ``(B, H, W)``.
        classifier: the trained classifier (left unchanged: copies are randomised).
        images: inputs ``(B, C, H, W)``.
        labels: explained classes (``None``: the trained classifier's predictions, kept for every step).
        layers: module names to randomise, in cascade order (default: :func:`randomizable_layers`, top first).
        seed: seed of the re-initialisations (the global RNG is restored afterwards).
        threshold: the check passes when the mean Spearman correlation or SSIM with every layer random is below it.
        keep_maps: keep the maps of every step in the result.

    Returns:
        A :class:`SanityResult` (``table()``, ``passed``, ``spearman`` / ``ssim`` per step and image).

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
        sp, ss, kept = [torch.ones(images.shape[0], dtype=torch.float64)], [ssim(ref, ref)], [ref]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for name in names:
                for m in model_mods[name].modules():
                    if any(True for _ in m.parameters(recurse=False)):
                        _reinit(m)
                maps = _maps(method_factory(model), images, labels)
                sp.append(spearman(ref, maps))
                ss.append(ssim(ref, maps))
                kept.append(maps)
    finally:
        classifier.train(was_training)
    return SanityResult(["trained", *names], torch.stack(sp), torch.stack(ss), threshold, kept if keep_maps else [])
