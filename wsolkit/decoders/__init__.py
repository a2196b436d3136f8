"""F-CAM and NEGEV: U-Net decoder over a frozen classifier, CAM seeds, dense CRF, size and negative-evidence losses."""

from wsolkit.decoders.fcam import FCAM, create_fcam, encoder_channels, feature_layers
from wsolkit.decoders.unet import DecoderBlock, UNetDecoder

__all__ = ["DecoderBlock", "UNetDecoder", "FCAM", "create_fcam", "encoder_channels", "feature_layers"]
