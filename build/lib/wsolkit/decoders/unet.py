"""U-Net decoder over the multi-scale features of a (frozen) classifier backbone (F-CAM, Belharbi et al. 2022)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError, check_floating, check_int, check_ndim

__all__ = ["DecoderBlock", "UNetDecoder"]


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class DecoderBlock(nn.Module):
    """One U-Net decoder stage: nearest ×2 upsampling, resize to the skip if needed, concatenation, 2×conv-BN-ReLU.

    Args:
        in_channels: channels of the incoming (deeper) map.
        skip_channels: channels of the skip connection (0: no skip).
        out_channels: output channels.

    Shape:
        - x: :math:`(B, C_{in}, h, w)`; skip: :math:`(B, C_{skip}, h', w')` or ``None``
        - output: :math:`(B, C_{out}, h', w')` (``(2h, 2w)`` without a skip)

    Example:
        >>> block = DecoderBlock(8, 4, 6)
        >>> block(torch.zeros(1, 8, 3, 3), torch.zeros(1, 4, 7, 7)).shape
        torch.Size([1, 6, 7, 7])
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int):
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", low=1)
        self.skip_channels = check_int(skip_channels, "skip_channels", low=0)
        self.out_channels = check_int(out_channels, "out_channels", low=1)
        self.convs = nn.Sequential(
            *_conv_bn_relu(in_channels + skip_channels, out_channels), *_conv_bn_relu(out_channels, out_channels)
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        if skip is not None:
            if x.shape[-2:] != skip.shape[-2:]:
                x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = torch.cat([x, skip], dim=1)
        return self.convs(x)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, skip_channels={self.skip_channels}, out_channels={self.out_channels}"


class UNetDecoder(nn.Module):
    """U-Net decoder of F-CAM: deepest feature map → stages with skips from shallower maps → per-pixel logits.

    Stage ``i`` upsamples by 2 (nearest), resizes to the ``i``-th skip (from deep to shallow) if the sizes differ
    (dilated backbones), concatenates it and applies two conv3×3 (no bias) → BN → ReLU. Stages beyond the available
    skips only upsample. A conv3×3 head maps to ``num_classes`` channels (background, foreground), resized
    (bilinear) to the requested output size.

    Args:
        encoder_channels: channels of the encoder features, ordered shallow → deep (as the encoder returns them).
        decoder_channels: output channels of each stage; one stage per entry.
        num_classes: output maps (2: background and foreground).

    Shape:
        - features: list of :math:`(B, K_i, h_i, w_i)` (shallow → deep)
        - output: :math:`(B, \\text{num\\_classes}, H, W)` with ``(H, W) = size`` (else the last stage's size)

    Example:
        >>> dec = UNetDecoder(encoder_channels=(4, 8, 16), decoder_channels=(16, 8))
        >>> feats = [torch.zeros(1, 4, 16, 16), torch.zeros(1, 8, 8, 8), torch.zeros(1, 16, 4, 4)]
        >>> dec(feats, size=(31, 33)).shape
        torch.Size([1, 2, 31, 33])
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        decoder_channels: Sequence[int] = (256, 128, 64, 32, 16),
        num_classes: int = 2,
    ):
        super().__init__()
        if not isinstance(encoder_channels, Sequence) or len(encoder_channels) == 0:
            raise WSOLTypeError(f"`encoder_channels` must be a non-empty sequence of ints, got {encoder_channels!r}")
        if not isinstance(decoder_channels, Sequence) or len(decoder_channels) == 0:
            raise WSOLTypeError(f"`decoder_channels` must be a non-empty sequence of ints, got {decoder_channels!r}")
        self.encoder_channels = tuple(check_int(c, "encoder_channels", low=1) for c in encoder_channels)
        self.decoder_channels = tuple(check_int(c, "decoder_channels", low=1) for c in decoder_channels)
        self.num_classes = check_int(num_classes, "num_classes", low=1)
        skips = list(reversed(self.encoder_channels[:-1]))
        blocks = []
        c_in = self.encoder_channels[-1]
        for i, c_out in enumerate(self.decoder_channels):
            blocks.append(DecoderBlock(c_in, skips[i] if i < len(skips) else 0, c_out))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(c_in, self.num_classes, 3, padding=1)

    def forward(self, features: Sequence[torch.Tensor], size: Sequence[int] | None = None) -> torch.Tensor:
        if not isinstance(features, (list, tuple)):
            raise WSOLTypeError(f"`features` must be a list of (B, K, h, w) tensors, got {type(features).__name__}")
        for i, f in enumerate(features):
            check_ndim(f, f"features[{i}]", 4, "(B, K, h, w)")
            check_floating(f, f"features[{i}]")
        got = tuple(int(f.shape[1]) for f in features)
        if got != self.encoder_channels:
            raise ShapeError(
                f"encoder/decoder channel mismatch: the encoder features have channels {list(got)} "
                f"(shapes {[tuple(f.shape) for f in features]}) but the decoder was built with "
                f"`encoder_channels`={list(self.encoder_channels)}"
            )
        if size is not None and (len(size) != 2 or any(int(s) < 1 for s in size)):
            raise WSOLValueError(f"`size` must be (H, W) with positive entries, got {size!r}")
        skips = list(reversed(features[:-1]))
        x = features[-1]
        for i, block in enumerate(self.blocks):
            x = block(x, skips[i] if i < len(skips) else None)
        x = self.head(x)
        if size is not None and tuple(x.shape[-2:]) != tuple(int(s) for s in size):
            x = F.interpolate(x, size=tuple(int(s) for s in size), mode="bilinear", align_corners=False)
        return x

    def extra_repr(self) -> str:
        return (
            f"encoder_channels={self.encoder_channels}, decoder_channels={self.decoder_channels}, "
            f"num_classes={self.num_classes}"
        )
