"""PRM head (Zhou et al. 2018, Peak Response Maps; survey eq. 5): peak stimulation over local maxima."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from wsolkit._checks import WSOLValueError, check_choice, check_int
from wsolkit.heads._base import check_features
from wsolkit.heads._registry import register_head
from wsolkit.output import WSOLOutput

__all__ = ["find_peaks", "prm_pool", "PRM"]

_FILTERS = ("none", "median")


def _check_window(window: int) -> int:
    window = check_int(window, "window", low=1)
    if window % 2 == 0:
        raise WSOLValueError(f"`window` must be odd (a centred r×r neighbourhood), got {window}")
    return window


def find_peaks(maps: torch.Tensor, window: int = 3, peak_filter: str = "none") -> torch.Tensor:
    """Local maxima of each class map within a ``window × window`` neighbourhood.

    A location is a peak when its value equals the maximum of its neighbourhood (borders are padded with
    ``-inf``; equal neighbours on a plateau are all peaks). ``peak_filter="median"`` keeps only the peaks at or
    above the median of their map (the filter of the PRM reference implementation). The global maximum is always a
    peak, so every map has at least one. Not differentiable (a boolean mask).

    Args:
        maps: class maps.
        window: odd neighbourhood size ``r`` (survey Table 9: 3-13).
        peak_filter: ``"none"`` or ``"median"``.

    Returns:
        Boolean peak mask.

    Shape:
        - maps: :math:`(B, C, h, w)`
        - output: :math:`(B, C, h, w)`, bool

    Example:
        >>> m = torch.tensor([[[[1.0, 0.0, 0.0, 2.0, 0.0]]]])
        >>> find_peaks(m, window=3).int()
        tensor([[[[1, 0, 0, 1, 0]]]], dtype=torch.int32)
    """
    check_features(maps, name="maps")
    window = _check_window(window)
    peak_filter = check_choice(peak_filter, "peak_filter", _FILTERS)
    m = maps.detach()
    neighbourhood_max = F.max_pool2d(m, kernel_size=window, stride=1, padding=window // 2)
    peaks = m >= neighbourhood_max
    if peak_filter == "median":
        med = m.flatten(2).median(dim=-1).values[..., None, None]
        peaks = peaks & (m >= med)
    return peaks


def prm_pool(
    maps: torch.Tensor, window: int = 3, peak_filter: str = "none", peaks: torch.Tensor | None = None
) -> torch.Tensor:
    """Peak stimulation (survey eq. 5): ``s_c = (1/N_c) Σ_k M_c(i_k, j_k)`` over the ``N_c`` peaks of ``M_c``.

    The sampling kernel ``G_c`` is the (constant) peak indicator divided by ``N_c``, so the gradient flows only
    through the peak locations.

    Args:
        maps: class maps.
        window: odd neighbourhood size ``r`` of :func:`find_peaks`.
        peak_filter: see :func:`find_peaks`.
        peaks: precomputed boolean peak mask (skips :func:`find_peaks`).

    Returns:
        Class scores.

    Shape:
        - maps: :math:`(B, C, h, w)`
        - output: :math:`(B, C)`

    Example:
        >>> m = torch.tensor([[[[1.0, 0.0, 0.0, 2.0, 0.0]]]])
        >>> prm_pool(m, window=3)  # peaks 1 and 2
        tensor([[1.5000]])
    """
    if peaks is None:
        peaks = find_peaks(maps, window, peak_filter)
    else:
        check_features(maps, name="maps")
        if peaks.shape != maps.shape:
            raise WSOLValueError(f"`peaks` must have the shape of `maps` {tuple(maps.shape)}, got {tuple(peaks.shape)}")
    g = peaks.to(maps.dtype)
    return (maps * g).sum(dim=(-2, -1)) / g.sum(dim=(-2, -1))


@register_head("prm")
class PRM(nn.Module):
    """PRM head: 1×1 convolution to class maps (the CAMs) → peak stimulation :func:`prm_pool`.

    Zhou et al. (2018), "Weakly supervised instance segmentation using class peak response". The boolean peak
    locations are returned in ``aux["peaks"]`` (and their number per map in ``aux["num_peaks"]``).

    Args:
        in_channels: feature channels K.
        num_classes: classes C.
        window: odd peak neighbourhood size ``r``.
        peak_filter: ``"none"`` or ``"median"``.
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
        self, in_channels: int, num_classes: int, window: int = 3, peak_filter: str = "none", bias: bool = True
    ):
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", low=1)
        self.num_classes = check_int(num_classes, "num_classes", low=1)
        self.window = _check_window(window)
        self.peak_filter = check_choice(peak_filter, "peak_filter", _FILTERS)
        self.classifier = nn.Conv2d(in_channels, num_classes, kernel_size=1, bias=bool(bias))

    def forward(self, features: torch.Tensor) -> WSOLOutput:
        check_features(features, self.in_channels)
        cams = self.classifier(features)
        peaks = find_peaks(cams, self.window, self.peak_filter)
        logits = prm_pool(cams, peaks=peaks)
        return WSOLOutput(logits, cams, {"peaks": peaks, "num_peaks": peaks.sum(dim=(-2, -1))})

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, num_classes={self.num_classes}, window={self.window}, "
            f"peak_filter={self.peak_filter!r}"
        )
