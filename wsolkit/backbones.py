"""Feature extractors by name: timm models, torchvision models (``"tv:<name>"``) and a small CNN.

Names follow the registry key rule of :mod:`wsolkit.registry` (case-insensitive; ``-``, ``_`` and spaces ignored,
so ``"ResNet-18"`` is ``"resnet18"``); :func:`list_backbones` takes an :mod:`fnmatch` pattern and an unknown name
raises :class:`~wsolkit.registry.UnknownNameError` with close matches. Local builders (``"smallcnn"``, and yours
through :func:`register_backbone`) live in a :class:`~wsolkit.registry.Registry`; timm and torchvision names are
looked up in those libraries.

Every backbone returned by :func:`create_backbone` maps images ``(B, 3, H, W)`` to features ``(B, K, h, w)`` and has
the attributes ``out_channels`` (K) and ``reduction`` (H / h). ``output_stride`` 8 or 16 keeps the deepest features
at a finer resolution: timm models that support it use dilation (ResNets: the survey's 28×28 maps at 224 px);
models built from stride-2 pooling modules (VGG) have their trailing pools removed; others (Inception-v3, whose
pooling is functional) are cut at the deepest feature level with that stride.
"""

from __future__ import annotations

import fnmatch
import functools
import warnings
from collections.abc import Callable

import torch
import torch.nn as nn

from wsolkit._checks import WSOLTypeError, WSOLValueError, check_int, close_matches
from wsolkit.registry import Registry, UnknownNameError, normalize_name

__all__ = ["Backbone", "SmallCNN", "create_backbone", "list_backbones", "register_backbone"]

_TV_PREFIX = "tv:"
#: local builders ``builder(pretrained, output_stride, **kwargs) -> Backbone``
_LOCAL: Registry[Callable[..., nn.Module]] = Registry("backbone")


class Backbone(nn.Module):
    """Wraps a module producing one feature map and records its channels and reduction.

    Args:
        body: module mapping ``(B, 3, H, W)`` to ``(B, K, h, w)`` (or to a list whose last item is that).
        out_channels: K.
        reduction: input size / feature size.
        name: the name the backbone was created from.

    Shape:
        - input: :math:`(B, 3, H, W)`
        - output: :math:`(B, K, H / r, W / r)`

    Example:
        >>> bb = Backbone(nn.Conv2d(3, 8, 3, stride=2, padding=1), out_channels=8, reduction=2)
        >>> bb(torch.zeros(1, 3, 16, 16)).shape
        torch.Size([1, 8, 8, 8])
    """

    def __init__(self, body: nn.Module, out_channels: int, reduction: int, name: str = "custom"):
        super().__init__()
        self.body = body
        self.out_channels = int(out_channels)
        self.reduction = int(reduction)
        self.name = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        if isinstance(out, (list, tuple)):
            out = out[-1]
        return out

    def extra_repr(self) -> str:
        return f"name={self.name!r}, out_channels={self.out_channels}, reduction={self.reduction}"


class SmallCNN(nn.Module):
    """A small VGG-like CNN (conv-BN-ReLU blocks) that trains in seconds on a CPU.

    Used by ``wsolkit demo`` and the tests; not a substitute for a pretrained backbone on real data.

    Args:
        width: channels of the first block (doubled after each pooling).
        depth: number of stride-2 poolings (the reduction is ``2 ** depth``).

    Shape:
        - input: :math:`(B, 3, H, W)`
        - output: :math:`(B, width \\cdot 2^{depth}, H / 2^{depth}, W / 2^{depth})`

    Example:
        >>> SmallCNN(width=8, depth=3)(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 64, 4, 4])
    """

    def __init__(self, width: int = 32, depth: int = 3):
        super().__init__()
        check_int(width, "width", low=1)
        check_int(depth, "depth", low=0)
        layers: list[nn.Module] = []
        c_in, c = 3, width
        for i in range(depth + 1):
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            layers += [nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            c_in = c
            if i < depth:
                layers.append(nn.MaxPool2d(2))
                c *= 2
        self.features = nn.Sequential(*layers)
        self.out_channels = c_in
        self.reduction = 2**depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def register_backbone(name: str, *, overwrite: bool = False) -> Callable[[Callable[..., nn.Module]], Callable]:
    """Decorator registering a local backbone builder ``builder(pretrained, output_stride, **kwargs)``.

    The builder returns a module mapping ``(B, 3, H, W)`` to ``(B, K, h, w)`` with integer ``out_channels`` and
    ``reduction`` attributes (e.g. a :class:`Backbone`). Local names take precedence over timm names.

    Example:
        >>> @register_backbone("tiny-conv", overwrite=True)
        ... def tiny_conv(pretrained=False, output_stride=32, **kwargs):
        ...     return Backbone(nn.Conv2d(3, 4, 3, stride=8, padding=1), out_channels=4, reduction=8, name="tinyconv")
        >>> create_backbone("tiny_conv").out_channels
        4
    """

    def deco(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _LOCAL.register(name, builder, overwrite=overwrite)
        return builder

    return deco


@register_backbone("smallcnn")
def _small_cnn(pretrained: bool = False, output_stride: int = 32, **kwargs) -> Backbone:
    if pretrained:
        warnings.warn("the 'smallcnn' backbone has no pretrained weights; `pretrained`=True is ignored", stacklevel=3)
    depth = kwargs.pop("depth", {8: 3, 16: 4, 32: 5}[output_stride])
    body = SmallCNN(depth=depth, **kwargs)
    return Backbone(body, body.out_channels, body.reduction, "smallcnn")


@functools.lru_cache(maxsize=1)
def _library_names() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Names of the timm models and of the ``tv:``-prefixed torchvision models."""
    import timm
    import torchvision

    return tuple(timm.list_models()), tuple(_TV_PREFIX + n for n in torchvision.models.list_models())


def _lookup(name: str, names: tuple[str, ...]) -> str:
    """The library name ``name`` stands for: itself, else the one name with the same registry key."""
    if name in names:
        return name
    key = normalize_name(name)
    same = [n for n in names if normalize_name(n) == key]
    if len(same) == 1:
        return same[0]
    if same:  # e.g. torchvision's regnet_x_16gf and regnet_x_1_6gf share a key
        raise UnknownNameError(f"backbone `name`={name!r} is ambiguous under the key rule; use one of {same}")
    raise _unknown(name, list(names))


def list_backbones(pattern: str = "*") -> list[str]:
    """Names accepted by :func:`create_backbone` matching ``pattern``, sorted alphabetically.

    The names are the local ones (``"smallcnn"``), every timm model and the torchvision models with the ``"tv:"``
    prefix. ``pattern`` is an :mod:`fnmatch` pattern, case-insensitive, matched against the name and against its
    registry key (so ``"resnet-18*"`` finds ``"resnet18"``).

    Example:
        >>> list_backbones("tv:resnet1*")
        ['tv:resnet101', 'tv:resnet152', 'tv:resnet18']
        >>> "resnet18" in list_backbones("ResNet-18*")
        True
        >>> list_backbones("small*")
        ['smallcnn']
    """
    if not isinstance(pattern, str):
        raise WSOLTypeError(f"`pattern` must be a string, got {type(pattern).__name__}")
    timm_names, tv_names = _library_names()
    names = set(_LOCAL.list()) | set(timm_names) | set(tv_names)
    pat = pattern.lower()
    key_pat = pat.replace("-", "").replace("_", "").replace(" ", "")
    return sorted(n for n in names if fnmatch.fnmatchcase(n.lower(), pat) or
                  fnmatch.fnmatchcase(normalize_name(n), key_pat))


def _unknown(name: str, choices: list[str]) -> UnknownNameError:
    hint = close_matches(name, choices)
    return UnknownNameError(
        f"unknown backbone `name`={name!r}" + (f"; did you mean one of {hint}?" if hint else "; see list_backbones()")
    )


def _measure_reduction(body: nn.Module, probe: int = 224) -> tuple[int, int]:
    """Channels and reduction of ``body`` from one forward pass at ``probe`` px (mode restored)."""
    was_training = body.training
    body.eval()
    try:
        with torch.no_grad():
            out = body(torch.zeros(1, 3, probe, probe))
    finally:
        body.train(was_training)
    if isinstance(out, (list, tuple)):
        out = out[-1]
    return int(out.shape[1]), max(int(round(probe / out.shape[-1])), 1)


def _strip_pools(model: nn.Module, count: int) -> int:
    """Replace the last ``count`` stride-2 pooling modules by identities; return how many were replaced."""
    pools = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d))]
    done = 0
    for name, _ in reversed(pools):
        if done == count:
            break
        parent = model
        *path, leaf = name.split(".")
        for p in path:
            parent = getattr(parent, p)
        setattr(parent, leaf, nn.Identity())
        done += 1
    return done


def _create_timm(name: str, pretrained: bool, output_stride: int, **kwargs) -> Backbone:
    import timm

    if not timm.is_model(name):
        name = _lookup(name, _library_names()[0])
    if output_stride != 32:
        try:
            model = timm.create_model(
                name, pretrained=pretrained, features_only=True, out_indices=(-1,), output_stride=output_stride,
                **kwargs,
            )
            if model.feature_info.reduction()[-1] == output_stride:
                return Backbone(model, model.feature_info.channels()[-1], output_stride, name)
        except (TypeError, AssertionError, ValueError):
            pass
        model = timm.create_model(name, pretrained=pretrained, features_only=True, **kwargs)
        info = model.feature_info
        reductions = info.reduction()
        deepest = len(reductions) - 1
        n_extra = 0
        r = reductions[deepest]
        while r > output_stride:
            r //= 2
            n_extra += 1
        # the deepest level sits right after the last pooling in VGG-like nets: drop the trailing pools
        if _strip_pools(model, n_extra) == n_extra:
            channels, red = _measure_reduction(model)
            if red == output_stride:
                return Backbone(model, info.channels()[-1], output_stride, name)
        # fallback: cut at the deepest level with the requested stride
        model = timm.create_model(name, pretrained=pretrained, features_only=True, **kwargs)
        levels = [i for i, r in enumerate(model.feature_info.reduction()) if r <= output_stride]
        if not levels:
            raise WSOLValueError(f"backbone {name!r} has no feature level with `output_stride`<={output_stride}")
        idx = levels[-1]
        warnings.warn(
            f"backbone {name!r} does not support dilation; using its feature level {idx} "
            f"(stride {model.feature_info.reduction()[idx]}) for output_stride={output_stride}",
            stacklevel=3,
        )
        model = timm.create_model(name, pretrained=pretrained, features_only=True, out_indices=(idx,), **kwargs)
        return Backbone(model, model.feature_info.channels()[-1], model.feature_info.reduction()[-1], name)
    model = timm.create_model(name, pretrained=pretrained, features_only=True, out_indices=(-1,), **kwargs)
    return Backbone(model, model.feature_info.channels()[-1], model.feature_info.reduction()[-1], name)


def _create_torchvision(name: str, pretrained: bool, output_stride: int, **kwargs) -> Backbone:
    import torchvision

    name = _lookup(name, tuple(_TV_PREFIX + n for n in torchvision.models.list_models(module=torchvision.models)))
    arch = name[len(_TV_PREFIX):]
    weights = "DEFAULT" if pretrained else None
    dilation_ok = arch.startswith(("resnet", "resnext", "wide_resnet"))
    if dilation_ok and output_stride != 32:
        kwargs["replace_stride_with_dilation"] = {16: [False, False, True], 8: [False, True, True]}[output_stride]
    if arch.startswith("inception") and not pretrained:
        kwargs.setdefault("aux_logits", False)
        kwargs.setdefault("init_weights", True)
    model = torchvision.models.get_model(arch, weights=weights, **kwargs)
    if dilation_ok:
        body: nn.Module = nn.Sequential(
            model.conv1, model.bn1, model.relu, model.maxpool, model.layer1, model.layer2, model.layer3, model.layer4
        )
    elif hasattr(model, "features") and isinstance(model.features, nn.Module):
        body = model.features
        if arch.startswith("densenet"):
            body = nn.Sequential(body, nn.ReLU(inplace=False))
    else:
        body = _trunk_by_probe(model)
    channels, red = _measure_reduction(body)
    if red > output_stride and not dilation_ok:
        n_extra = 0
        r = red
        while r > output_stride:
            r //= 2
            n_extra += 1
        if _strip_pools(body, n_extra) != n_extra:
            raise WSOLValueError(f"torchvision backbone {name!r} cannot reach `output_stride`={output_stride}")
        channels, red = _measure_reduction(body)
    return Backbone(body, channels, red, name)


def _trunk_by_probe(model: nn.Module) -> nn.Module:
    """The graph up to the last module with a spatial 4-D output (found with one forward pass)."""
    from torchvision.models.feature_extraction import create_feature_extractor

    last: list[str] = []
    hooks = []
    for n, m in model.named_modules():
        if n:
            hooks.append(
                m.register_forward_hook(
                    lambda mod, inp, out, n=n: last.append(n)
                    if isinstance(out, torch.Tensor) and out.ndim == 4 and out.shape[-1] > 1
                    else None
                )
            )
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, 224, 224))
    except Exception as err:  # noqa: BLE001 - re-raised with context
        raise WSOLValueError(f"could not probe the model for a spatial feature layer: {err}") from err
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    if not last:
        raise WSOLValueError("could not find a layer with a spatial (B, K, h, w) output in the model")
    return _Extract(create_feature_extractor(model, return_nodes={last[-1]: "out"}))


class _Extract(nn.Module):
    def __init__(self, fx: nn.Module):
        super().__init__()
        self.fx = fx

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fx(x)["out"]


def create_backbone(name: str, pretrained: bool = False, output_stride: int = 32, **kwargs) -> Backbone:
    """Create a feature extractor by name.

    Args:
        name: a timm model name (``"resnet50"``, ``"vgg16"``, ``"inception_v3"``), a torchvision name with the
            ``"tv:"`` prefix (``"tv:resnet50"``), or a local name: ``"smallcnn"`` (:class:`SmallCNN`, ``kwargs``
            passed to it) or one of :func:`register_backbone`. Key rule of :mod:`wsolkit.registry`.
        pretrained: load ImageNet weights through timm / torchvision (needs network access or a local cache).
        output_stride: 32, 16 or 8.
        **kwargs: passed to the model constructor.

    Returns:
        A :class:`Backbone` with ``out_channels`` and ``reduction``.

    Raises:
        UnknownNameError: unknown name (the message lists close matches).
        WSOLValueError: unsupported ``output_stride``.

    Shape:
        - input: :math:`(B, 3, H, W)`
        - output: :math:`(B, K, h, w)`

    Example:
        >>> bb = create_backbone("resnet18", output_stride=8)
        >>> bb.out_channels, bb.reduction, tuple(bb(torch.zeros(1, 3, 224, 224)).shape)
        (512, 8, (1, 512, 28, 28))
    """
    if not isinstance(name, str):
        raise WSOLTypeError(f"`name` must be a string, got {type(name).__name__}")
    if output_stride not in (8, 16, 32):
        raise WSOLValueError(f"`output_stride` must be 8, 16 or 32, got {output_stride}")
    if name in _LOCAL:
        backbone = _LOCAL.get(name)(pretrained=pretrained, output_stride=output_stride, **kwargs)
    elif name.lower().startswith(_TV_PREFIX):
        backbone = _create_torchvision(name, pretrained, output_stride, **kwargs)
    else:
        backbone = _create_timm(name, pretrained, output_stride, **kwargs)
    # what rebuilds it (like timm's pretrained_cfg): recorded by checkpoints when a method is built over this module
    backbone.backbone_cfg = {"name": name, "output_stride": output_stride, "options": dict(kwargs)}
    return backbone


# the survey's backbones as Choe et al. modified them for WSOL (registers "vgg16_wsol", "inceptionv3_wsol",
# "resnet50_wsol"); imported last because it uses register_backbone
from wsolkit import _wsol_backbones  # noqa: E402, F401
