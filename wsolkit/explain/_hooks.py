"""Hooks that cannot leak, target layers and classifier outputs: the machinery shared by the explainers and ``cam``.

Hooks are registered for the duration of one call only and removed in a ``finally`` block; the classifier's
train/eval flags are restored per module; parameters' ``requires_grad`` flags are never touched (gradients are taken
with :func:`torch.autograd.grad` to the hooked activations only).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn as nn

from wsolkit._checks import WSOLTypeError, WSOLValueError, close_matches
from wsolkit._modules import eval_mode, model_logits, unwrap

__all__ = ["LayerSpec", "resolve_target_layers", "model_logits", "unwrap_model"]

LayerSpec = None | str | nn.Module | Sequence[str | nn.Module]


unwrap_model = unwrap  # the one unwrapping of wsolkit._modules


def _first_tensor(out: Any) -> torch.Tensor | None:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    return None


def _replace_first(out: Any, new: torch.Tensor) -> Any:
    if isinstance(out, torch.Tensor):
        return new
    if hasattr(out, "_fields"):  # NamedTuple
        return type(out)(new, *out[1:])
    return type(out)([new, *out[1:]])


def _auto_layer_name(model: nn.Module) -> str | None:
    """The module named by the last entry of timm's ``feature_info`` (None when the model has none)."""
    info = getattr(model, "feature_info", None)
    if info is None:
        return None
    entries = info.get_dicts() if hasattr(info, "get_dicts") else info
    if isinstance(entries, (list, tuple)) and entries and isinstance(entries[-1], dict):
        name = entries[-1].get("module")
        if isinstance(name, str) and name:
            try:
                model.get_submodule(name)
                return name
            except AttributeError:
                return None
    return None


def _probe_last_spatial(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """One forward of ``x[:1]``: the last module (in execution order) whose output is 4-D with h·w > 1."""
    last: list[nn.Module] = []
    handles = []

    def hook(mod: nn.Module, _inp: Any, out: Any) -> None:
        t = _first_tensor(out)
        if t is not None and t.ndim == 4 and t.shape[-1] * t.shape[-2] > 1:
            last.append(mod)

    try:
        for m in model.modules():
            if m is not model:
                handles.append(m.register_forward_hook(hook))
        was = model.training
        model.eval()
        try:
            with torch.no_grad():
                model(x[:1])
        finally:
            model.train(was)
    finally:
        for h in handles:
            h.remove()
    if not last:
        raise WSOLValueError(
            f"no module of {type(model).__name__} produces a 4-D spatial output for an input of shape "
            f"{tuple(x.shape)}; pass `target_layers` (and `reshape` for token outputs) explicitly"
        )
    return last[-1]


def _hf_blocks(inner: nn.Module) -> nn.ModuleList | None:
    """The transformer blocks of a Hugging Face ViT / DeiT (``layers`` in transformers 5, ``encoder.layer`` before)."""
    base = getattr(inner, "base_model", None)
    for owner, attr in ((base, "layers"), (getattr(base, "encoder", None), "layer")):
        blocks = getattr(owner, attr, None) if owner is not None else None
        if isinstance(blocks, nn.ModuleList) and len(blocks) > 0:
            return blocks
    return None


def _hf_transformer_layer(inner: nn.Module) -> nn.Module | None:
    """The layer to explain of a Hugging Face ViT / DeiT (the last block's ``layernorm_before``: only the class
    token reaches the head after the last block, as for timm's ``blocks[-1].norm1``) or Swin (the last stage)."""
    if not hasattr(inner, "config"):
        return None
    base = getattr(inner, "base_model", None)
    swin_stages = getattr(getattr(base, "encoder", None), "layers", None)
    if getattr(inner.config, "model_type", "") in ("swin", "swinv2", "donut-swin") and \
            isinstance(swin_stages, nn.ModuleList) and len(swin_stages) > 0:
        return swin_stages[-1]
    blocks = _hf_blocks(inner)
    if blocks is not None and isinstance(getattr(blocks[-1], "layernorm_before", None), nn.Module):
        return blocks[-1].layernorm_before
    return None


def hf_tokens_to_grid(a: torch.Tensor, x: torch.Tensor, inner: nn.Module) -> torch.Tensor | None:
    """``(B, N, D)`` tokens of a Hugging Face vision transformer as ``(B, D, h, w)``; ``None`` if not one.

    Prefix tokens (class, distillation) are the leading ``N - h·w`` tokens, ``h·w`` the patch grid of ``x`` (ViT /
    DeiT, ``config.patch_size``); without prefix tokens the grid keeps the aspect ratio of ``x`` (Swin stages).
    """
    config = getattr(inner, "config", None)
    if a.ndim != 3 or config is None or getattr(config, "patch_size", None) is None:
        return None
    n, (hh, ww) = a.shape[1], x.shape[-2:]
    ps = config.patch_size
    ph, pw = (ps, ps) if isinstance(ps, int) else tuple(ps)
    gh, gw = hh // ph, ww // pw
    if not (0 <= n - gh * gw <= 2):  # a stage after patch merging: the grid of n tokens with the input's aspect
        f = (hh * ww / n) ** 0.5
        gh, gw = round(hh / f), round(ww / f)
    if gh * gw > n or gh * gw == 0 or n - gh * gw > 2:
        return None
    return a[:, n - gh * gw :].reshape(a.shape[0], gh, gw, a.shape[-1]).permute(0, 3, 1, 2)


def resolve_target_layers(model: nn.Module, target_layers: LayerSpec, x: torch.Tensor | None = None) -> list[nn.Module]:
    """Turn a layer specification into a list of modules of ``model``.

    Args:
        model: the classifier (possibly wrapped in ``DataParallel``/``DDP``).
        target_layers: ``None`` (automatic: a :class:`~wsolkit.models.WSOLModel`'s backbone, timm's last
            ``feature_info`` module (class-token ViTs: ``blocks[-1].norm1``), a Hugging Face CNN's last encoder
            stage, a Hugging Face ViT / DeiT's last ``layernorm_before`` or Swin's last stage, else the last module
            with a 4-D
            spatial output found with one forward of ``x[:1]``), a module, a dotted name, or a sequence of those.
        x: an input batch, needed only for the automatic probe.

    Returns:
        The modules, in the order given.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        ...                           torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> resolve_target_layers(net, "0")
        [Conv2d(3, 4, kernel_size=(3, 3), stride=(1, 1))]
    """
    inner = unwrap_model(model)
    if target_layers is None:
        backbone = getattr(inner, "backbone", None)
        if isinstance(backbone, nn.Module) and hasattr(inner, "head"):
            return [backbone]
        blocks = getattr(inner, "blocks", None)
        if (
            hasattr(inner, "num_prefix_tokens")
            and getattr(inner, "global_pool", "token") == "token"
            and isinstance(blocks, nn.Sequential)
            and len(blocks) > 0
            and isinstance(getattr(blocks[-1], "norm1", None), nn.Module)
        ):
            # class-token ViT: after the last block only the class token reaches the head, so the patch tokens of
            # the last block output have zero gradient; explain the input of the last block's attention instead.
            return [blocks[-1].norm1]
        stages = getattr(getattr(getattr(inner, "base_model", None), "encoder", None), "stages", None)
        if isinstance(stages, nn.ModuleList) and len(stages) > 0 and hasattr(inner, "config"):
            return [stages[-1]]  # Hugging Face CNNs (ResNet, ConvNext, RegNet...): the last stage's output
        hf = _hf_transformer_layer(inner)
        if hf is not None:
            return [hf]
        name = _auto_layer_name(inner)
        if name is not None:
            return [inner.get_submodule(name)]
        if x is None:
            raise WSOLValueError("automatic target layer selection needs an input batch `x`")
        return [_probe_last_spatial(inner, x)]
    specs = [target_layers] if isinstance(target_layers, (str, nn.Module)) else target_layers
    if not isinstance(specs, (list, tuple)) or len(specs) == 0:
        raise WSOLTypeError(
            f"`target_layers` must be None, a module, a name or a non-empty sequence of those, got {target_layers!r}"
        )
    owned = {id(m) for m in model.modules()}
    names = [n for n, _ in inner.named_modules() if n]
    out: list[nn.Module] = []
    for spec in specs:
        if isinstance(spec, nn.Module):
            if id(spec) not in owned:
                raise WSOLValueError(
                    f"`target_layers`: module {type(spec).__name__} is not a submodule of {type(inner).__name__}"
                )
            out.append(spec)
        elif isinstance(spec, str):
            key = spec[len("module.") :] if spec.startswith("module.") and inner is not model else spec
            try:
                out.append(inner.get_submodule(key))
            except AttributeError:
                hint = close_matches(key, names)
                raise WSOLValueError(
                    f"`target_layers`: no module named {spec!r} in {type(inner).__name__}"
                    + (f"; did you mean {hint}?" if hint else "")
                ) from None
        else:
            raise WSOLTypeError(f"`target_layers` entries must be modules or names, got {type(spec).__name__}")
    return out


class _Capture:
    """Forward hooks on the target layers that record their outputs during one forward.

    With ``grad=True`` the recorded activation ``A`` is part of the autograd graph (the output itself when it
    already requires grad, else a detached leaf that requires grad), and the hook returns ``A.clone()`` so that
    in-place operations after the layer (``ReLU(inplace=True)``) cannot modify or invalidate ``A``. With
    ``switch_grad_on=True`` the caller runs the forward under ``torch.no_grad()`` and the first target layer turns
    gradient recording on: nothing before the layer is recorded (less memory and time).
    """

    def __init__(self, layers: Sequence[nn.Module], grad: bool, switch_grad_on: bool = False):
        self.layers = list(layers)
        self.grad = grad
        self.switch_grad_on = switch_grad_on
        self.acts: list[torch.Tensor | None] = [None] * len(self.layers)
        self.active = True
        self._handles: list[Any] = []

    def _hook(self, index: int) -> Callable[..., Any]:
        def hook(_mod: nn.Module, _inp: Any, out: Any) -> Any:
            if not self.active:
                return None
            t = _first_tensor(out)
            if t is None:
                raise WSOLValueError(
                    f"target layer {type(self.layers[index]).__name__} must output a tensor, got {type(out).__name__}"
                )
            if not self.grad:
                # a copy: in-place operations after the layer (ReLU(inplace=True)) must not change A
                self.acts[index] = t.detach().clone()
                return None
            if self.switch_grad_on:
                # the forward runs without recording a graph up to the first target layer; from here on it records
                # (the caller's no_grad context restores the previous mode when the forward ends)
                torch.set_grad_enabled(True)
            a = t if t.requires_grad else t.detach().requires_grad_(True)
            self.acts[index] = a
            return _replace_first(out, a.clone())

        return hook

    def __enter__(self) -> _Capture:
        try:
            for i, layer in enumerate(self.layers):
                self._handles.append(layer.register_forward_hook(self._hook(i)))
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def reset(self) -> None:
        self.acts = [None] * len(self.layers)

    def collected(self) -> list[torch.Tensor]:
        for layer, a in zip(self.layers, self.acts):
            if a is None:
                raise WSOLValueError(f"target layer {type(layer).__name__} was not called during the forward pass")
        return [a for a in self.acts if a is not None]


def _eval_mode(model: nn.Module, enabled: bool) -> contextlib.AbstractContextManager:
    """Every sub-module in eval mode, each flag restored afterwards (:func:`wsolkit._modules.eval_mode`)."""
    return eval_mode(model, enabled)
