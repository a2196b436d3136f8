"""Attention-based Dropout Layer (ADL, Choe & Shim 2019) and its insertion into backbones."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from wsolkit._checks import WSOLTypeError, WSOLValueError, check_floating, check_ndim, check_probability, close_matches

__all__ = ["adl", "ADL", "insert_adl"]


def adl(
    x: torch.Tensor,
    drop_rate: float = 0.75,
    gamma: float = 0.9,
    training: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Attention-based dropout: multiply features by a drop mask or by an importance map.

    Self-attention ``A = mean_k F_k`` (channel mean); importance map ``sigmoid(A)``; drop mask
    ``A < γ·max_ij A`` with the maximum taken per sample. One Bernoulli draw per forward pass decides: with
    probability ``drop_rate`` the features are multiplied by the drop mask (the most discriminative region is
    hidden), otherwise by the importance map (it is emphasised). Gradients flow through the importance map; the
    drop mask is a constant. Identity when ``training`` is ``False``.

    Args:
        x: intermediate feature maps.
        drop_rate: probability of using the drop mask, in ``[0, 1]``.
        gamma: drop threshold as a fraction of the per-sample maximum attention, in ``[0, 1]``.
        training: apply the layer; ``False`` returns ``x``.
        generator: random generator for the branch draw.

    Returns:
        Re-weighted features.

    Shape:
        - x: :math:`(B, K, h, w)`
        - output: :math:`(B, K, h, w)`

    Example:
        >>> x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
        >>> adl(x, drop_rate=1.0, gamma=0.9)  # 4 >= 0.9 * 4 is dropped
        tensor([[[[1., 2.],
                  [3., 0.]]]])
    """
    check_ndim(x, "x", 4, "(B, K, h, w)")
    check_floating(x, "x")
    drop_rate = check_probability(drop_rate, "drop_rate")
    gamma = check_probability(gamma, "gamma")
    if not training:
        return x
    attention = x.mean(dim=1, keepdim=True)
    use_drop = bool(torch.rand((), generator=generator) < drop_rate)
    if use_drop:
        peak = attention.detach().flatten(1).amax(1).view(-1, 1, 1, 1)
        return x * (attention.detach() < gamma * peak).to(x.dtype)
    return x * torch.sigmoid(attention)


class ADL(nn.Module):
    """Module form of :func:`adl`; insert it between backbone blocks (see :func:`insert_adl`).

    Args:
        drop_rate: probability of the drop-mask branch (survey grid: 0, 0.25, 0.35, 0.45, 0.5, 0.75).
        gamma: drop threshold relative to the per-sample maximum (grid: 0.75, 0.85, 0.9).
        generator: optional random generator.

    Shape:
        - input: :math:`(B, K, h, w)`
        - output: :math:`(B, K, h, w)`

    Example:
        >>> layer = ADL(drop_rate=0.75, gamma=0.9).eval()
        >>> x = torch.randn(2, 4, 5, 5)
        >>> torch.equal(layer(x), x)
        True
    """

    def __init__(self, drop_rate: float = 0.75, gamma: float = 0.9, generator: torch.Generator | None = None):
        super().__init__()
        self.drop_rate = check_probability(drop_rate, "drop_rate")
        self.gamma = check_probability(gamma, "gamma")
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return adl(x, self.drop_rate, self.gamma, self.training, self.generator)

    def extra_repr(self) -> str:
        return f"drop_rate={self.drop_rate}, gamma={self.gamma}"


def _resolve(model: nn.Module, position: str) -> str:
    names = [n for n, _ in model.named_modules() if n]
    if position in names:
        return position
    # allow names relative to a wrapper (e.g. "layer3" for Backbone.body.layer3 or timm "features_4")
    suffix = [n for n in names if n.endswith("." + position)]
    if len(suffix) == 1:
        return suffix[0]
    if len(suffix) > 1:
        raise WSOLValueError(f"`positions` entry {position!r} is ambiguous: it matches {suffix}")
    hint = close_matches(position, names)
    top = [n for n in names if "." not in n]
    raise WSOLValueError(
        f"`positions` entry {position!r} is not a module of the backbone"
        + (f"; did you mean one of {hint}?" if hint else f"; top-level modules are {top}")
    )


def insert_adl(
    backbone: nn.Module,
    positions: Sequence[str],
    drop_rate: float = 0.75,
    gamma: float = 0.9,
    generator: torch.Generator | None = None,
) -> list[str]:
    """Insert an :class:`ADL` right after each named module of ``backbone`` (in place).

    Each module at ``position`` is replaced by ``nn.Sequential(module, ADL(...))``, so the ADL sees that module's
    output. Positions are module names as in ``named_modules()``; a name that is unique as a suffix is accepted,
    e.g. ``"layer3"`` or ``"layer4.0"`` (ResNet blocks of timm models and of torchvision models, also inside a
    timm :class:`~wsolkit.backbones.Backbone`), ``"features_13"`` (timm VGG ``features_only``), ``"features.13"``
    (torchvision VGG) or ``"features.9"`` (:class:`~wsolkit.backbones.SmallCNN`). The trunk that
    ``create_backbone("tv:resnet50")`` builds is an ``nn.Sequential``: there ``layer3`` / ``layer4`` are ``"6"`` /
    ``"7"``. Choe & Shim insert ADL after
    the last blocks of a ResNet (``layer3``, ``layer4``) and after the conv blocks of VGG.

    Args:
        backbone: the module to modify.
        positions: module names after which an ADL is inserted.
        drop_rate: ADL drop rate.
        gamma: ADL threshold.
        generator: optional random generator shared by the inserted layers.

    Returns:
        The resolved (full) module names that now end with an ADL.

    Raises:
        WSOLValueError: a position that does not exist (the message lists close names), is ambiguous, or repeats.

    Example:
        >>> from wsolkit.backbones import SmallCNN
        >>> net = SmallCNN(width=4, depth=1)
        >>> insert_adl(net, ["features.6"])
        ['features.6']
        >>> type(net.features[6][1]).__name__
        'ADL'
    """
    if not isinstance(backbone, nn.Module):
        raise WSOLTypeError(f"`backbone` must be an nn.Module, got {type(backbone).__name__}")
    if isinstance(positions, str) or not isinstance(positions, Sequence):
        raise WSOLTypeError(f"`positions` must be a sequence of module names, got {positions!r}")
    if len(positions) == 0:
        raise WSOLValueError("`positions` must name at least one module")
    for p in positions:
        if not isinstance(p, str):
            raise WSOLTypeError(f"`positions` must contain module names (str), got {p!r}")
    drop_rate = check_probability(drop_rate, "drop_rate")
    gamma = check_probability(gamma, "gamma")
    resolved = [_resolve(backbone, p) for p in positions]
    if len(set(resolved)) != len(resolved):
        raise WSOLValueError(f"`positions` resolve to repeated modules: {resolved}")
    # deepest first, so that wrapping a parent does not move a child that is also listed
    for name in sorted(resolved, key=lambda n: n.count("."), reverse=True):
        *path, leaf = name.split(".")
        parent = backbone.get_submodule(".".join(path)) if path else backbone
        child = backbone.get_submodule(name)
        wrapped = nn.Sequential(child, ADL(drop_rate, gamma, generator)).train(child.training)
        setattr(parent, leaf, wrapped)
    return resolved
