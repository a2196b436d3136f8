"""The one conv-pool head of the pooling family: 1×1 convolution to class maps, then a pooling function.

GAP, MAX-Pool, LSE, WILDCAT and PRM differ only in how a class map ``M_c`` becomes a score ``s_c`` (survey
Sec. 2.2). :class:`ConvPoolHead` holds what they share — the 1×1 class-map convolution (``C·M`` maps and the
class-wise modality average when ``modalities > 1``, WILDCAT's), the input checks and the output contract — and a
:class:`Pooling` module chosen by ``pool_type`` (the timm ``ClassifierHead(pool_type=...)`` idea). The named heads
(:class:`~wsolkit.heads.GAP`, :class:`~wsolkit.heads.MaxPool`, :class:`~wsolkit.heads.LSE`,
:class:`~wsolkit.heads.WILDCAT`, :class:`~wsolkit.heads.PRM`) are thin subclasses that fix ``pool_type`` and spell
out its hyper-parameters.

Naming rule of the family: the pooling function is ``<name>_pool``, its module ``<NAME>Pooling`` and the head is
the method's name as its paper spells it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from wsolkit._checks import ShapeError, check_int
from wsolkit.heads._base import check_features
from wsolkit.output import WSOLOutput
from wsolkit.registry import Registry

__all__ = ["Pooling", "ConvPoolHead", "class_wise_pool", "register_pooling", "list_poolings"]

_POOLINGS: Registry[type[nn.Module]] = Registry("pooling")


def register_pooling(name: str):
    """Class decorator registering a :class:`Pooling` subclass as ``ConvPoolHead(pool_type=name)``."""
    return _POOLINGS.decorator(name)


def list_poolings(pattern: str = "*") -> list[str]:
    """``pool_type`` names accepted by :class:`ConvPoolHead` (fnmatch ``pattern``, sorted).

    Example:
        >>> list_poolings()
        ['gap', 'lse', 'max', 'prm', 'wildcat']
    """
    return _POOLINGS.list(pattern)


def class_wise_pool(maps: torch.Tensor, modalities: int) -> torch.Tensor:
    """Average the ``M`` modality maps of each class: ``(B, C·M, h, w) → (B, C, h, w)`` (WILDCAT's class-wise pool).

    Channel ``c * M + m`` holds modality ``m`` of class ``c`` (Durand's ``ClassWisePool`` layout).

    Args:
        maps: modality maps, class-major.
        modalities: number of modalities per class ``M``.

    Shape:
        - maps: :math:`(B, C M, h, w)`
        - output: :math:`(B, C, h, w)`

    Example:
        >>> class_wise_pool(torch.arange(4.0).view(1, 4, 1, 1), modalities=2).flatten()
        tensor([0.5000, 2.5000])
    """
    check_features(maps, name="maps")
    modalities = check_int(modalities, "modalities", low=1)
    b, cm, h, w = maps.shape
    if cm % modalities != 0:
        raise ShapeError(
            f"`maps` has {cm} channels (shape {tuple(maps.shape)}), not a multiple of modalities={modalities}"
        )
    return maps.view(b, cm // modalities, modalities, h, w).mean(dim=2)


class Pooling(nn.Module):
    """Base of the pooling modules: class maps ``(B, C, h, w)`` → class scores ``(B, C)``.

    Subclasses implement ``forward(maps)`` with their ``*_pool`` function; those that expose intermediate tensors
    (PRM's peaks) override :meth:`forward_with_aux`.
    """

    def forward(self, maps: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_with_aux(self, maps: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Scores and the tensors the head puts in ``aux`` (none by default)."""
        return self(maps), {}


class ConvPoolHead(nn.Module):
    """1×1 convolution to class maps ``M_c = Σ_k W_ck F_k + b_c`` (survey eq. 2), then a pooling ``s_c = pool(M_c)``.

    ``cams`` are the class maps the pooling reads (raw evidence). With ``modalities = M > 1`` the convolution gives
    ``C·M`` modality maps, returned in ``aux["modality_maps"]`` ``(B, C, M, h, w)``, and ``M_c`` is their average.
    The per-class bias is that of the convolution: it shifts ``M_c`` by a constant, which changes the logits of
    every pooling by ``b_c`` and leaves the normalised CAM unchanged.

    Args:
        in_channels: feature channels K.
        num_classes: classes C.
        pool_type: a name of :func:`list_poolings` (``"gap"``, ``"max"``, ``"lse"``, ``"wildcat"``, ``"prm"``).
        modalities: maps per class M (WILDCAT; 1 otherwise).
        bias: learn a per-class bias.
        **pool_options: the pooling's hyper-parameters (e.g. ``q`` for ``"lse"``, ``kmax`` for ``"wildcat"``).

    Shape:
        - input: :math:`(B, K, h, w)`
        - logits: :math:`(B, C)`; cams: :math:`(B, C, h, w)`

    Example:
        >>> head = ConvPoolHead(8, 2, pool_type="lse", q=2.0)
        >>> out = head(torch.randn(3, 8, 7, 7))
        >>> out.logits.shape, out.cams.shape
        (torch.Size([3, 2]), torch.Size([3, 2, 7, 7]))
    """

    #: state-dict keys of earlier releases → current keys (loaded transparently)
    _legacy_keys: dict[str, str] = {}

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        pool_type: str = "gap",
        modalities: int = 1,
        bias: bool = True,
        **pool_options: Any,
    ):
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", low=1)
        self.num_classes = check_int(num_classes, "num_classes", low=1)
        self.modalities = check_int(modalities, "modalities", low=1)
        self.pool_type = _POOLINGS.entry(pool_type).name
        self.classifier = nn.Conv2d(in_channels, num_classes * modalities, kernel_size=1, bias=bool(bias))
        self.pool = _POOLINGS.get(pool_type)(**pool_options)

    @property
    def bias(self) -> torch.Tensor | None:
        """The convolution's bias (``C`` values, ``C·M`` with modalities; ``None`` without bias)."""
        return self.classifier.bias

    def forward(self, features: torch.Tensor) -> WSOLOutput:
        check_features(features, self.in_channels)
        maps = self.classifier(features)
        aux: dict[str, torch.Tensor] = {}
        if self.modalities > 1:
            b, _, h, w = maps.shape
            aux["modality_maps"] = maps.view(b, self.num_classes, self.modalities, h, w)
            cams = aux["modality_maps"].mean(dim=2)
        else:
            cams = maps
        logits, pool_aux = self.pool.forward_with_aux(cams)
        aux.update(pool_aux)
        return WSOLOutput(logits, cams, aux)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001 - torch's signature
        for old, new in self._legacy_keys.items():
            if prefix + old in state_dict and prefix + new not in state_dict:
                state_dict[prefix + new] = state_dict.pop(prefix + old)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, num_classes={self.num_classes}, pool_type={self.pool_type!r}, "
            f"modalities={self.modalities}, bias={self.classifier.bias is not None}"
        )
