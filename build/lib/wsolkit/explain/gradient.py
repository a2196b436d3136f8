"""Gradient-based top-down explainers: Grad-CAM, Grad-CAM++, Smooth-Grad-CAM++, XGrad-CAM, LayerCAM.

All share one pattern: a forward pass records the target layer's activation ``A`` (``(B, K, h, w)``), the target
score ``s_c`` (the logit of the target class) is differentiated with :func:`torch.autograd.grad` with respect to
``A`` only (never into the classifier's parameters), and the map is ``ReLU(Σ_k w_k ⊙ A_k)`` with method-specific
weights. No graph is recorded before the target layer, so they also run under :func:`torch.no_grad` (gradient
recording is switched on for the hooked activations only and the grad mode restored); under
:func:`torch.inference_mode` they raise :class:`~wsolkit.explain.InferenceModeError`. With ``create_graph=True``
the maps stay differentiable (usable inside a training loss).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from wsolkit._checks import check_int, check_number
from wsolkit.explain._hooks import LayerSpec, _Capture
from wsolkit.explain.base import BaseCAM, Targets

__all__ = [
    "gradcam_map",
    "gradcampp_map",
    "xgradcam_map",
    "layercam_map",
    "GradCAM",
    "GradCAMPlusPlus",
    "SmoothGradCAMPlusPlus",
    "XGradCAM",
    "LayerCAM",
]


def _safe_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` where ``den != 0``, exactly 0 elsewhere (no epsilon)."""
    nz = den != 0
    return torch.where(nz, num / torch.where(nz, den, torch.ones_like(den)), torch.zeros_like(num))


def gradcam_map(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """Grad-CAM (survey eqs. 10-11): ``w_k = mean_ij ∂s/∂A_kij``, map ``ReLU(Σ_k w_k A_k)``.

    Shape:
        - acts, grads: :math:`(B, K, h, w)`
        - output: :math:`(B, h, w)`

    Example:
        >>> a = torch.arange(4.0).view(1, 1, 2, 2)
        >>> gradcam_map(a, torch.ones_like(a))
        tensor([[[0., 1.],
                 [2., 3.]]])
    """
    w = grads.mean(dim=(2, 3), keepdim=True)
    return torch.relu((w * acts).sum(1))


def _gradcampp_weights(acts: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor, g3: torch.Tensor) -> torch.Tensor:
    # eq. 19 of Chattopadhyay et al. (exponential score): α = g² / (2 g² + Σ_ab A_ab g³), α = 0 where 0/0.
    den = 2 * g2 + acts.sum(dim=(2, 3), keepdim=True) * g3
    alpha = _safe_div(g2, den)
    return (alpha * torch.relu(g1)).sum(dim=(2, 3), keepdim=True)


def gradcampp_map(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++ (Chattopadhyay et al., eq. 19): ``w_k = Σ_ij α_kij ReLU(g_kij)``, map ``ReLU(Σ_k w_k A_k)``.

    ``α = g² / (2 g² + Σ_ab A_ab g³)`` with ``g = ∂s/∂A`` (the exponential-score assumption of the paper; the
    positive factor ``exp(s)`` of ``∂exp(s)/∂A`` is left out, it does not change the normalised map). Where the
    denominator is 0, ``α = 0`` exactly (no epsilon).

    Shape:
        - acts, grads: :math:`(B, K, h, w)`
        - output: :math:`(B, h, w)`

    Example:
        >>> a = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
        >>> gradcampp_map(a, torch.ones_like(a))  # α = 1 / (2 + 2) everywhere, w = 4 * 0.25 = 1
        tensor([[[1., 0.],
                 [0., 1.]]])
    """
    w = _gradcampp_weights(acts, grads, grads.pow(2), grads.pow(3))
    return torch.relu((w * acts).sum(1))


def xgradcam_map(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """XGrad-CAM (Fu et al., 2020): ``w_k = Σ_ij A_kij g_kij / Σ_ij A_kij`` (0 when ``Σ A_k = 0``).

    Shape:
        - acts, grads: :math:`(B, K, h, w)`
        - output: :math:`(B, h, w)`

    Example:
        >>> a = torch.tensor([[[[1.0, 3.0], [0.0, 0.0]]]])
        >>> xgradcam_map(a, torch.tensor([[[[2.0, 2.0], [5.0, 5.0]]]]))
        tensor([[[2., 6.],
                 [0., 0.]]])
    """
    num = (acts * grads).sum(dim=(2, 3), keepdim=True)
    w = _safe_div(num, acts.sum(dim=(2, 3), keepdim=True))
    return torch.relu((w * acts).sum(1))


def layercam_map(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """LayerCAM (Jiang et al., 2021): per-location weights ``ReLU(g)``, map ``ReLU(Σ_k ReLU(g_k) ⊙ A_k)``.

    Shape:
        - acts, grads: :math:`(B, K, h, w)`
        - output: :math:`(B, h, w)`

    Example:
        >>> a = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
        >>> layercam_map(a, torch.tensor([[[[1.0, -1.0], [0.5, 0.0]]]]))
        tensor([[[1.0000, 0.0000],
                 [1.5000, 0.0000]]])
    """
    return torch.relu((torch.relu(grads) * acts).sum(1))


class _GradientCAM(BaseCAM):
    """Common driver of the gradient family (see module docstring)."""

    def __init__(
        self,
        classifier: nn.Module,
        target_layers: LayerSpec = None,
        *,
        create_graph: bool = False,
        **kwargs: Any,
    ):
        super().__init__(classifier, target_layers, **kwargs)
        self.create_graph = bool(create_graph)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", create_graph={self.create_graph}"

    def _combine(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _acts_and_grads(
        self, x: torch.Tensor, targets: Targets, idx: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor], torch.Tensor | None]:
        """Forward + ``autograd.grad`` to the hooked activations: logits, spatial acts, grads, target indices."""
        layers = self.layers
        fast = not self.create_graph  # no graph before the first target layer unless the maps must stay differentiable
        with _Capture(layers, grad=True, switch_grad_on=fast) as cap:
            with torch.no_grad() if fast else torch.enable_grad():
                logits = self._forward(x)
            acts = cap.collected()
        with torch.enable_grad():
            if idx is None:
                idx = self._target_indices(logits, targets)
            scores = self._scores(logits, targets, idx)
            grads = torch.autograd.grad(
                scores.sum(), acts, create_graph=self.create_graph, allow_unused=True
            )
        grads = [torch.zeros_like(a) if g is None else g for a, g in zip(acts, grads)]
        if not self.create_graph:
            acts = [a.detach() for a in acts]
            grads = [g.detach() for g in grads]
            logits = logits.detach()
        sa = [self._spatial(a, x, m) for a, m in zip(acts, layers)]
        sg = [self._spatial(g, x, m) for g, m in zip(grads, layers)]
        return logits, sa, sg, idx

    def _layer_maps(self, x: torch.Tensor, targets: Targets) -> tuple[torch.Tensor, list[torch.Tensor]]:
        logits, acts, grads, _ = self._acts_and_grads(x, targets)
        with torch.set_grad_enabled(self.create_graph):
            return logits, [self._combine(a, g) for a, g in zip(acts, grads)]


class GradCAM(_GradientCAM):
    """Grad-CAM (Selvaraju et al., 2017; survey eqs. 10-11).

    Args:
        classifier: the trained classifier.
        target_layers: see :func:`~wsolkit.explain.base.resolve_target_layers`.
        create_graph: keep the graph so that the maps are differentiable (for use in a loss).
        **kwargs: ``num_classes``, ``reshape``, ``eval_mode`` of :class:`~wsolkit.explain.BaseCAM`.

    Shape:
        - x: :math:`(B, 3, H, W)`
        - logits: :math:`(B, K)`; cams: :math:`(B, 1, h, w)` at the target layer's resolution

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        ...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> out = GradCAM(net, target_layers="1")(torch.rand(2, 3, 16, 16), labels=1)
        >>> out.logits.shape, out.cams.shape, bool(out.cams.min() >= 0)
        (torch.Size([2, 2]), torch.Size([2, 1, 16, 16]), True)
    """

    name = "gradcam"

    def _combine(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return gradcam_map(acts, grads)


class GradCAMPlusPlus(_GradientCAM):
    """Grad-CAM++ (Chattopadhyay et al., 2018), eq. 19 with exact zero-safe division; see :func:`gradcampp_map`.

    Arguments, shapes and usage as :class:`GradCAM`.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        ...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> GradCAMPlusPlus(net, "1")(torch.rand(1, 3, 8, 8)).cams.shape
        torch.Size([1, 1, 8, 8])
    """

    name = "gradcam++"

    def _combine(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return gradcampp_map(acts, grads)


class XGradCAM(_GradientCAM):
    """XGrad-CAM (Fu et al., 2020); see :func:`xgradcam_map`. Arguments, shapes and usage as :class:`GradCAM`.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        ...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> XGradCAM(net, "1")(torch.rand(1, 3, 8, 8)).cams.shape
        torch.Size([1, 1, 8, 8])
    """

    name = "xgradcam"

    def _combine(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return xgradcam_map(acts, grads)


class LayerCAM(_GradientCAM):
    """LayerCAM (Jiang et al., 2021); see :func:`layercam_map`.

    With several target layers, each layer's map is scaled as in the paper, ``tanh(γ · M / max M)`` (per image,
    ``γ = gamma``; a map whose max is 0 stays 0), resized to the largest layer resolution and fused by the
    element-wise maximum. With one layer the map is returned unscaled.

    Args:
        classifier: the trained classifier.
        target_layers: one or several layers (shallow and deep).
        gamma: the tanh scaling factor γ of the multi-layer fusion.
        **kwargs: as :class:`GradCAM`.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        ...                           torch.nn.Conv2d(4, 4, 3, padding=1), torch.nn.ReLU(),
        ...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> LayerCAM(net, ["1", "4"])(torch.rand(1, 3, 8, 8)).cams.shape
        torch.Size([1, 1, 8, 8])
    """

    name = "layercam"

    def __init__(
        self, classifier: nn.Module, target_layers: LayerSpec = None, *, gamma: float = 2.0, **kwargs: Any
    ):
        super().__init__(classifier, target_layers, **kwargs)
        self.gamma = check_number(gamma, "gamma", low=0.0, low_inclusive=False)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", gamma={self.gamma}"

    def _combine(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return layercam_map(acts, grads)

    def _fuse(self, maps: list[torch.Tensor]) -> torch.Tensor:
        if len(maps) == 1:
            return maps[0]
        size = max((m.shape[-2:] for m in maps), key=lambda s: s[0] * s[1])
        scaled = []
        for m in maps:
            mx = m.flatten(1).amax(1).view(-1, 1, 1)
            z = torch.where(mx > 0, m / torch.where(mx > 0, mx, torch.ones_like(mx)), torch.zeros_like(m))
            s = torch.tanh(self.gamma * z)
            scaled.append(torch.nn.functional.interpolate(s[:, None], size=tuple(size), mode="bilinear",
                                                          align_corners=False)[:, 0])
        return torch.stack(scaled).amax(0)


class SmoothGradCAMPlusPlus(_GradientCAM):
    """Smooth-Grad-CAM++ (Omeiza et al., 2019): Grad-CAM++ with gradient powers averaged over noisy inputs.

    ``n_samples`` copies ``x + ε``, ``ε ~ N(0, sigma²)``, give gradients ``g⁽ⁿ⁾`` at the target layer; the
    Grad-CAM++ quantities use their averages: ``α = mean(g²) / (2 mean(g²) + Σ_ab A_ab mean(g³))`` and
    ``w_k = Σ_ij α ReLU(mean(g))``, with ``A`` the activation of the clean input and the target class taken on the
    clean input (``labels=None`` → its prediction).

    Args:
        classifier: the trained classifier.
        target_layers: see :class:`GradCAM`.
        n_samples: number of noisy copies (> 0).
        sigma: noise standard deviation in input units (>= 0).
        seed: seed of the noise generator (``None``: torch's global generator).
        **kwargs: as :class:`GradCAM`.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        ...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> SmoothGradCAMPlusPlus(net, "1", n_samples=4, sigma=0.1)(torch.rand(2, 3, 8, 8)).cams.shape
        torch.Size([2, 1, 8, 8])
    """

    name = "smoothgradcam++"

    def __init__(
        self,
        classifier: nn.Module,
        target_layers: LayerSpec = None,
        *,
        n_samples: int = 8,
        sigma: float = 0.3,
        seed: int | None = 0,
        **kwargs: Any,
    ):
        super().__init__(classifier, target_layers, **kwargs)
        self.n_samples = check_int(n_samples, "n_samples", low=1)
        self.sigma = check_number(sigma, "sigma", low=0.0)
        self.seed = seed

    def extra_repr(self) -> str:
        return super().extra_repr() + f", n_samples={self.n_samples}, sigma={self.sigma}"

    def noise(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The ``n_samples`` noise tensors added to ``x`` (deterministic for a given ``seed``)."""
        g = torch.Generator(device="cpu")
        if self.seed is not None:
            g.manual_seed(self.seed)
        else:
            g.seed()
        return [
            (torch.randn(x.shape, generator=g, dtype=torch.float32) * self.sigma).to(device=x.device, dtype=x.dtype)
            for _ in range(self.n_samples)
        ]

    def _layer_maps(self, x: torch.Tensor, targets: Targets) -> tuple[torch.Tensor, list[torch.Tensor]]:
        layers = self.layers
        with torch.no_grad(), _Capture(layers, grad=False) as cap:
            logits = self._forward(x)
            acts = [self._spatial(a, x, m) for a, m in zip(cap.collected(), layers)]
        idx = self._target_indices(logits, targets)
        fixed: Targets = targets if idx is None else idx
        s1 = [torch.zeros_like(a) for a in acts]
        s2 = [torch.zeros_like(a) for a in acts]
        s3 = [torch.zeros_like(a) for a in acts]
        for eps in self.noise(x):
            _, _, grads, _ = self._acts_and_grads(x + eps, fixed, idx)
            for i, g in enumerate(grads):
                s1[i] = s1[i] + g
                s2[i] = s2[i] + g.pow(2)
                s3[i] = s3[i] + g.pow(3)
        n = float(self.n_samples)
        out = []
        for a, g1, g2, g3 in zip(acts, s1, s2, s3):
            w = _gradcampp_weights(a, g1 / n, g2 / n, g3 / n)
            out.append(torch.relu((w * a).sum(1)))
        return logits, out

