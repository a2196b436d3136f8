"""CAM post-processing following the evaluation protocol of Choe et al. (2020).

The protocol, used by the survey (Rony et al., Sec. 3.2): select the map of the target class → upsample to the image
size (bilinear, ``align_corners=False``) → per-image min-max normalisation to ``[0, 1]`` (a constant map becomes
zeros) → threshold at τ (a pixel is foreground when its score ``s >= τ``). Every method and metric of wsolkit uses
these functions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from wsolkit._checks import (
    ShapeError,
    WSOLTypeError,
    check_finite,
    check_floating,
    check_integer,
    check_ndim,
    check_number,
    check_tensor,
)

__all__ = ["select", "upsample", "normalize", "threshold", "postprocess"]


def select(cams: torch.Tensor, labels: torch.Tensor | int | None) -> torch.Tensor:
    """Select the map of each image's target class.

    Class-agnostic maps (``C == 1``) are returned as they are whatever ``labels`` is.

    Args:
        cams: class activation maps.
        labels: target class per image: a ``(B,)`` integer tensor, one int for the whole batch, or ``None``
            (only allowed when ``C == 1``).

    Returns:
        The selected maps.

    Shape:
        - cams: :math:`(B, C, h, w)`
        - labels: :math:`(B,)` or int
        - output: :math:`(B, h, w)`

    Example:
        >>> cams = torch.arange(2 * 3 * 4, dtype=torch.float).view(2, 3, 2, 2)
        >>> select(cams, torch.tensor([2, 0]))[:, 0, 0]
        tensor([ 8., 12.])
    """
    check_ndim(cams, "cams", 4, "(B, C, h, w)")
    b, c = cams.shape[:2]
    if c == 1:
        return cams[:, 0]
    if labels is None:
        raise WSOLTypeError(f"`labels` is required to select among C={c} class maps of `cams` {tuple(cams.shape)}")
    if isinstance(labels, bool) or not isinstance(labels, (int, torch.Tensor)):
        raise WSOLTypeError(f"`labels` must be an int or an integer tensor, got {type(labels).__name__}")
    if isinstance(labels, int):
        labels = torch.full((b,), labels, dtype=torch.long, device=cams.device)
    check_integer(labels, "labels")
    if labels.ndim == 0:
        labels = labels.expand(b)
    if labels.ndim != 1 or labels.shape[0] != b:
        raise ShapeError(
            f"`labels` must have shape ({b},) to match `cams` {tuple(cams.shape)}, got {tuple(labels.shape)}"
        )
    if b and (int(labels.min()) < 0 or int(labels.max()) >= c):
        raise ShapeError(
            f"`labels` must be in [0, {c - 1}] for `cams` with C={c}, got values in "
            f"[{int(labels.min())}, {int(labels.max())}]"
        )
    labels = labels.to(device=cams.device, dtype=torch.long)
    return cams[torch.arange(b, device=cams.device), labels]


def _size_pair(size: int | Sequence[int], name: str = "size") -> tuple[int, int]:
    if isinstance(size, int) and not isinstance(size, bool):
        out = (size, size)
    elif isinstance(size, (tuple, list, torch.Size)) and len(size) == 2:
        out = (int(size[0]), int(size[1]))
    else:
        raise WSOLTypeError(f"`{name}` must be an int or a pair (H, W), got {size!r}")
    if out[0] < 1 or out[1] < 1:
        raise ShapeError(f"`{name}` must be positive, got {out}")
    return out


def upsample(cams: torch.Tensor, size: int | Sequence[int]) -> torch.Tensor:
    """Resize maps to ``size`` with bilinear interpolation (``align_corners=False``), as the protocol does.

    Args:
        cams: maps, with or without a class dimension.
        size: target ``(H, W)`` or one int for a square.

    Returns:
        The resized maps with the same number of dimensions as the input.

    Shape:
        - cams: :math:`(B, h, w)` or :math:`(B, C, h, w)`
        - output: :math:`(B, H, W)` or :math:`(B, C, H, W)`

    Example:
        >>> upsample(torch.zeros(2, 7, 7), (224, 224)).shape
        torch.Size([2, 224, 224])
    """
    check_ndim(cams, "cams", (3, 4), "(B, h, w) or (B, C, h, w)")
    check_floating(cams, "cams")
    hw = _size_pair(size)
    if tuple(cams.shape[-2:]) == hw:
        return cams
    if cams.ndim == 3:
        return F.interpolate(cams[:, None], size=hw, mode="bilinear", align_corners=False)[:, 0]
    return F.interpolate(cams, size=hw, mode="bilinear", align_corners=False)


def normalize(cams: torch.Tensor) -> torch.Tensor:
    """Per-map min-max normalisation to ``[0, 1]``; a constant map becomes zeros.

    Each image (and each class map, for 4-D input) is normalised over its spatial dimensions:
    ``(s - min) / (max - min)``. A map whose range is below 4 ulps of its magnitude (constant up to rounding,
    e.g. a constant map after upsampling) becomes zeros. NaN or Inf values raise
    :class:`~wsolkit._checks.WSOLValueError`.

    Args:
        cams: maps, with or without a class dimension.

    Returns:
        Normalised maps, same shape and dtype.

    Shape:
        - cams: :math:`(B, h, w)` or :math:`(B, C, h, w)`
        - output: same as input

    Example:
        >>> normalize(torch.tensor([[[1.0, 3.0], [2.0, 5.0]]]))
        tensor([[[0.0000, 0.5000],
                 [0.2500, 1.0000]]])
    """
    check_ndim(cams, "cams", (3, 4), "(B, h, w) or (B, C, h, w)")
    check_floating(cams, "cams")
    check_finite(cams, "cams")
    flat = cams.flatten(-2)
    lo = flat.amin(-1, keepdim=True)
    hi = flat.amax(-1, keepdim=True)
    rng = hi - lo
    # a map whose range is within a few ulps of its magnitude is constant up to rounding (e.g. a constant map
    # after bilinear upsampling): it becomes zeros instead of amplified rounding noise
    tol = 4 * torch.finfo(cams.dtype).eps * torch.maximum(lo.abs(), hi.abs())
    flat_map = rng <= tol
    safe = torch.where(flat_map, torch.ones_like(rng), rng)
    out = torch.where(flat_map, torch.zeros_like(flat), (flat - lo) / safe)
    return out.view_as(cams)


def threshold(cams: torch.Tensor, tau: float | torch.Tensor) -> torch.Tensor:
    """Binary foreground map ``s >= τ`` (the protocol's rule).

    Args:
        cams: normalised maps.
        tau: one threshold in ``[0, 1]`` or one per image, shape ``(B,)``.

    Returns:
        A boolean tensor of the same shape as ``cams``.

    Shape:
        - cams: :math:`(B, H, W)` or :math:`(B, C, H, W)`
        - tau: scalar or :math:`(B,)`
        - output: same as ``cams``, dtype bool

    Example:
        >>> threshold(torch.tensor([[[0.2, 0.5], [0.7, 1.0]]]), 0.5)
        tensor([[[False,  True],
                 [ True,  True]]])
    """
    check_ndim(cams, "cams", (3, 4), "(B, H, W) or (B, C, H, W)")
    check_floating(cams, "cams")
    if isinstance(tau, torch.Tensor) and tau.numel() != 1:
        if tau.ndim != 1 or tau.shape[0] != cams.shape[0]:
            raise ShapeError(f"`tau` must be a scalar or have shape ({cams.shape[0]},), got {tuple(tau.shape)}")
        if not bool(torch.isfinite(tau).all()):
            raise ShapeError("`tau` must be finite")
        tau = tau.to(cams.device, cams.dtype).view(-1, *([1] * (cams.ndim - 1)))
        return cams >= tau
    tau = check_number(tau, "tau")
    return cams >= tau


def postprocess(
    cams: torch.Tensor, labels: torch.Tensor | int | None = None, size: int | Sequence[int] | None = None
) -> torch.Tensor:
    """The whole protocol in one call: :func:`select` → :func:`upsample` → :func:`normalize`.

    Args:
        cams: raw class maps.
        labels: target class per image (ignored when ``C == 1``).
        size: output ``(H, W)``; ``None`` keeps the map resolution.

    Returns:
        Maps in ``[0, 1]`` ready for thresholding or metrics.

    Shape:
        - cams: :math:`(B, C, h, w)`
        - output: :math:`(B, H, W)`

    Example:
        >>> maps = postprocess(torch.randn(2, 3, 7, 7), torch.tensor([0, 2]), size=32)
        >>> maps.shape, float(maps.min()), float(maps.max())
        (torch.Size([2, 32, 32]), 0.0, 1.0)
    """
    check_tensor(cams, "cams")
    out = select(cams, labels)
    if size is not None:
        out = upsample(out, size)
    return normalize(out)
