"""Ablation-CAM (Desai & Ramaswamy, 2020): gradient-free channel weights from switching channels off.

For the target score ``y = s_c(x)`` and ``y_k``, the score with channel ``k`` of the target layer set to zero, the
weight is the relative drop ``w_k = (y - y_k) / y`` (0 when ``y = 0``, exactly), and the map is
``ReLU(Σ_k w_k A_k)``. Ablated forwards are batched (``batch_size`` per pass) under :func:`torch.inference_mode`;
a channel that is already all zero cannot change the score, so its weight is 0 without a forward pass.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from wsolkit._checks import check_int
from wsolkit.explain._hooks import LayerSpec, _Capture, _first_tensor, _replace_first, unwrap_model
from wsolkit.explain.base import BaseCAM, Targets

__all__ = ["AblationCAM"]


class AblationCAM(BaseCAM):
    """Ablation-CAM (Desai & Ramaswamy, 2020).

    Channels are switched off in the layer's own output layout: dimension 1 for ``(B, K, h, w)`` outputs, the last
    dimension for token ``(B, N, K)`` or NHWC ``(B, h, w, K)`` outputs. With several target layers each layer is
    ablated on its own and the maps are averaged.

    Args:
        classifier: the trained classifier.
        target_layers: see :func:`~wsolkit.explain.resolve_target_layers`.
        batch_size: ablated copies per forward pass.
        **kwargs: ``num_classes``, ``reshape``, ``eval_mode`` of :class:`~wsolkit.explain.BaseCAM`.

    Shape:
        - x: :math:`(B, 3, H, W)`
        - logits: :math:`(B, K)`; cams: :math:`(B, 1, h, w)` at the target layer's resolution

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        ...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> AblationCAM(net, "1")(torch.rand(2, 3, 8, 8)).cams.shape
        torch.Size([2, 1, 8, 8])
    """

    name = "ablationcam"
    needs_grad = False

    def __init__(
        self, classifier: nn.Module, target_layers: LayerSpec = None, *, batch_size: int = 32, **kwargs: Any
    ):
        super().__init__(classifier, target_layers, **kwargs)
        self.batch_size = check_int(batch_size, "batch_size", low=1)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", batch_size={self.batch_size}"

    def _channel_dim(self, raw: torch.Tensor) -> int:
        inner = unwrap_model(self.classifier)
        if raw.ndim == 4 and self.reshape is None and getattr(inner, "output_fmt", "NCHW") != "NHWC":
            return 1
        return 1 if (raw.ndim == 4 and self.reshape is not None) else raw.ndim - 1

    def _layer_maps(self, x: torch.Tensor, targets: Targets) -> tuple[torch.Tensor, list[torch.Tensor]]:
        layers = self.layers
        maps = []
        with torch.inference_mode():
            with _Capture(layers, grad=False) as cap:
                logits = self._forward(x)
                raws = cap.collected()
            idx = self._target_indices(logits, targets)
            y = self._scores(logits, targets, idx).to(x.dtype)
            for layer, raw in zip(layers, raws):
                a = self._spatial(raw, x, layer)
                b, k = a.shape[:2]
                cdim = self._channel_dim(raw)
                live = a.flatten(2).ne(0).any(2)  # (B, K); dead channels keep y_k = y
                b_idx, k_idx = live.nonzero(as_tuple=True)
                y_k = y[:, None].expand(b, k).clone()
                state: dict[str, torch.Tensor] = {}

                def hook(_m: nn.Module, _i: Any, out: Any, state: dict = state, cdim: int = cdim) -> Any:
                    t = _first_tensor(out)
                    keep = torch.ones(t.shape[0], t.shape[cdim], dtype=t.dtype, device=t.device)
                    keep[torch.arange(t.shape[0], device=t.device), state["k"]] = 0
                    shape = [t.shape[0]] + [1] * (t.ndim - 1)
                    shape[cdim] = t.shape[cdim]
                    return _replace_first(out, t * keep.view(shape))

                handle = layer.register_forward_hook(hook)
                try:
                    for s in range(0, b_idx.shape[0], self.batch_size):
                        sb, sk = b_idx[s : s + self.batch_size], k_idx[s : s + self.batch_size]
                        state["k"] = sk
                        out = self._forward(x[sb])
                        y_k[sb, sk] = self._scores(out, targets, idx[sb] if idx is not None else None).to(x.dtype)
                finally:
                    handle.remove()
                nz = y != 0
                w = torch.where(nz[:, None], (y[:, None] - y_k) / torch.where(nz, y, torch.ones_like(y))[:, None],
                                torch.zeros_like(y_k))
                maps.append(torch.relu((w.to(a.dtype)[:, :, None, None] * a).sum(1)))
        return logits.clone(), [m.clone() for m in maps]
