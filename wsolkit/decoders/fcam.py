"""F-CAM / NEGEV model: a U-Net decoder trained over a frozen WSOL classifier (Belharbi et al., WACV 2022, MIDL 2022).

The decoder reads multi-scale features of the classifier's own backbone. By default they are collected with forward
hooks on the backbone's feature levels during the classifier's forward pass (one pass gives the logits, the CAMs
and the skip features); the hooks exist only inside :meth:`FCAM.forward`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

from wsolkit._checks import WSOLTypeError, WSOLValueError, check_floating, check_ndim
from wsolkit._deprecation import warn_deprecated
from wsolkit._modules import last_linear
from wsolkit.backbones import SmallCNN
from wsolkit.decoders._preprocessing import input_normalization_of, unnormalize_to_255
from wsolkit.decoders.unet import UNetDecoder
from wsolkit.method import WSOLMethod
from wsolkit.output import LossOutput, WSOLOutput

__all__ = ["feature_layers", "encoder_channels", "FCAM", "build_decoder", "create_fcam"]

_DEFAULT_DECODER = (256, 128, 64, 32, 16)


def feature_layers(model: nn.Module) -> list[str]:
    """Names of the sub-modules of ``model`` whose outputs are its multi-scale features (shallow → deep).

    Found from timm's ``feature_info`` (``features_only`` models built by :func:`wsolkit.backbones.create_backbone`,
    or a timm classifier's list of levels) or, for :class:`wsolkit.backbones.SmallCNN`, the last activation before
    each pooling and the final one.

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
        if isinstance(info, list) and info and all(isinstance(i, dict) and "module" in i for i in info):
            names = dict(module.named_modules())  # a timm classifier (not features_only): list of dicts
            out = [f"{prefix}.{i['module']}" if prefix else i["module"] for i in info if i["module"] in names]
            if out:
                return out
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


class FCAM(WSOLMethod):
    """F-CAM / NEGEV: a U-Net decoder over a frozen classifier's multi-scale features, trained with its objective.

    Build it with ``wsolkit.create_method("fcam" | "negev", classifier=...)``. The classifier is frozen
    (``requires_grad=False``, BN/dropout kept in eval whatever the outer mode, forward run without autograd) when
    ``freeze_classifier`` is set; only the decoder trains. ``forward(x, labels=None)`` returns the classifier's
    logits and, as ``cams``, the decoder's foreground logit ``log(p_fg / p_bg)`` (raw evidence, full resolution);
    ``labels`` are not used by the forward pass. :meth:`loss` (and so ``training_steps``) is the ``objective``
    (:class:`~wsolkit.decoders.FCAMLoss` / :class:`~wsolkit.decoders.NEGEVLoss`) with seeds drawn from the frozen
    classifier's CAM of the label class.

    Classifier CAMs: a classifier returning :class:`~wsolkit.output.WSOLOutput` (a wsolkit method) gives its
    ``cams``; for a plain classifier (timm / torchvision: a tensor of logits; Hugging Face: an output with
    ``.logits``) the CAM of Zhou et al. is read off its last linear layer applied to the deepest encoder features
    (``W_c · F``).

    CRF images: the CRF compares colours in ``[0, 255]``, so the classifier's own input normalisation is undone:
    ``input_normalization`` (a ``(mean, std)`` pair, a Hugging Face image processor, a torchvision weights enum or
    a mapping with ``mean`` / ``std``) or else the normalisation the classifier declares (timm ``pretrained_cfg`` /
    ``default_cfg`` of the model or a sub-module). Fallback when neither exists: inputs are taken to be in
    ``[0, 1]`` (no normalisation), with a warning when the objective has a CRF term.

    Args:
        classifier: the trained classifier.
        decoder: a :class:`~wsolkit.decoders.unet.UNetDecoder` (or any module ``decoder(features, size)``
            returning ``(B, 2, H, W)`` logits, background first).
        encoder: where the decoder's features come from: ``None`` — hooks on the classifier's feature levels
            (:func:`feature_layers`); a list of module names of ``classifier`` (shallow → deep); or a module
            mapping the images to a list of feature maps (frozen together with the classifier).
        freeze_classifier: freeze the classifier (and a separate ``encoder``).
        objective: the training objective (``None``: the module only predicts; :meth:`loss` raises).
        input_normalization: see above.

    Shape:
        - input: :math:`(B, 3, H, W)`
        - logits: :math:`(B, K)` (the classifier's); cams: :math:`(B, 1, H, W)` foreground logit;
          ``aux["probs"]``: :math:`(B, 1, H, W)` foreground probability; ``aux["decoder_logits"]``:
          :math:`(B, 2, H, W)`; ``aux["classifier_cams"]``: :math:`(B, K, h, w)`

    Example:
        >>> import wsolkit
        >>> clf = wsolkit.create_method("gap", 2, backbone="smallcnn")
        >>> model = wsolkit.create_method("fcam", classifier=clf, crf=None)
        >>> out = model(torch.rand(2, 3, 35, 37))
        >>> out.logits.shape, out.cams.shape, out.aux["probs"].shape
        (torch.Size([2, 2]), torch.Size([2, 1, 35, 37]), torch.Size([2, 1, 35, 37]))
    """

    def __init__(
        self,
        classifier: nn.Module,
        decoder: nn.Module,
        encoder: nn.Module | Sequence[str] | None = None,
        freeze_classifier: bool = True,
        objective: nn.Module | None = None,
        input_normalization: Any = None,
    ):
        super().__init__()
        if not isinstance(classifier, nn.Module):
            raise WSOLTypeError(f"`classifier` must be an nn.Module, got {type(classifier).__name__}")
        if not isinstance(decoder, nn.Module):
            raise WSOLTypeError(f"`decoder` must be an nn.Module, got {type(decoder).__name__}")
        if objective is not None and not isinstance(objective, nn.Module):
            raise WSOLTypeError(f"`objective` must be an FCAMLoss / NEGEVLoss module, got {type(objective).__name__}")
        self.classifier = classifier
        self.decoder = decoder
        self.objective = objective
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
        norm = input_normalization_of(classifier, input_normalization)
        self.input_normalization = norm
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

    def train(self, mode: bool = True) -> FCAM:  # the frozen classifier stays in eval mode
        super().train(mode)
        if self.freeze_classifier:
            self._frozen_eval()
        return self

    def on_epoch_end(self, epoch: int) -> None:
        """Advance the ELB size barrier of the objective (``t ← min(t·factor, t_max)``), once per epoch as the
        authors do; no effect without a size term."""
        super().on_epoch_end(epoch)
        size = getattr(self.objective, "size", None)
        if size is not None:
            size.step()

    def _lifecycle_work(self) -> set[str]:
        return {"on_epoch_end"} if getattr(self.objective, "size", None) is not None else set()

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

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> WSOLOutput:
        check_ndim(x, "x", 4, "(B, 3, H, W)")
        check_floating(x, "x")
        out, feats = self.features(x)
        logits, cams = self._logits_and_cams(out, feats)
        dec = self.decoder(feats, size=x.shape[-2:])
        fg_logit = (dec[:, 1] - dec[:, 0])[:, None]  # log(p_fg / p_bg)
        probs = torch.softmax(dec, dim=1)[:, 1:2]
        return WSOLOutput(logits, fg_logit, {"probs": probs, "decoder_logits": dec, "classifier_cams": cams})

    def _logits_and_cams(self, out: Any, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(out, WSOLOutput):
            return out.logits, out.cams
        logits = out if isinstance(out, torch.Tensor) else getattr(out, "logits", None)
        if not isinstance(logits, torch.Tensor):
            raise WSOLTypeError(
                f"the classifier returned {type(out).__name__}: expected a WSOLOutput, logits or an output with "
                f"`.logits`"
            )
        fc = _last_linear(self.classifier)
        f = feats[-1]
        if fc is None or fc.in_features != f.shape[1] or fc.out_features != logits.shape[1]:
            raise WSOLValueError(
                f"cannot read the CAM of {type(self.classifier).__name__}: no last linear layer matching its deepest "
                f"features {tuple(f.shape)} and logits {tuple(logits.shape)}; wrap it with a wsolkit method"
            )
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_classifier):
            cams = torch.einsum("kc,bchw->bkhw", fc.weight.to(f.dtype), f)  # CAM of Zhou et al.: W_c · F
        return logits, cams

    def loss(self, output: WSOLOutput, labels: torch.Tensor, x: torch.Tensor | None = None) -> LossOutput:
        """The objective on one output; ``x`` (the model's input batch) feeds the CRF after un-normalisation."""
        if self.objective is None:
            raise WSOLValueError("this FCAM has no `objective`: build it with wsolkit.create_method('fcam', ...)")
        images = None
        if getattr(self.objective, "crf", None) is not None:
            if x is None:
                raise WSOLValueError("`x` (the input batch) is needed for the CRF term")
            images = unnormalize_to_255(x.detach(), self.input_normalization)
        return self.objective(output, labels, images)

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


def build_decoder(
    classifier: nn.Module,
    decoder_channels: Sequence[int] | None = None,
    encoder: nn.Module | Sequence[str] | None = None,
) -> UNetDecoder:
    """A :class:`~wsolkit.decoders.unet.UNetDecoder` sized from a probe of the classifier's encoder features.

    Args:
        classifier: the (trained) classifier.
        decoder_channels: decoder stages; default: the last entries of ``(256, 128, 64, 32, 16)``, one stage per
            skip connection plus one more when the shallowest features are below full resolution.
        encoder: as in :class:`FCAM`.

    Example:
        >>> import wsolkit
        >>> bb = wsolkit.create_backbone("smallcnn", output_stride=8, width=4)
        >>> build_decoder(wsolkit.create_method("gap", 2, backbone=bb)).decoder_channels
        (64, 32, 16)
    """
    channels, reductions = encoder_channels(classifier, encoder)
    if decoder_channels is None:
        n = len(channels) - 1 + (1 if min(reductions) > 1 else 0)
        n = max(n, 1)
        decoder_channels = _DEFAULT_DECODER[-n:] if n <= len(_DEFAULT_DECODER) else (
            _DEFAULT_DECODER + (16,) * (n - len(_DEFAULT_DECODER))
        )
    return UNetDecoder(channels, decoder_channels).to(_device(classifier))


def create_fcam(
    classifier: nn.Module,
    decoder_channels: Sequence[int] | None = None,
    encoder: nn.Module | Sequence[str] | None = None,
    freeze_classifier: bool = True,
) -> FCAM:
    """Deprecated: use ``wsolkit.create_method("fcam", classifier=classifier, ...)`` (which also sets the
    objective). This alias builds an :class:`FCAM` without objective."""
    warn_deprecated("wsolkit.decoders.create_fcam", "wsolkit.create_method('fcam' or 'negev', classifier=...)")
    decoder = build_decoder(classifier, decoder_channels, encoder)
    return FCAM(classifier, decoder, encoder=encoder, freeze_classifier=freeze_classifier)


def _last_linear(model: nn.Module) -> nn.Linear | None:
    """The classification layer of a timm / torchvision / Hugging Face classifier (None if it has none)."""
    return last_linear(model, strict=False)
