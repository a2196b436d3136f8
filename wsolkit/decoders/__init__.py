"""F-CAM and NEGEV: U-Net decoder over a frozen classifier, CAM seeds, dense CRF, size and negative-evidence losses.

Registered as ``"fcam"`` and ``"negev"``: ``wsolkit.create_method("fcam", classifier=trained_model)``.
"""

from wsolkit.decoders.crf import (
    DenseCRFLoss,
    bilateral_features,
    dense_bilateral_filter,
    dense_crf_loss,
    grid_bilateral_filter,
)
from wsolkit.decoders.fcam import FCAM, build_decoder, encoder_channels, feature_layers
from wsolkit.decoders.fcam import create_fcam as create_fcam  # deprecated (wsolkit._deprecation): out of __all__
from wsolkit.decoders.losses import FCAMLoss, NEGEVLoss, negative_evidence_loss, seed_loss, size_loss
from wsolkit.decoders.methods import default_crf, fcam_method, negev_method
from wsolkit.decoders.seeds import (
    FCAMSeeder,
    NEGEVSeeder,
    dilate,
    erode,
    fcam_seeds,
    negev_seeds,
    otsu_threshold,
    sampling_weights,
    seed_map,
)
from wsolkit.decoders.unet import DecoderBlock, UNetDecoder

__all__ = [
    "DecoderBlock",
    "UNetDecoder",
    "FCAM",
    "build_decoder",
    "fcam_method",
    "negev_method",
    "default_crf",
    "encoder_channels",
    "feature_layers",
    "otsu_threshold",
    "erode",
    "dilate",
    "seed_map",
    "fcam_seeds",
    "negev_seeds",
    "sampling_weights",
    "FCAMSeeder",
    "NEGEVSeeder",
    "bilateral_features",
    "dense_bilateral_filter",
    "grid_bilateral_filter",
    "dense_crf_loss",
    "DenseCRFLoss",
    "seed_loss",
    "size_loss",
    "negative_evidence_loss",
    "FCAMLoss",
    "NEGEVLoss",
]
