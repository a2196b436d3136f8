"""Confidence-based (gradient-free) explainers: Score-CAM, SS-CAM and IS-CAM (survey Sec. 2.3, eq. 12).

Each channel ``A_k`` of the target layer becomes a mask ``H_k`` (upsampled to the input size, then min-max
normalised to ``[0, 1]``); the classifier scores the masked input ``x ⊙ H_k``; the map is ``ReLU(Σ_k α_k A_k)`` at
the target layer's resolution. Two channel weightings (option ``score``):

- ``"logit"`` (default): the softmax over channels of the target logits, ``α_k = softmax_k(s_k)`` — Algorithm 1 of
  Wang et al. (2020) and eq. 12 of the survey (subtracting the score of a baseline input, the "increase of
  confidence", is a shift that the softmax ignores). Default because it is the method as published.
- ``"probability"``: the authors' code (``haofanwang/Score-CAM``, ``cam/scorecam.py``, ``ScoreCAM.forward``) weights
  each channel by the class probability of the masked input, ``α_k = softmax_classes(f(x ⊙ H_k))_c``, with no
  softmax over channels. The reference also sums the upsampled activations ``Σ_k α_k up(A_k)`` before its ReLU; here
  the sum is taken at the layer resolution (the protocol upsamples after), which is the same map whenever
  ``Σ_k α_k A_k >= 0`` (e.g. a target layer after a ReLU), since bilinear upsampling is linear.

Implementation notes:

- A constant channel (max = min) has no mask: it gets weight exactly 0 and is left out of the softmax (never NaN).
- Channels whose normalised maps are identical (e.g. a channel and a positive rescaling of it) give identical
  masks, so each distinct mask is scored once (``dedup=True``, exact).
- Masked inputs are scored in batches of ``batch_size`` under :func:`torch.inference_mode`.
- ``top_k`` keeps only the ``k`` channels with the largest mean activation (the others get weight 0). This is an
  APPROXIMATION of the method, off by default.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from wsolkit import cams as cam_ops
from wsolkit._checks import WSOLTypeError, check_choice, check_int, check_number
from wsolkit.explain._hooks import LayerSpec, _Capture
from wsolkit.explain.base import BaseCAM, Targets, _masked_softmax

__all__ = ["ScoreCAM", "SSCAM", "ISCAM"]


class ScoreCAM(BaseCAM):
    """Score-CAM (Wang et al., 2020; survey eq. 12).

    Args:
        classifier: the trained classifier.
        target_layers: see :func:`~wsolkit.explain.resolve_target_layers` (several layers: mean of the maps).
        batch_size: masked inputs per forward pass.
        top_k: score only the ``top_k`` channels of largest mean activation (approximation; ``None`` = exact).
        dedup: score identical masks once (exact).
        score: channel weighting, ``"logit"`` (paper, default) or ``"probability"`` (authors' code); see the
            module docstring.
        **kwargs: ``num_classes``, ``reshape``, ``eval_mode`` of :class:`~wsolkit.explain.BaseCAM`.

    Shape:
        - x: :math:`(B, 3, H, W)`
        - logits: :math:`(B, K)`; cams: :math:`(B, 1, h, w)` at the target layer's resolution

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        ...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> ScoreCAM(net, "1", batch_size=8)(torch.rand(2, 3, 8, 8), labels=0).cams.shape
        torch.Size([2, 1, 8, 8])
    """

    name = "scorecam"
    needs_grad = False

    def __init__(
        self,
        classifier: nn.Module,
        target_layers: LayerSpec = None,
        *,
        batch_size: int = 32,
        top_k: int | None = None,
        dedup: bool = True,
        score: str = "logit",
        **kwargs: Any,
    ):
        super().__init__(classifier, target_layers, **kwargs)
        self.batch_size = check_int(batch_size, "batch_size", low=1)
        self.top_k = None if top_k is None else check_int(top_k, "top_k", low=1)
        self.dedup = bool(dedup)
        self.score = check_choice(score, "score", ("logit", "probability"))
        self.last_num_forwards = 0  # masked inputs scored by the last call (after dedup)

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", batch_size={self.batch_size}, top_k={self.top_k}, dedup={self.dedup}, "
                                       f"score={self.score!r}")

    def _masked_scores(self, logits: torch.Tensor, targets: Targets, idx: torch.Tensor | None) -> torch.Tensor:
        """Target logit (``score="logit"``) or class probability (``score="probability"``) of masked inputs."""
        if self.score == "probability":
            return torch.softmax(logits, dim=1).gather(1, idx[:, None])[:, 0]  # type: ignore[index]
        return self._scores(logits, targets, idx)

    # the score of one chunk of masked inputs; SS-CAM / IS-CAM override
    def _pair_scores(
        self, xs: torch.Tensor, masks: torch.Tensor, idx: torch.Tensor | None, targets: Targets
    ) -> torch.Tensor:
        return self._masked_scores(self._forward(xs * masks), targets, idx)

    def _channel_weights(
        self, x: torch.Tensor, acts: torch.Tensor, idx: torch.Tensor | None, targets: Targets
    ) -> torch.Tensor:
        """``(B, K)`` channel weights ``α`` for the spatial activations ``acts`` ``(B, K, h, w)``."""
        b, k, h, w = acts.shape
        flat = acts.flatten(2)
        valid = flat.amax(2) > flat.amin(2)
        if self.top_k is not None and self.top_k < k:
            mean = torch.where(valid, flat.mean(2), torch.full_like(flat[..., 0], -float("inf")))
            keep = torch.zeros_like(valid)
            keep.scatter_(1, mean.topk(self.top_k, dim=1).indices, True)
            valid = valid & keep
        low = cam_ops.normalize(acts)  # (B, K, h, w); equal rows ⇔ equal upsampled masks
        b_idx, k_idx = valid.nonzero(as_tuple=True)
        rows = low[b_idx, k_idx].flatten(1)
        if self.dedup and rows.shape[0] > 0:
            keyed = torch.cat([b_idx[:, None].to(rows.dtype), rows], 1)
            uniq, inverse = torch.unique(keyed, dim=0, return_inverse=True)
            u_b = uniq[:, 0].long()
            u_rows = uniq[:, 1:]
        else:
            u_b, u_rows, inverse = b_idx, rows, torch.arange(rows.shape[0], device=rows.device)
        self.last_num_forwards = int(u_rows.shape[0])
        size = tuple(x.shape[-2:])
        u_scores = torch.empty(u_rows.shape[0], dtype=acts.dtype, device=x.device)
        for s in range(0, u_rows.shape[0], self.batch_size):
            sel_b = u_b[s : s + self.batch_size]
            m = F.interpolate(u_rows[s : s + self.batch_size].view(-1, 1, h, w), size=size, mode="bilinear",
                              align_corners=False)
            m = cam_ops.normalize(m[:, 0])[:, None].to(x.dtype)
            sel_idx = idx[sel_b] if idx is not None else None
            u_scores[s : s + self.batch_size] = self._pair_scores(x[sel_b], m, sel_idx, targets).to(acts.dtype)
        scores = torch.zeros(b, k, dtype=acts.dtype, device=x.device)
        scores[b_idx, k_idx] = u_scores[inverse]
        if self.score == "probability":
            return torch.where(valid, scores, torch.zeros_like(scores))
        return _masked_softmax(scores, valid)

    def _layer_maps(self, x: torch.Tensor, targets: Targets) -> tuple[torch.Tensor, list[torch.Tensor]]:
        layers = self.layers
        with torch.inference_mode():
            with _Capture(layers, grad=False) as cap:
                logits = self._forward(x)
                acts = [self._spatial(a, x, m) for a, m in zip(cap.collected(), layers)]
            idx = self._target_indices(logits, targets)
            if idx is None and self.score == "probability":
                raise WSOLTypeError('`labels` cannot be a callable with score="probability" (a class is needed)')
            maps = []
            for a in acts:
                alpha = self._channel_weights(x, a, idx, targets)
                maps.append(torch.relu((alpha[:, :, None, None] * a).sum(1)))
        return logits.clone(), [m.clone() for m in maps]  # normal tensors outside inference mode


class SSCAM(ScoreCAM):
    """SS-CAM, smoothed Score-CAM (Naidu & Michael, 2020): channel scores averaged over noisy masked inputs.

    ``s_k = (1/N) Σ_n f(x ⊙ (H_k + ε_n))`` with ``ε_n ~ N(0, σ²)`` (``perturb="mask"``, default) or
    ``f((x + ε_n) ⊙ H_k)`` (``perturb="input"``); then the channel weights as Score-CAM (option ``score``).
    Defaults are the paper's ``N = 35, σ = 2`` (survey Table 4).

    Args:
        classifier: the trained classifier.
        target_layers: see :class:`ScoreCAM`.
        n_samples: N (> 0).
        sigma: σ (>= 0).
        perturb: ``"mask"`` or ``"input"``.
        seed: noise seed (``None``: torch's global generator).
        **kwargs: as :class:`ScoreCAM`.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        ...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> SSCAM(net, "1", n_samples=3)(torch.rand(1, 3, 8, 8)).cams.shape
        torch.Size([1, 1, 8, 8])
    """

    name = "sscam"

    def __init__(
        self,
        classifier: nn.Module,
        target_layers: LayerSpec = None,
        *,
        n_samples: int = 35,
        sigma: float = 2.0,
        perturb: str = "mask",
        seed: int | None = 0,
        **kwargs: Any,
    ):
        super().__init__(classifier, target_layers, **kwargs)
        self.n_samples = check_int(n_samples, "n_samples", low=1)
        self.sigma = check_number(sigma, "sigma", low=0.0)
        self.perturb = check_choice(perturb, "perturb", ("mask", "input"))
        self.seed = seed
        self._gen: torch.Generator | None = None

    def extra_repr(self) -> str:
        return super().extra_repr() + f", n_samples={self.n_samples}, sigma={self.sigma}, perturb={self.perturb!r}"

    def _layer_maps(self, x: torch.Tensor, targets: Targets) -> tuple[torch.Tensor, list[torch.Tensor]]:
        self._gen = torch.Generator(device="cpu")
        if self.seed is not None:
            self._gen.manual_seed(self.seed)
        else:
            self._gen.seed()
        try:
            return super()._layer_maps(x, targets)
        finally:
            self._gen = None

    def _pair_scores(
        self, xs: torch.Tensor, masks: torch.Tensor, idx: torch.Tensor | None, targets: Targets
    ) -> torch.Tensor:
        total = torch.zeros(xs.shape[0], dtype=xs.dtype, device=xs.device)
        shape = masks.shape if self.perturb == "mask" else xs.shape
        for _ in range(self.n_samples):
            eps = (torch.randn(shape, generator=self._gen) * self.sigma).to(device=xs.device, dtype=xs.dtype)
            inp = xs * (masks + eps) if self.perturb == "mask" else (xs + eps) * masks
            total += self._masked_scores(self._forward(inp), targets, idx).to(xs.dtype)
        return total / self.n_samples


class ISCAM(ScoreCAM):
    """IS-CAM, integrated Score-CAM (Naidu et al., 2020): scores averaged along a path of scaled masks.

    ``s_k = (1/N) Σ_{i=1..N} f(x ⊙ (i/N) H_k)``, then the channel weights as Score-CAM (option ``score``);
    default ``N = 10`` (survey Table 4).

    Args:
        classifier: the trained classifier.
        target_layers: see :class:`ScoreCAM`.
        n_samples: N (> 0).
        **kwargs: as :class:`ScoreCAM`.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        ...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> ISCAM(net, "1", n_samples=3)(torch.rand(1, 3, 8, 8)).cams.shape
        torch.Size([1, 1, 8, 8])
    """

    name = "iscam"

    def __init__(
        self, classifier: nn.Module, target_layers: LayerSpec = None, *, n_samples: int = 10, **kwargs: Any
    ):
        super().__init__(classifier, target_layers, **kwargs)
        self.n_samples = check_int(n_samples, "n_samples", low=1)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", n_samples={self.n_samples}"

    def _pair_scores(
        self, xs: torch.Tensor, masks: torch.Tensor, idx: torch.Tensor | None, targets: Targets
    ) -> torch.Tensor:
        total = torch.zeros(xs.shape[0], dtype=xs.dtype, device=xs.device)
        n = self.n_samples
        for i in range(1, n + 1):
            total += self._masked_scores(self._forward(xs * (masks * (i / n))), targets, idx).to(xs.dtype)
        return total / n

