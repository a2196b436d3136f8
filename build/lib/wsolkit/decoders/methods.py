"""The ``fcam`` and ``negev`` registry entries: a U-Net decoder over a trained classifier with its objective."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch.nn as nn

from wsolkit._checks import WSOLTypeError, WSOLValueError, check_int
from wsolkit.decoders.crf import DenseCRFLoss
from wsolkit.decoders.fcam import FCAM, build_decoder
from wsolkit.decoders.losses import FCAMLoss, NEGEVLoss
from wsolkit.decoders.seeds import FCAMSeeder, NEGEVSeeder
from wsolkit.losses.elb import ELB
from wsolkit.method import classifier_num_classes, register_method

__all__ = ["fcam_method", "negev_method", "default_crf"]

_DEFAULT = object()


def default_crf() -> DenseCRFLoss:
    """The CRF term used by default: λ = 5e-8, computed on half-resolution images with the grid filter.

    These values localise on the synthetic benchmark (``docs/benchmarks.md``); the papers use λ = 2e-9 on
    224-pixel crops with the exact (permutohedral) filter. Pass ``crf=DenseCRFLoss(...)`` to change it, or
    ``crf=None`` to drop the term.
    """
    return DenseCRFLoss(weight=5e-8, scale_factor=0.5, method="grid")


def _check_classes(num_classes: int | None, classifier: nn.Module) -> None:
    if num_classes is None:
        return
    num_classes = check_int(num_classes, "num_classes", low=1)
    known = classifier_num_classes(classifier)
    if known is None:  # a wsolkit WSOLModel: its head knows
        known = classifier_num_classes(getattr(classifier, "head", None) or classifier)
    if known is not None and known != num_classes:
        raise WSOLValueError(f"`num_classes`={num_classes} but the classifier has {known} classes")


def _parts(crf: Any, size: Any) -> tuple[DenseCRFLoss | None, ELB | None]:
    crf = default_crf() if crf is _DEFAULT else crf
    size = ELB() if size is _DEFAULT else size
    if crf is not None and not isinstance(crf, DenseCRFLoss):
        raise WSOLTypeError(f"`crf` must be a DenseCRFLoss or None, got {type(crf).__name__}")
    if size is not None and not isinstance(size, ELB):
        raise WSOLTypeError(f"`size` must be a wsolkit.losses.ELB or None, got {type(size).__name__}")
    return crf, size


@register_method("fcam", needs="classifier", family="decoder")
def fcam_method(
    num_classes: int | None = None,
    classifier: nn.Module | None = None,
    seeder: nn.Module | None = None,
    crf: DenseCRFLoss | None = _DEFAULT,  # type: ignore[assignment]
    size: ELB | None = _DEFAULT,  # type: ignore[assignment]
    seed_weight: float = 1.0,
    size_weight: float = 1.0,
    decoder_channels: Sequence[int] | None = None,
    encoder: nn.Module | Sequence[str] | None = None,
    freeze_classifier: bool = True,
    input_normalization: Any = None,
) -> FCAM:
    """F-CAM (Belharbi et al., WACV 2022): ``create_method("fcam", classifier=trained_model, **options)``.

    Objective (:class:`~wsolkit.decoders.FCAMLoss`): CE on seeds drawn from the frozen classifier's CAM of the
    label class + dense CRF + ELB size constraint.

    Args:
        num_classes: checked against the classifier's when given.
        classifier: the trained classifier (a wsolkit method, a timm / torchvision model, a Hugging Face classifier).
        seeder: default ``FCAMSeeder(n_fg=20, n_bg=20, min_p=0.3)``.
        crf: default :func:`default_crf`; ``None`` drops the term.
        size: default ``ELB()`` (call ``model.objective.size.step()`` once per epoch); ``None`` drops the term.
        seed_weight: weight of the seed CE.
        size_weight: weight of the size term.
        decoder_channels: U-Net stages (:func:`~wsolkit.decoders.build_decoder`).
        encoder: where the decoder's features come from (see :class:`~wsolkit.decoders.FCAM`).
        freeze_classifier: keep the classifier frozen (the method's setting).
        input_normalization: the classifier's input normalisation for the CRF (see :class:`~wsolkit.decoders.FCAM`).

    Example:
        >>> import wsolkit
        >>> clf = wsolkit.create_method("gap", 2, backbone="smallcnn")
        >>> m = wsolkit.create_method("fcam", classifier=clf.eval(), crf=None)
        >>> [sorted(s.terms) for s in m.training_steps(torch.rand(2, 3, 32, 32), torch.tensor([0, 1]))]
        [['seeds', 'size']]
    """
    _check_classes(num_classes, classifier)
    crf, size = _parts(crf, size)
    seeder = FCAMSeeder(n_fg=20, n_bg=20, min_p=0.3) if seeder is None else seeder
    objective = FCAMLoss(seeder, crf=crf, size=size, seed_weight=seed_weight, size_weight=size_weight)
    decoder = build_decoder(classifier, decoder_channels, encoder)
    return FCAM(classifier, decoder, encoder=encoder, freeze_classifier=freeze_classifier, objective=objective,
                input_normalization=input_normalization)


@register_method("negev", needs="classifier", family="decoder")
def negev_method(
    num_classes: int | None = None,
    classifier: nn.Module | None = None,
    negative_classes: Sequence[int] = (0,),
    seeder: nn.Module | None = None,
    crf: DenseCRFLoss | None = _DEFAULT,  # type: ignore[assignment]
    size: ELB | None = _DEFAULT,  # type: ignore[assignment]
    seed_weight: float = 1.0,
    size_weight: float = 1.0,
    negative_weight: float = 1.0,
    decoder_channels: Sequence[int] | None = None,
    encoder: nn.Module | Sequence[str] | None = None,
    freeze_classifier: bool = True,
    input_normalization: Any = None,
) -> FCAM:
    """NEGEV (Belharbi et al., MIDL 2022): F-CAM plus negative evidence from images of the negative class(es).

    Objective (:class:`~wsolkit.decoders.NEGEVLoss`): seeds (CAM-probability sampling, default
    ``NEGEVSeeder(n_fg=20, n_bg=20, min_p=0.5)``; ``NEGEVSeeder(sampler="reference")`` samples the background as
    the authors' code does) + CRF + size on images of the other classes; all pixels of negative-class images are
    background. Other arguments as :func:`fcam_method`.

    Args:
        negative_classes: labels of the negative class(es) (e.g. ``(0,)``: normal tissue).
        negative_weight: weight of the negative-evidence CE.

    Example:
        >>> import wsolkit
        >>> clf = wsolkit.create_method("gap", 2, backbone="smallcnn")
        >>> m = wsolkit.create_method("negev", classifier=clf.eval(), crf=None, negative_classes=(0,))
        >>> [sorted(s.terms) for s in m.training_steps(torch.rand(2, 3, 32, 32), torch.tensor([0, 1]))]
        [['negative', 'seeds', 'size']]
    """
    _check_classes(num_classes, classifier)
    crf, size = _parts(crf, size)
    seeder = NEGEVSeeder(n_fg=20, n_bg=20, min_p=0.5) if seeder is None else seeder
    objective = NEGEVLoss(seeder, crf=crf, size=size, negative_classes=negative_classes, seed_weight=seed_weight,
                          size_weight=size_weight, negative_weight=negative_weight)
    decoder = build_decoder(classifier, decoder_channels, encoder)
    return FCAM(classifier, decoder, encoder=encoder, freeze_classifier=freeze_classifier, objective=objective,
                input_normalization=input_normalization)
