"""Attention-based Deep MIL head (Ilse et al. 2018; survey eqs. 7-9), one attention map per class."""

from __future__ import annotations

import torch
import torch.nn as nn

from wsolkit._checks import ShapeError, WSOLValueError, check_int
from wsolkit.heads._base import check_features
from wsolkit.heads._registry import register_head
from wsolkit.output import WSOLOutput

__all__ = ["attention_pool", "DeepMIL"]


def attention_pool(features: torch.Tensor, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention MIL pooling (survey eq. 7): ``A = softmax_ij(ψ(F_ij))``, ``f = Σ_ij A_ij F_ij``, per class.

    Args:
        features: instance features ``F`` (one instance per location).
        scores: attention scores ``ψ`` per class and location.

    Returns:
        ``(bags, attention)``: the per-class bag representation and the attention maps (sum to 1 over ``h·w``).

    Shape:
        - features: :math:`(B, K, h, w)`; scores: :math:`(B, C, h, w)`
        - bags: :math:`(B, C, K)`; attention: :math:`(B, C, h, w)`

    Example:
        >>> f = torch.tensor([[[[1.0, 3.0]]]])
        >>> bags, att = attention_pool(f, torch.zeros(1, 1, 1, 2))
        >>> bags, att
        (tensor([[[2.]]]), tensor([[[[0.5000, 0.5000]]]]))
    """
    check_features(features, name="features")
    check_features(scores, name="scores")
    if scores.shape[0] != features.shape[0] or scores.shape[-2:] != features.shape[-2:]:
        raise ShapeError(
            f"`scores` {tuple(scores.shape)} must share batch and spatial size with `features` {tuple(features.shape)}"
        )
    b, c, h, w = scores.shape
    attention = scores.flatten(2).softmax(dim=-1)  # (B, C, hw)
    bags = torch.bmm(attention, features.flatten(2).transpose(1, 2))  # (B, C, K)
    return bags, attention.view(b, c, h, w)


@register_head("deepmil")
class DeepMIL(nn.Module):
    """Attention Deep MIL head adapted to C classes: one attention branch and one bag per class.

    ``ψ_1(f) = w_c tanh(V f)`` (eq. 8) or the gated ``ψ_2(f) = w_c [tanh(V f) ⊙ σ(U f)]`` (eq. 9), with ``V, U`` shared
    (``L = mid_channels``); ``A_c = softmax(ψ_c)`` over the ``h·w`` instances; bag ``f_c = Σ A_c F``; logit
    ``s_c = u_c · f_c + b_c``. By default (``maps="attention"``, the survey's reading of Deep MIL) the CAMs are the
    attention logits ``ψ_c`` (raw evidence, one per class); the softmax weights ``A_c`` are in ``aux["attention"]``
    and the bags in ``aux["bags"]``. ``A_c = exp(ψ_c) / Σ exp(ψ_c)`` ranks locations as ``ψ_c`` does, but its
    exponential squeezes the min-max normalised map towards its peak, so the protocol's thresholds see a few bright
    locations and the rest near 0.

    Attention says where the bag looks, not where the class's object is: nothing in the bag loss ties ``A_c`` to
    the object, and a class whose best evidence is the *context* attends to it. On the GlaS-like synthetic images
    the benign class's attention settles on the stroma between the glands (PxAP of ``ψ_c`` on benign images below
    the all-ones baseline, while the malignant class's attention covers its glands; see ``docs/benchmarks.md``).
    ``maps="instance"`` gives the instance scores ``u_c · F_ij + b_c`` instead — the bag classifier applied to each
    location, so that ``s_c = Σ_ij A_cij (u_c · F_ij + b_c)``: the map the attention averages, a CAM in Zhou et al.'s
    sense. Ilse et al.'s code (``AttentionDeepMIL``, ``Attention.forward``) returns only the attention weights; the
    instance map is this library's option.

    Args:
        in_channels: feature channels K.
        num_classes: classes C.
        mid_channels: attention hidden size L (survey Table 9: 128).
        gated: use the gated attention ψ₂.
        maps: ``"attention"`` (``ψ_c``, default) or ``"instance"`` (``u_c · F + b_c``) as ``cams``; both are always in
            ``aux`` (``"attention"`` holds ``A_c``, ``"instance"`` the instance scores).

    Shape:
        - input: :math:`(B, K, h, w)`
        - logits: :math:`(B, C)`; cams and ``aux["attention"]``: :math:`(B, C, h, w)`
        - ``aux["bags"]``: :math:`(B, C, K)`

    Example:
        >>> head = DeepMIL(in_channels=8, num_classes=2, gated=True)
        >>> out = head(torch.randn(3, 8, 7, 7))
        >>> out.logits.shape, out.cams.shape, out.aux["attention"].sum(dim=(-2, -1)).allclose(torch.ones(3, 2))
        (torch.Size([3, 2]), torch.Size([3, 2, 7, 7]), True)
    """

    def __init__(
        self, in_channels: int, num_classes: int, mid_channels: int = 128, gated: bool = False, maps: str = "attention"
    ):
        super().__init__()
        if maps not in ("attention", "instance"):
            raise WSOLValueError(f"`maps` must be 'attention' or 'instance', got {maps!r}")
        self.maps = maps
        self.in_channels = check_int(in_channels, "in_channels", low=1)
        self.num_classes = check_int(num_classes, "num_classes", low=1)
        self.mid_channels = check_int(mid_channels, "mid_channels", low=1)
        self.gated = bool(gated)
        self.attention_v = nn.Conv2d(in_channels, mid_channels, kernel_size=1)
        self.attention_u = nn.Conv2d(in_channels, mid_channels, kernel_size=1) if self.gated else None
        self.attention_w = nn.Conv2d(mid_channels, num_classes, kernel_size=1)
        self.classifier_weight = nn.Parameter(torch.empty(num_classes, in_channels))
        self.classifier_bias = nn.Parameter(torch.zeros(num_classes))
        nn.init.kaiming_uniform_(self.classifier_weight, a=5**0.5)

    def scores(self, features: torch.Tensor) -> torch.Tensor:
        """Attention scores ``ψ`` ``(B, C, h, w)`` (eq. 8, or eq. 9 when gated)."""
        hidden = torch.tanh(self.attention_v(features))
        if self.attention_u is not None:
            hidden = hidden * torch.sigmoid(self.attention_u(features))
        return self.attention_w(hidden)

    def forward(self, features: torch.Tensor) -> WSOLOutput:
        check_features(features, self.in_channels)
        psi = self.scores(features)
        bags, attention = attention_pool(features, psi)
        logits = (bags * self.classifier_weight).sum(dim=-1) + self.classifier_bias
        instance = torch.einsum("bkhw,ck->bchw", features, self.classifier_weight)
        instance = instance + self.classifier_bias.view(1, -1, 1, 1)
        cams = psi if self.maps == "attention" else instance
        return WSOLOutput(logits, cams, {"attention": attention, "bags": bags, "instance": instance})

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, num_classes={self.num_classes}, mid_channels={self.mid_channels}, "
            f"gated={self.gated}, maps={self.maps!r}"
        )
