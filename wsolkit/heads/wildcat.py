"""WILDCAT head (Durand et al. 2017; survey eq. 6): class-wise modality pooling + top-k / bottom-k spatial pooling."""

from __future__ import annotations

import torch

from wsolkit._checks import check_number
from wsolkit.heads._base import check_features, check_k, resolve_k
from wsolkit.heads._registry import register_head
from wsolkit.heads.conv_pool import ConvPoolHead, Pooling, class_wise_pool, register_pooling

__all__ = ["wildcat_pool", "class_wise_pool", "WILDCATPooling", "WILDCAT"]


def wildcat_pool(
    maps: torch.Tensor,
    kmax: int | float = 0.1,
    kmin: int | float | None = None,
    alpha: float = 0.6,
    dropout: float = 0.0,
    training: bool = False,
    durand_halving: bool = False,
) -> torch.Tensor:
    """WILDCAT spatial pooling (survey eq. 6): ``s_c = Z⁺_c / n⁺ + α Z⁻_c / n⁻``.

    ``Z⁺_c`` (``Z⁻_c``) is the sum of the ``n⁺`` highest (``n⁻`` lowest) values of the class map ``M_c``: the mean
    of the top-``n⁺`` plus ``α`` times the mean of the bottom-``n⁻`` values.

    ``k`` is a count when it is an ``int`` ≥ 1 (clipped to ``h·w``) and a fraction of ``h·w`` when it is a float
    in ``(0, 1)`` (``n = max(1, round(k·h·w))``, Python rounding); any other value is an error, so ``1.0`` cannot
    silently mean "all locations". ``kmin = 0`` (int) means no lowest-activation term, as ``alpha = 0`` does.

    Dropout follows the reference (``sbelharbi/deep-wsl-histo-min-max-uncertainty``,
    ``deepmil/decision_pooling.py`` ``WildCatPoolDecision.forward``, the MaxMin authors' WILDCAT): the values are
    sorted, entries of the *sorted* vector are zeroed at random (inverted dropout, kept entries scaled by
    ``1 / (1 - p)``; one draw per position of the full sorted vector), and the first ``n⁺`` / last ``n⁻`` positions
    are averaged. The selection comes before dropout, so training-time scores are unbiased estimates of the
    evaluation-time ones. That reference's ``scores.add(...)`` is not in place and loses the ``α`` term; here it is
    kept.

    ``durand_halving=True`` reproduces ``durandtibo/wildcat.pytorch`` ``WildcatPool2dFunction``, which divides the
    score by 2 when ``α ≠ 0`` and ``n⁻ > 0``: ``s_c = (Z⁺_c / n⁺ + α Z⁻_c / n⁻) / 2`` (eq. 6 of the survey has no
    such factor; it halves logits and gradients alike). Durand's test is ``self.alpha is not 0``, an identity test:
    with a float ``alpha=0.0`` it is true, so his code also halves the score at ``α = 0.0`` (the ``α`` term itself
    being 0); only the int ``0`` skips it. wsolkit halves only when the ``α`` term is active (``α > 0`` and
    ``n⁻ > 0``), whatever the type of ``alpha``.

    Gradients are autograd's, the exact derivative of the forward: for the pooling, ``∂s_c/∂M_c = 1/n⁺`` on the
    selected highest positions (``α/n⁻`` on the lowest); for the class-wise average of the :class:`WILDCAT` head,
    ``1/M`` per modality map. Durand's custom ``ClassWisePoolFunction.backward`` expands the gradient to the ``M``
    modality maps without the ``1/M`` of its forward (``M`` times the true gradient of the modality conv); wsolkit
    follows the forward's derivative, not that backward.

    Args:
        maps: class maps ``M``.
        kmax: ``n⁺`` as a count (int ≥ 1) or a fraction (float in (0, 1)).
        kmin: ``n⁻`` as a count (int ≥ 0) or a fraction; ``None`` uses ``kmax``.
        alpha: weight ``α ≥ 0`` of the lowest activations (``0`` disables the term).
        dropout: probability ``p`` of zeroing an entry of the sorted vector (training only; MaxMin uses 0.75).
        training: apply ``dropout``.
        durand_halving: halve the score when the ``α`` term is active (Durand's code).

    Returns:
        Class scores.

    Shape:
        - maps: :math:`(B, C, h, w)`
        - output: :math:`(B, C)`

    Example:
        >>> m = torch.tensor([[[[1.0, 5.0], [3.0, -2.0]]]])
        >>> wildcat_pool(m, kmax=2, kmin=1, alpha=0.5)  # (5 + 3) / 2 + 0.5 * (-2)
        tensor([[3.]])
        >>> wildcat_pool(m, kmax=2, kmin=1, alpha=0.5, durand_halving=True)
        tensor([[1.5000]])
    """
    check_features(maps, name="maps")
    kmax = check_k(kmax, "kmax")
    kmin = kmax if kmin is None else check_k(kmin, "kmin", allow_zero=True)
    alpha = check_number(alpha, "alpha", low=0.0)
    dropout = check_number(dropout, "dropout", low=0.0, high=1.0, high_inclusive=False)
    b, c, h, w = maps.shape
    n = h * w
    flat = maps.reshape(b, c, n)
    n_pos = resolve_k(kmax, n)
    n_neg = resolve_k(kmin, n) if alpha > 0 else 0
    drop = training and dropout > 0
    top = flat.topk(n_pos, dim=-1, largest=True, sorted=drop).values  # positions 0..n⁺-1 of the sorted vector
    keep = None
    if drop:
        keep = (torch.rand(b, c, n, dtype=maps.dtype, device=maps.device) >= dropout).to(maps.dtype) / (1 - dropout)
        top = top * keep[..., :n_pos]
    scores = top.mean(dim=-1)  # Z⁺ / n⁺
    if n_neg > 0:
        low = flat.topk(n_neg, dim=-1, largest=False, sorted=drop).values
        if keep is not None:  # ascending order: the last position of the descending vector first
            low = low * keep[..., n - n_neg :].flip(-1)
        scores = scores + alpha * low.mean(dim=-1)  # α Z⁻ / n⁻
        if durand_halving:
            scores = scores / 2
    return scores


@register_pooling("wildcat")
class WILDCATPooling(Pooling):
    """:func:`wildcat_pool` as a module (dropout active in ``train()`` mode only).

    Args:
        kmax: ``n⁺`` (int count ≥ 1 or float fraction in (0, 1)).
        kmin: ``n⁻`` (int count ≥ 0 or float fraction); ``None`` uses ``kmax``.
        alpha: weight of the lowest activations.
        dropout: dropout probability on the sorted vector.
        durand_halving: Durand's halving of the score when the ``α`` term is active.

    Example:
        >>> WILDCATPooling(kmax=1, alpha=0.0)(torch.arange(4.0).view(1, 1, 2, 2))
        tensor([[3.]])
    """

    def __init__(
        self,
        kmax: int | float = 0.1,
        kmin: int | float | None = None,
        alpha: float = 0.6,
        dropout: float = 0.0,
        durand_halving: bool = False,
    ):
        super().__init__()
        self.kmax = check_k(kmax, "kmax")
        self.kmin = self.kmax if kmin is None else check_k(kmin, "kmin", allow_zero=True)
        self.alpha = check_number(alpha, "alpha", low=0.0)
        self.dropout = check_number(dropout, "dropout", low=0.0, high=1.0, high_inclusive=False)
        self.durand_halving = bool(durand_halving)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return wildcat_pool(
            maps, self.kmax, self.kmin, self.alpha, self.dropout, self.training, durand_halving=self.durand_halving
        )

    def extra_repr(self) -> str:
        return (
            f"kmax={self.kmax}, kmin={self.kmin}, alpha={self.alpha}, dropout={self.dropout}, "
            f"durand_halving={self.durand_halving}"
        )


@register_head("wildcat")
class WILDCAT(ConvPoolHead):
    """WILDCAT head: 1×1 conv to ``C·M`` modality maps → class-wise average → :func:`wildcat_pool`.

    Durand et al. (2017), "WILDCAT: weakly supervised learning of deep convnets for image classification, pointwise
    localization and segmentation"; survey eq. 6. The CAMs are the class maps (modality average; dropout acts on
    the sorted scores, never on the maps).

    Args:
        in_channels: feature channels K.
        num_classes: classes C.
        modalities: modality maps per class M (survey Table 9 uses 5).
        kmax: highest activations kept (int count ≥ 1 or float fraction in (0, 1) of ``h·w``).
        kmin: lowest activations kept (int count, ``0`` for none, or a fraction); ``None`` uses ``kmax``.
        alpha: weight of the lowest activations.
        dropout: dropout probability on the sorted vector (training only).
        durand_halving: halve the score when the ``α`` term is active (Durand's ``WildcatPool2dFunction``).

    Shape:
        - input: :math:`(B, K, h, w)`
        - logits: :math:`(B, C)`; cams: :math:`(B, C, h, w)`; ``aux["modality_maps"]``: :math:`(B, C, M, h, w)`

    Example:
        >>> head = WILDCAT(in_channels=8, num_classes=2, modalities=5, kmax=0.09, kmin=0.09, alpha=0.0, dropout=0.75)
        >>> out = head(torch.randn(3, 8, 7, 7))
        >>> out.logits.shape, out.cams.shape, out.aux["modality_maps"].shape
        (torch.Size([3, 2]), torch.Size([3, 2, 7, 7]), torch.Size([3, 2, 5, 7, 7]))
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        modalities: int = 4,
        kmax: int | float = 0.1,
        kmin: int | float | None = None,
        alpha: float = 0.6,
        dropout: float = 0.0,
        durand_halving: bool = False,
    ):
        super().__init__(
            in_channels, num_classes, "wildcat", modalities=modalities, kmax=kmax, kmin=kmin, alpha=alpha,
            dropout=dropout, durand_halving=durand_halving,
        )

    kmax = property(lambda self: self.pool.kmax, doc="``n⁺`` as given (count or fraction).")
    kmin = property(lambda self: self.pool.kmin, doc="``n⁻`` as given (count or fraction).")
    alpha = property(lambda self: self.pool.alpha, doc="Weight of the lowest activations.")
    dropout = property(lambda self: self.pool.dropout, doc="Dropout probability on the sorted vector.")
    durand_halving = property(lambda self: self.pool.durand_halving, doc="Durand's halving of the score.")
