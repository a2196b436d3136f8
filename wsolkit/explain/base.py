"""Shared machinery of the top-down explainers: target layers, hooks that cannot leak, targets, post-processing.

An explainer wraps a trained classifier (timm, torchvision or any ``nn.Module`` returning logits, a tuple whose
first element is the logits, or a :class:`~wsolkit.output.WSOLOutput`) and produces one map per image for a target
class (survey Sec. 2.3, "top-down" methods). Hooks are registered for the duration of one call only and removed in a
``finally`` block; the model's train/eval mode is restored afterwards, and parameters' ``requires_grad`` flags are
never touched (gradients are taken with :func:`torch.autograd.grad` to the hooked activations only).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from wsolkit import cams as cam_ops
from wsolkit._checks import (
    ShapeError,
    WSOLTypeError,
    WSOLValueError,
    check_floating,
    check_integer,
    check_ndim,
    close_matches,
)

__all__ = ["BaseCAM", "Targets", "LayerSpec", "resolve_target_layers", "model_logits", "unwrap_model"]

Targets = None | int | torch.Tensor | Callable[[torch.Tensor], torch.Tensor]
LayerSpec = None | str | nn.Module | Sequence[str | nn.Module]


def unwrap_model(model: nn.Module) -> nn.Module:
    """The wrapped module of ``DataParallel`` / ``DistributedDataParallel`` (or the model itself)."""
    while isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        model = model.module
    return model


def model_logits(output: Any) -> torch.Tensor:
    """The logits of a model output: the tensor itself, or the first element of a tuple / ``WSOLOutput``."""
    if isinstance(output, (tuple, list)) and len(output) > 0:
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise WSOLTypeError(
            f"the model must return logits, a tuple whose first element is the logits, or a WSOLOutput; "
            f"got {type(output).__name__}"
        )
    if output.ndim != 2:
        raise ShapeError(f"the model's logits must have shape (B, C), got {tuple(output.shape)}")
    return output


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


def resolve_target_layers(model: nn.Module, target_layers: LayerSpec, x: torch.Tensor | None = None) -> list[nn.Module]:
    """Turn a layer specification into a list of modules of ``model``.

    Args:
        model: the classifier (possibly wrapped in ``DataParallel``/``DDP``).
        target_layers: ``None`` (automatic: a :class:`~wsolkit.models.WSOLModel`'s backbone, timm's last
            ``feature_info`` module (class-token ViTs: ``blocks[-1].norm1``), else the last module with a 4-D
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


@contextlib.contextmanager
def _eval_mode(model: nn.Module, enabled: bool) -> Iterator[None]:
    """Put every submodule in eval mode and restore each module's own flag afterwards."""
    if not enabled:
        yield
        return
    flags = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        yield
    finally:
        for m, f in flags:
            m.training = f


class BaseCAM:
    """Base class of the top-down explainers (use a subclass, e.g. :class:`~wsolkit.explain.GradCAM`).

    Subclasses implement ``_layer_maps(x, targets) -> list of (B, h, w)`` raw maps, one per target layer.

    Args:
        model: the classifier.
        target_layers: layer(s) to explain; see :func:`resolve_target_layers`. Several layers are fused by the mean
            of their raw maps (LayerCAM overrides the fusion).
        reshape: ``reshape(activation) -> (B, K, h, w)`` for layers with non-spatial outputs. ``None`` handles timm
            ViT/DeiT tokens (prefix tokens dropped, reshaped to the patch grid) and Swin's NHWC outputs.
        upsample: resize maps to the input size (bilinear, ``align_corners=False``).
        normalize: per-image min-max to ``[0, 1]`` (a constant map becomes zeros).
        eval_mode: run the model in eval mode during the call (restored afterwards).
    """

    name = "base"
    needs_grad = True

    def __init__(
        self,
        model: nn.Module,
        target_layers: LayerSpec = None,
        *,
        reshape: Callable[[torch.Tensor], torch.Tensor] | None = None,
        upsample: bool = True,
        normalize: bool = True,
        eval_mode: bool = True,
    ):
        if not isinstance(model, nn.Module):
            raise WSOLTypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
        if reshape is not None and not callable(reshape):
            raise WSOLTypeError(f"`reshape` must be callable, got {type(reshape).__name__}")
        self.model = model
        self.target_layers = target_layers
        self.reshape = reshape
        self.upsample = bool(upsample)
        self.normalize = bool(normalize)
        self.eval_mode = bool(eval_mode)
        self._layers: list[nn.Module] | None = None
        if target_layers is not None:
            self._layers = resolve_target_layers(model, target_layers)

    # ----------------------------------------------------------------- context manager
    def __enter__(self) -> BaseCAM:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Release references to resolved layers (hooks never outlive a call)."""
        self._layers = None if self.target_layers is None else self._layers

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    def extra_repr(self) -> str:
        return f"model={type(self.model).__name__}, upsample={self.upsample}, normalize={self.normalize}"

    # ----------------------------------------------------------------- helpers for subclasses
    @property
    def layers(self) -> list[nn.Module]:
        if self._layers is None:
            raise WSOLValueError("target layers are resolved on the first call")
        return self._layers

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return model_logits(self.model(x))

    def _target_indices(self, logits: torch.Tensor, targets: Targets) -> torch.Tensor | None:
        """``(B,)`` class indices, or None for a callable target."""
        b, c = logits.shape
        if callable(targets) and not isinstance(targets, torch.Tensor):
            return None
        if targets is None:
            return logits.detach().argmax(1)
        if isinstance(targets, bool):
            raise WSOLTypeError("`targets` must be None, an int, a (B,) integer tensor or a callable, got bool")
        if isinstance(targets, int):
            if not 0 <= targets < c:
                raise WSOLValueError(f"`targets` must be a class index in [0, {c - 1}], got {targets}")
            return torch.full((b,), targets, dtype=torch.long, device=logits.device)
        if isinstance(targets, torch.Tensor):
            check_integer(targets, "targets")
            t = targets.reshape(-1) if targets.ndim == 0 else targets
            if t.ndim == 1 and t.numel() == 1 and b != 1:
                t = t.expand(b)
            if t.ndim != 1 or t.shape[0] != b:
                raise ShapeError(f"`targets` must have shape ({b},) for a batch of {b}, got {tuple(targets.shape)}")
            if b and (int(t.min()) < 0 or int(t.max()) >= c):
                raise WSOLValueError(
                    f"`targets` must be class indices in [0, {c - 1}], got values in [{int(t.min())}, {int(t.max())}]"
                )
            return t.to(device=logits.device, dtype=torch.long)
        raise WSOLTypeError(
            f"`targets` must be None, an int, a (B,) integer tensor or a callable, got {type(targets).__name__}"
        )

    def _scores(self, logits: torch.Tensor, targets: Targets, idx: torch.Tensor | None) -> torch.Tensor:
        """The ``(B,)`` target scores ``s_c`` (logits of the target class, or ``targets(logits)``)."""
        if idx is None:
            s = targets(logits)  # type: ignore[operator]
            if not isinstance(s, torch.Tensor) or s.shape != (logits.shape[0],):
                got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
                raise ShapeError(f"callable `targets` must return a ({logits.shape[0]},) tensor of scores, got {got}")
            return s
        return logits.gather(1, idx[:, None])[:, 0]

    def _spatial(self, a: torch.Tensor, x: torch.Tensor, layer: nn.Module) -> torch.Tensor:
        """Activation as ``(B, K, h, w)`` (user reshape, timm ViT tokens, Swin NHWC)."""
        inner = unwrap_model(self.model)
        if self.reshape is not None:
            out = self.reshape(a)
        elif a.ndim == 3 and hasattr(inner, "patch_embed") and hasattr(inner, "num_prefix_tokens"):
            n_prefix = int(inner.num_prefix_tokens)
            tokens = a[:, n_prefix:]
            n = tokens.shape[1]
            ps = getattr(inner.patch_embed, "patch_size", None)
            gh, gw = (x.shape[-2] // ps[0], x.shape[-1] // ps[1]) if ps is not None else (0, 0)
            if gh * gw != n:
                side = int(round(n**0.5))
                gh, gw = side, n // max(side, 1)
            if gh * gw != n:
                raise ShapeError(
                    f"cannot reshape {n} tokens of target layer {type(layer).__name__} to a grid; pass `reshape`"
                )
            out = tokens.reshape(a.shape[0], gh, gw, a.shape[-1]).permute(0, 3, 1, 2)
        elif a.ndim == 4 and getattr(inner, "output_fmt", "NCHW") == "NHWC":
            out = a.permute(0, 3, 1, 2)
        else:
            out = a
        if not isinstance(out, torch.Tensor) or out.ndim != 4:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ShapeError(
                f"target layer {type(layer).__name__} must have a spatial output (B, K, h, w), got {got}; "
                "choose another layer or pass `reshape`"
            )
        return out

    def _fuse(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """Mean of the layers' raw maps at the largest map resolution."""
        if len(maps) == 1:
            return maps[0]
        size = max((m.shape[-2:] for m in maps), key=lambda s: s[0] * s[1])
        return torch.stack([cam_ops.upsample(m, tuple(size)) for m in maps]).mean(0)

    def _layer_maps(self, x: torch.Tensor, targets: Targets) -> list[torch.Tensor]:
        raise NotImplementedError

    # ----------------------------------------------------------------- call
    def __call__(self, x: torch.Tensor, targets: Targets = None) -> torch.Tensor:
        """Explain ``x`` for ``targets``.

        Args:
            x: input images.
            targets: ``None`` (predicted class), an int (same class for all), a ``(B,)`` integer tensor, or a
                callable ``f(logits) -> (B,)`` scores.

        Returns:
            Maps on ``x``'s device: ``(B, H, W)`` in ``[0, 1]`` by default, ``(B, h, w)`` with ``upsample=False``,
            raw (non-negative, unnormalised) with ``normalize=False``.
        """
        check_ndim(x, "x", 4, "(B, C, H, W)")
        check_floating(x, "x")
        if self._layers is None:
            self._layers = resolve_target_layers(self.model, self.target_layers, x)
        with _eval_mode(self.model, self.eval_mode):
            maps = self._layer_maps(x, targets)
        out = self._fuse(maps)
        if self.upsample:
            out = cam_ops.upsample(out, tuple(x.shape[-2:]))
        if self.normalize:
            out = cam_ops.normalize(out)
        return out


def _masked_softmax(scores: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim restricted to ``valid`` entries (others get exactly 0; all invalid → all 0)."""
    neg = torch.finfo(scores.dtype).min
    z = torch.where(valid, scores, torch.full_like(scores, neg))
    w = torch.softmax(z, dim=-1)
    return torch.where(valid, w, torch.zeros_like(w))


def _resize_like(m: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return F.interpolate(m, size=tuple(size), mode="bilinear", align_corners=False)
