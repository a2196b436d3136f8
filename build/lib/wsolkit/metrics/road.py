"""ROAD: RemOve And Debias (Rong et al. 2022) — MoRF / LeRF with noisy linear imputation.

A fraction ``p`` of the pixels is removed — the most relevant first (MoRF, lower score is better) or the least
relevant first (LeRF, higher is better) — and each removed pixel is imputed from its 8 neighbours: the removed values
``x`` solve ``Σ_j w_ij (x_j − x_i) = 0`` (weights 1/6 for the 4-neighbours, 1/12 for the diagonals, neighbours
outside the image dropped), then Gaussian noise of standard deviation ``noise`` is added. The imputed image is scored
by the model (softmax probability of the target class by default).

Reference: pytorch-grad-cam ``metrics/road.py`` (``NoisyLinearImputer``, ``ROADMostRelevantFirst``,
``ROADLeastRelevantFirst``; from the authors' ``road_evaluation``). Same linear system, same removal rule
(``np.percentile`` thresholds, strict ``<`` keeps), same noise stream given the seed; our ``p`` is the percentage
*removed*, i.e. grad-cam's ``ROADMostRelevantFirst(percentile=100 − p)`` and ``ROADLeastRelevantFirst(percentile=
100 − p)``. Difference: the noise comes from a private generator seeded by ``seed`` (grad-cam draws it from the
global RNG), so results are reproducible without touching the global RNG.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn  # noqa: F401  (doctests)

from wsolkit._checks import WSOLValueError, check_int, check_number
from wsolkit.metrics._base import MetricDict
from wsolkit.metrics.faithfulness import _eval_mode, _FaithfulnessMeter, _logits, _reduce, _validate, model_scores

__all__ = ["noisy_linear_imputation", "road", "ROADMeter"]

# (row offset, column offset) → weight
_NEIGHBOURS = (((1, 1), 1 / 12), ((0, 1), 1 / 6), ((-1, 1), 1 / 12), ((1, -1), 1 / 12),
               ((0, -1), 1 / 6), ((-1, -1), 1 / 12), ((1, 0), 1 / 6), ((-1, 0), 1 / 6))


def noisy_linear_imputation(
    image: torch.Tensor, keep: torch.Tensor, noise: float = 0.01, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Impute the pixels where ``keep`` is False from their neighbours (a sparse linear solve) plus noise.

    Args:
        image: one image.
        keep: True where the pixel is kept.
        noise: standard deviation of the added Gaussian noise (0: none).
        generator: random generator of the noise.

    Shape:
        - image: :math:`(C, H, W)`; keep: :math:`(H, W)`

    Example:
        >>> img = torch.ones(1, 3, 3); keep = torch.ones(3, 3, dtype=torch.bool); keep[1, 1] = False
        >>> img[0, 1, 1] = 9.0
        >>> float(noisy_linear_imputation(img, keep, noise=0.0)[0, 1, 1])
        1.0
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve

    c, h, w = image.shape
    known = keep.reshape(-1).cpu().numpy().astype(bool)
    flat = image.detach().reshape(c, -1).cpu().double().numpy()
    unknown = np.flatnonzero(~known)
    n = unknown.size
    out = image.detach().reshape(c, -1).cpu().float().clone()
    if n == 0:
        return out.view(c, h, w).to(image)
    var = np.full(h * w, -1, dtype=np.int64)
    var[unknown] = np.arange(n)
    rows, cols = unknown // w, unknown % w
    diag = np.ones(n)
    rhs = np.zeros((n, c))
    ai, aj, av = [np.arange(n)], [np.arange(n)], []
    for (dy, dx), wt in _NEIGHBOURS:
        r, q = rows + dy, cols + dx
        inside = (r >= 0) & (r < h) & (q >= 0) & (q < w)
        diag[~inside] -= wt  # the weights of missing neighbours are dropped from the pixel's total
        src = np.flatnonzero(inside)
        nb = r[inside] * w + q[inside]
        is_known = known[nb]
        rhs[src[is_known]] -= wt * flat[:, nb[is_known]].T
        ai.append(src[~is_known])
        aj.append(var[nb[~is_known]])
        av.append(np.full(int((~is_known).sum()), wt))
    av.insert(0, -diag)
    a = coo_matrix((np.concatenate(av), (np.concatenate(ai), np.concatenate(aj))), shape=(n, n)).tocsc()
    sol = spsolve(a, rhs)
    sol = torch.as_tensor(np.asarray(sol).reshape(n, c), dtype=torch.float32).t()
    if noise:
        # one (channel, pixel) draw, as grad-cam's randn_like of the transposed solution
        sol = sol + noise * torch.randn((c, n), generator=generator, dtype=torch.float32)
    out[:, torch.as_tensor(unknown)] = sol
    return out.view(c, h, w).to(image)


def _keep(map_: np.ndarray, p: float, most_relevant: bool) -> torch.Tensor:
    # grad-cam: keep = m < np.percentile(m, q) with m = map (MoRF) or 1 - map (LeRF), q = 100 - p
    m = map_ if most_relevant else (np.float32(1) - map_)
    return torch.from_numpy(m < np.percentile(m, 100.0 - p))


def road(
    model: Callable,
    images: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor | int | None = None,
    percentages: Sequence[float] = (10, 20, 30, 40, 50, 60, 70, 80, 90),
    noise: float = 0.01,
    seed: int = 0,
    score: str = "softmax",
    batch_size: int = 32,
    reduction: str = "mean",
) -> MetricDict:
    """ROAD MoRF / LeRF scores (Rong et al. 2022), in percent, averaged over the removed ``percentages``.

    Args:
        model: classifier returning logits or a ``WSOLOutput``.
        images: inputs.
        maps: explanation maps in ``[0, 1]`` at the input size.
        targets: explained classes (``None``: predicted on ``images``).
        percentages: percentages of pixels removed (each in ``(0, 100)``).
        noise: standard deviation of the imputation noise (in input units).
        seed: seed of the noise (private generator).
        score: ``"softmax"`` or ``"logit"``.
        batch_size: imputed images per forward pass.
        reduction: ``"mean"`` or ``"none"``.

    Returns:
        ``{"morf", "lerf", "road"}``: mean target score after MoRF / LeRF removal and ``(lerf − morf) / 2`` (grad-cam's
        ``ROADCombined``); with ``reduction="none"`` per image, plus ``"morf_curve"`` / ``"lerf_curve"`` ``(B, P)``
        and ``"morf_change"`` / ``"lerf_change"`` (score after − before, grad-cam's ``return_diff=True`` output).

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
        >>> r = road(model, torch.rand(2, 3, 4, 4), torch.rand(2, 4, 4), percentages=(50,))
        >>> sorted(r)
        ['lerf', 'morf', 'road']
    """
    tg, maps = _validate(images, maps, targets, score, reduction)
    pcts = [check_number(p, "percentages", 0.0, 100.0) for p in percentages]
    if not pcts:
        raise WSOLValueError("`percentages` must not be empty")
    noise = check_number(noise, "noise", 0.0)
    batch_size = check_int(batch_size, "batch_size", low=1)
    g = torch.Generator().manual_seed(int(seed))
    b = images.shape[0]
    m_np = maps.detach().cpu().float().numpy()
    curves = {}
    with _eval_mode(model), torch.no_grad():
        if tg is None:
            tg = torch.cat([_logits(model, images[a : a + batch_size]).argmax(1) for a in range(0, b, batch_size)])
        y = model_scores(model, images, tg, score, batch_size).double().cpu()
        for name, most in (("morf", True), ("lerf", False)):
            cols = []
            for p in pcts:
                imp = torch.stack([noisy_linear_imputation(images[i], _keep(m_np[i], p, most), noise, g)
                                   for i in range(b)])
                cols.append(model_scores(model, imp, tg, score, batch_size).double().cpu())
            curves[name] = torch.stack(cols, 1)
    morf, lerf = curves["morf"].mean(1), curves["lerf"].mean(1)
    res = _reduce({"morf": morf, "lerf": lerf, "road": (lerf - morf) / 2}, reduction)
    if reduction == "none":
        res.update({"morf_curve": 100.0 * curves["morf"], "lerf_curve": 100.0 * curves["lerf"],
                    "morf_change": 100.0 * (curves["morf"] - y[:, None]),
                    "lerf_change": 100.0 * (curves["lerf"] - y[:, None])})
    return res


class ROADMeter(_FaithfulnessMeter):
    """Streaming :func:`road` (options: ``percentages``, ``noise``, ``seed``, ``score``, ``batch_size``).

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
        >>> meter = ROADMeter(model, percentages=(50,))
        >>> meter.update(torch.rand(2, 3, 4, 4), torch.rand(2, 4, 4))
        >>> meter.compute()["n_images"]
        2
    """

    _keys = ("morf", "lerf", "road")

    def _fn(self, images, maps, targets):
        return road(self.model, images, maps, targets, reduction="none", **self.options)

