"""F-CAM / NEGEV model: a U-Net decoder trained over a frozen WSOL classifier (Belharbi et al., WACV 2022, MIDL 2022).

The decoder reads multi-scale features of the classifier's own backbone. By default they are collected with forward
hooks on the backbone's feature levels during the classifier's forward pass (one pass gives the logits, the CAMs
and the skip features); the hooks exist only inside :meth:`FCAM.forward`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from wsolkit._checks import WSOLTypeError, WSOLValueError, check_floating, check_ndim
from wsolkit.backbones import SmallCNN
from wsolkit.decoders.unet import UNetDecoder
from wsolkit.output import WSOLOutput

__all__ = ["feature_layers", "encoder_channels", "FCAM", "create_fcam"]

_DEFAULT_DECODER = (256, 128, 64, 32, 16)


def feature_layers(model: nn.Module) -> list[str]:
    """Names of the sub-modules of ``model`` whose outputs are its multi-scale features (shallow → deep).

    Found from timm's ``feature_info`` (``features_only`` models built by :func:`wsolkit.backbones.create_backbone`)
    or, for :class:`wsolkit.backbones.SmallCNN`, the last activation before each pooling and the final one.

    Args:
        model: a classifier (e.g. :class:`wsolkit.models.WSOLModel`) or a backbone.

    Returns:
        Fully qualified module names, usable with ``model.get_submodule``.

    Raises:
        WSOLValueError: no supported backbone found (pass the layer names to :class:`FCAM` explicitly).

    Example:
        >>> from wsolkit.backbones import create_backbone
        >>> feature_layers(create_backbone("resnet18"))
        ['body.act1', 'body.layer1', 'body.layer2', 'body.layer3', 'body.layer4']
    """
    if not isinstance(model, nn.Module):
        raise WSOLTypeError(f"`model` must be an nn.Module, got {type(model).__name__}")
    for prefix, module in model.named_modules():
        info = getattr(module, "feature_info", None)
        if info is not None and hasattr(info, "module_name") and hasattr(info, "info"):
            names = dict(module.named_modules())
            out = []
            for i in range(len(info.info)):
                raw = info.module_name(i)
                for cand in (raw.replace(".", "_"), raw):
                    if cand in names:
                        out.append(f"{prefix}.{cand}" if prefix else cand)
                        break
            if out:
                return out
        if isinstance(module, SmallCNN):
            seq = module.features
            out = []
            for i, m in enumerate(seq):
                if isinstance(m, nn.MaxPool2d) and i > 0:
                    out.append(i - 1)
            out.append(len(seq) - 1)
            base = f"{prefix}.features" if prefix else "features"
            return [f"{base}.{i}" for i in out]
    raise WSOLValueError(
        f"could not find multi-scale feature layers in {type(model).__name__}: pass `encoder` as a list of "
        "module names (shallow → deep) or as a module returning a list of feature maps"
    )


class FCAM(nn.Module):
    """F-CAM: a U-Net decoder over the frozen classifier's multi-scale features (NEGEV: same model, other losses).

    The classifier is frozen (``requires_grad=False``, BN/dropout kept in eval whatever the outer mode, forward run
    without autograd) when ``freeze_classifier`` is set; only the decoder trains. The output follows the library
    contract with the decoder's foreground probability as the localization map.

    Args:
        classifier: a model returning :class:`~wsolkit.output.WSOLOutput` (e.g. ``WSOLModel(backbone, GAP(...))``).
        decoder: a :class:`~wsolkit.decoders.unet.UNetDecoder` (or any module ``decoder(features, size)``
            returning ``(B, 2, H, W)`` logits, background first).
        encoder: where the decoder's features come from: ``None`` — hooks on the classifier's backbone levels
            (:func:`feature_layers`); a list of module names of ``classifier`` (shallow → deep); or a module
            mapping the images to a list of feature maps (frozen together with the classifier).
        freeze_classifier: freeze the classifier (and a separate ``encoder``).

    Shape:
        - input: :math:`(B, 3, H, W)`
        - logits: :math:`(B, C)` (the classifier's); cams: :math:`(B, 1, H, W)` foreground probability;
          ``aux["decoder_logits"]``: :math:`(B, 2, H, W)`; ``aux["classifier_cams"]``: :math:`(B, C, h, w)`

    Example:
        >>> from wsolkit.backbones import create_backbone
        >>> from wsolkit.heads import GAP
        >>> from wsolkit.models import WSOLModel
        >>> bb = create_backbone("smallcnn", output_stride=8, width=4)
        >>> model = create_fcam(WSOLModel(bb, GAP(bb.out_channels, 2)))
        >>> out = model(torch.zeros(2, 3, 35, 37))
        >>> out.logits.shape, out.cams.shape, out.aux["decoder_logits"].shape
        (torch.Size([2, 2]), torch.Size([2, 1, 35, 37]), torch.Size([2, 2, 35, 37]))
    """

    def __init__(
        self,
        classifier: nn.Module,
        decoder: nn.Module,
        encoder: nn.Module | Sequence[str] | None = None,
        freeze_classifier: bool = True,
    ):
        super().__init__()
        if not isinstance(classifier, nn.Module):
            raise WSOLTypeError(f"`classifier` must be an nn.Module, got {type(classifier).__name__}")
        if not isinstance(decoder, nn.Module):
            raise WSOLTypeError(f"`decoder` must be an nn.Module, got {type(decoder).__name__}")
        self.classifier = classifier
        self.decoder = decoder
        self.encoder: nn.Module | None = None
        self.layers: list[str] = []
        if encoder is None:
            self.layers = feature_layers(classifier)
        elif isinstance(encoder, nn.Module):
            self.encoder = encoder
        elif isinstance(encoder, Sequence) and not isinstance(encoder, str) and len(encoder) > 0:
            self.layers = [str(n) for n in encoder]
        else:
            raise WSOLTypeError(
                f"`encoder` must be None, a non-empty list of module names or an nn.Module, got {encoder!r}"
            )
        names = dict(classifier.named_modules())
        missing = [n for n in self.layers if n not in names]
        if missing:
            raise WSOLValueError(f"`encoder` names {missing} are not sub-modules of `classifier`")
        self.freeze_classifier = bool(freeze_classifier)
        if self.freeze_classifier:
            for p in self._frozen_parameters():
                p.requires_grad_(False)
            self._frozen_eval()

    def _frozen_parameters(self):
        yield from self.classifier.parameters()
        if self.encoder is not None:
            yield from self.encoder.parameters()

    def _frozen_eval(self) -> None:
        self.classifier.eval()
        if self.encoder is not None:
            self.encoder.eval()

    def train(self, mode: bool = True) -> FCAM:
        super().train(mode)
        if self.freeze_classifier:
            self._frozen_eval()
        return self

    def features(self, x: torch.Tensor) -> tuple[WSOLOutput, list[torch.Tensor]]:
        """The classifier's output and the encoder features (shallow → deep) for images ``x``."""
        enc_training = self.encoder is not None and self.encoder.training
        if self.freeze_classifier and (self.classifier.training or enc_training):
            self._frozen_eval()
        grad = torch.is_grad_enabled() and not self.freeze_classifier
        with torch.set_grad_enabled(grad):
            if self.encoder is not None:
                out = self.classifier(x)
                feats = list(self.encoder(x))
                return out, feats
            store: dict[str, torch.Tensor] = {}
            handles = []
            try:
                for name in self.layers:
                    module = self.classifier.get_submodule(name)
                    handles.append(
                        module.register_forward_hook(lambda m, i, o, name=name: store.__setitem__(name, o))
                    )
                out = self.classifier(x)
            finally:
                for h in handles:
                    h.remove()
            missing = [n for n in self.layers if n not in store]
            if missing:
                raise WSOLValueError(f"encoder layers {missing} were not run by the classifier's forward pass")
            return out, [store[n] for n in self.layers]

    def forward(self, x: torch.Tensor) -> WSOLOutput:
        check_ndim(x, "x", 4, "(B, 3, H, W)")
        check_floating(x, "x")
        out, feats = self.features(x)
        logits = self.decoder(feats, size=x.shape[-2:])
        fg = torch.softmax(logits, dim=1)[:, 1:2]
        return WSOLOutput(out.logits, fg, {"decoder_logits": logits, "classifier_cams": out.cams})

    def extra_repr(self) -> str:
        src = "module" if self.encoder is not None else f"hooks {self.layers}"
        return f"freeze_classifier={self.freeze_classifier}, encoder={src}"


@torch.no_grad()
def encoder_channels(
    classifier: nn.Module, encoder: nn.Module | Sequence[str] | None = None, size: int = 64
) -> tuple[list[int], list[int]]:
    """Channels and reductions of the encoder features of ``classifier`` (one probe forward pass, modes restored).

    Example:
        >>> from wsolkit.backbones import create_backbone
        >>> encoder_channels(create_backbone("resnet18"))
        ([64, 64, 128, 256, 512], [2, 4, 8, 16, 32])
    """
    probe = FCAM(classifier, nn.Identity(), encoder=encoder, freeze_classifier=False)
    was = [m.training for m in probe.modules()]
    probe.eval()
    try:
        _, feats = probe.features(torch.zeros(1, 3, size, size, device=_device(classifier)))
    finally:
        for m, w in zip(probe.modules(), was):
            m.training = w
    return [int(f.shape[1]) for f in feats], [max(int(round(size / f.shape[-1])), 1) for f in feats]


def _device(module: nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


def create_fcam(
    classifier: nn.Module,
    decoder_channels: Sequence[int] | None = None,
    encoder: nn.Module | Sequence[str] | None = None,
    freeze_classifier: bool = True,
) -> FCAM:
    """Build :class:`FCAM` with a :class:`~wsolkit.decoders.unet.UNetDecoder` sized from a probe of the encoder.

    Args:
        classifier: the (trained) classifier.
        decoder_channels: decoder stages; default: the last entries of ``(256, 128, 64, 32, 16)``, one stage per
            skip connection plus one more when the shallowest features are below full resolution.
        encoder: as in :class:`FCAM`.
        freeze_classifier: as in :class:`FCAM`.

    Example:
        >>> from wsolkit.backbones import create_backbone
        >>> from wsolkit.heads import GAP
        >>> from wsolkit.models import WSOLModel
        >>> bb = create_backbone("smallcnn", output_stride=8, width=4)
        >>> create_fcam(WSOLModel(bb, GAP(bb.out_channels, 2))).decoder.decoder_channels
        (64, 32, 16)
    """
    channels, reductions = encoder_channels(classifier, encoder)
    if decoder_channels is None:
        n = len(channels) - 1 + (1 if min(reductions) > 1 else 0)
        n = max(n, 1)
        decoder_channels = _DEFAULT_DECODER[-n:] if n <= len(_DEFAULT_DECODER) else (
            _DEFAULT_DECODER + (16,) * (n - len(_DEFAULT_DECODER))
        )
    decoder = UNetDecoder(channels, decoder_channels).to(_device(classifier))
    return FCAM(classifier, decoder, encoder=encoder, freeze_classifier=freeze_classifier)
