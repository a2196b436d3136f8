"""PRM head (Zhou et al. 2018, Peak Response Maps; survey eq. 5): peak stimulation over local maxima."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from wsolkit._checks import WSOLValueError, check_choice, check_int
from wsolkit.heads._base import check_features
from wsolkit.heads._registry import register_head
from wsolkit.heads.conv_pool import ConvPoolHead, Pooling, register_pooling

__all__ = ["find_peaks", "prm_pool", "PRMPooling", "PRM"]

_FILTERS = ("median", "none")
_GRADIENTS = ("exact", "reference")


def _check_window(window: int) -> int:
    window = check_int(window, "window", low=1)
    if window % 2 == 0:
        raise WSOLValueError(f"`window` must be odd (a centred r×r neighbourhood), got {window}")
    return window


def find_peaks(maps: torch.Tensor, window: int = 3, peak_filter: str = "median") -> torch.Tensor:
    """Local maxima of each class map within a ``window × window`` neighbourhood, as the PRM reference finds them.

    A location is a peak when it is the *argmax* of its neighbourhood: its value is the neighbourhood maximum and no
    neighbour earlier in row-major order has that value (borders are padded with ``-inf``). This is the rule of
    ``ZhouYanzhao/PRM`` ``peak_stimulation`` (``max_pool2d(..., return_indices=True)`` compared with each location's
    index, first index on ties), so a plateau gives one peak, not one per location. ``peak_filter="median"`` (the
    reference module's default, ``PeakResponseMapping._median_filter``) keeps the peaks at or above the map's
    median (the lower middle value for an even count, ``torch.median``); ``"none"`` keeps all. The first global
    maximum is always a peak, so every map has at least one. Not differentiable (a boolean mask).

    Args:
        maps: class maps.
        window: odd neighbourhood size ``r`` (survey Table 9: 3-13).
        peak_filter: ``"median"`` or ``"none"``.

    Returns:
        Boolean peak mask.

    Shape:
        - maps: :math:`(B, C, h, w)`
        - output: :math:`(B, C, h, w)`, bool

    Example:
        >>> m = torch.tensor([[[[1.0, 0.0, 0.0, 2.0, 2.0]]]])
        >>> find_peaks(m, window=3, peak_filter="none").int()  # the plateau 2, 2 gives one peak
        tensor([[[[1, 0, 0, 1, 0]]]], dtype=torch.int32)
    """
    check_features(maps, name="maps")
    window = _check_window(window)
    peak_filter = check_choice(peak_filter, "peak_filter", _FILTERS)
    m = maps.detach()
    h, w = m.shape[-2:]
    r = window // 2
    padded = F.pad(m, (r, r, r, r), value=float("-inf"))
    peaks = torch.ones_like(m, dtype=torch.bool)
    for di in range(-r, r + 1):
        for dj in range(-r, r + 1):
            if di == 0 and dj == 0:
                continue
            neighbour = padded[..., r + di : r + di + h, r + dj : r + dj + w]
            earlier = di < 0 or (di == 0 and dj < 0)  # scanned before the centre: must be strictly lower
            peaks &= (m > neighbour) if earlier else (m >= neighbour)
    if peak_filter == "median":
        med = m.flatten(2).median(dim=-1).values[..., None, None]
        peaks &= m >= med
    return peaks


def prm_pool(
    maps: torch.Tensor,
    window: int = 3,
    peak_filter: str = "median",
    peaks: torch.Tensor | None = None,
    gradient: str = "exact",
) -> torch.Tensor:
    """Peak stimulation (survey eq. 5): ``s_c = (1/N_c) Σ_k M_c(i_k, j_k)`` over the ``N_c`` peaks of ``M_c``.

    The sampling kernel ``G_c`` is the (constant) peak indicator divided by ``N_c``, so the gradient flows only
    through the peaks. ``gradient="exact"`` back-propagates ``G_c`` (``1/N_c`` per peak, the derivative of the
    score); ``gradient="reference"`` reproduces ``ZhouYanzhao/PRM`` ``PeakStimulation.backward``, which returns the
    peak indicator without the ``1/N_c`` (a gradient ``N_c`` times larger; the score is the same).

    Args:
        maps: class maps.
        window: odd neighbourhood size ``r`` of :func:`find_peaks`.
        peak_filter: see :func:`find_peaks`.
        peaks: precomputed boolean peak mask (skips :func:`find_peaks`).
        gradient: ``"exact"`` or ``"reference"``.

    Returns:
        Class scores.

    Shape:
        - maps: :math:`(B, C, h, w)`
        - output: :math:`(B, C)`

    Example:
        >>> m = torch.tensor([[[[1.0, 0.0, 0.0, 2.0, 0.0]]]])
        >>> prm_pool(m, window=3, peak_filter="none")  # peaks 1 and 2
        tensor([[1.5000]])
    """
    gradient = check_choice(gradient, "gradient", _GRADIENTS)
    if peaks is None:
        peaks = find_peaks(maps, window, peak_filter)
    else:
        check_features(maps, name="maps")
        if peaks.shape != maps.shape:
            raise WSOLValueError(f"`peaks` must have the shape of `maps` {tuple(maps.shape)}, got {tuple(peaks.shape)}")
    g = peaks.to(maps.dtype)
    total = (maps * g).sum(dim=(-2, -1))
    count = g.sum(dim=(-2, -1))
    if gradient == "reference":  # value total / N, gradient of total (the indicator)
        return total.detach() / count + (total - total.detach())
    return total / count


@register_pooling("prm")
class PRMPooling(Pooling):
    """:func:`find_peaks` + :func:`prm_pool` as a module; ``aux`` holds ``peaks`` and ``num_peaks``.

    Args:
        window: odd peak neighbourhood size ``r``.
        peak_filter: ``"median"`` (reference default) or ``"none"``.
        gradient: ``"exact"`` or ``"reference"`` (see :func:`prm_pool`).

    Example:
        >>> PRMPooling(peak_filter="none")(torch.tensor([[[[1.0, 0.0, 0.0, 2.0, 0.0]]]]))
        tensor([[1.5000]])
    """

    def __init__(self, window: int = 3, peak_filter: str = "median", gradient: str = "exact"):
        super().__init__()
        self.window = _check_window(window)
        self.peak_filter = check_choice(peak_filter, "peak_filter", _FILTERS)
        self.gradient = check_choice(gradient, "gradient", _GRADIENTS)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return self.forward_with_aux(maps)[0]

    def forward_with_aux(self, maps: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        peaks = find_peaks(maps, self.window, self.peak_filter)
        scores = prm_pool(maps, peaks=peaks, gradient=self.gradient)
        return scores, {"peaks": peaks, "num_peaks": peaks.sum(dim=(-2, -1))}

    def extra_repr(self) -> str:
        return f"window={self.window}, peak_filter={self.peak_filter!r}, gradient={self.gradient!r}"


@register_head("prm")
class PRM(ConvPoolHead):
    """PRM head: 1×1 convolution to class maps (the CAMs) → peak stimulation :func:`prm_pool`.

    Zhou et al. (2018), "Weakly supervised instance segmentation using class peak response". The boolean peak
    locations are returned in ``aux["peaks"]`` (and their number per map in ``aux["num_peaks"]``).

    Args:
        in_channels: feature channels K.
        num_classes: classes C.
        window: odd peak neighbourhood size ``r``.
        peak_filter: ``"median"`` (the reference's default) or ``"none"``.
        gradient: ``"exact"`` (``1/N_c`` per peak) or ``"reference"`` (the reference's backward, no ``1/N_c``).
        bias: learn a per-class bias.

    Shape:
        - input: :math:`(B, K, h, w)`
        - logits: :math:`(B, C)`; cams and ``aux["peaks"]``: :math:`(B, C, h, w)`; ``aux["num_peaks"]``: :math:`(B, C)`

    Example:
        >>> head = PRM(in_channels=8, num_classes=2, window=5)
        >>> out = head(torch.randn(3, 8, 7, 7))
        >>> out.logits.shape, out.aux["peaks"].dtype
        (torch.Size([3, 2]), torch.bool)
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        window: int = 3,
        peak_filter: str = "median",
        gradient: str = "exact",
        bias: bool = True,
    ):
        super().__init__(
            in_channels, num_classes, "prm", bias=bias, window=window, peak_filter=peak_filter, gradient=gradient
        )

    window = property(lambda self: self.pool.window, doc="Peak neighbourhood size ``r``.")
    peak_filter = property(lambda self: self.pool.peak_filter, doc="Peak filter.")
    gradient = property(lambda self: self.pool.gradient, doc="Gradient rule of the peak stimulation.")
