"""F-CAM and NEGEV training losses: self-learning CE on seeds, ELB size constraint, negative evidence, totals.

F-CAM (Belharbi et al., WACV 2022): ``L = CE(seeds) + CRF + size``; NEGEV (Belharbi et al., MIDL 2022) adds
negative evidence: images of the negative class (e.g. normal tissue) are supervised as all-background, and the
seed and size terms skip them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from wsolkit._checks import (
    ShapeError,
    WSOLTypeError,
    WSOLValueError,
    check_floating,
    check_int,
    check_integer,
    check_ndim,
    check_number,
    check_same_batch,
    check_same_spatial,
)
from wsolkit.decoders.crf import DenseCRFLoss
from wsolkit.decoders.seeds import seed_map
from wsolkit.losses.elb import ELB, elb
from wsolkit.output import LossOutput, WSOLOutput

__all__ = ["seed_loss", "size_loss", "negative_evidence_loss", "FCAMLoss", "NEGEVLoss"]


def _check_logits(logits: torch.Tensor, name: str = "logits") -> None:
    check_ndim(logits, name, 4, "(B, 2, H, W)")
    check_floating(logits, name)
    if logits.shape[1] != 2:
        raise ShapeError(f"`{name}` must have 2 channels (background, foreground), got {tuple(logits.shape)}")


def _check_keep(keep: torch.Tensor | None, batch: int, name: str = "keep") -> torch.Tensor | None:
    if keep is None:
        return None
    if not isinstance(keep, torch.Tensor) or keep.dtype != torch.bool:
        raise WSOLTypeError(f"`{name}` must be a bool tensor, got {getattr(keep, 'dtype', type(keep).__name__)}")
    if keep.shape != (batch,):
        raise ShapeError(f"`{name}` must have shape ({batch},), got {tuple(keep.shape)}")
    return keep


def seed_loss(logits: torch.Tensor, seeds: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """Self-learning cross-entropy on the seeded pixels (mean over seeds; 0 when there is none).

    Shape:
        - logits: :math:`(B, 2, H, W)`; seeds: :math:`(B, H, W)` int in ``{0, 1, ignore_index}``

    Example:
        >>> logits = torch.zeros(1, 2, 2, 2)
        >>> seeds = torch.tensor([[[1, 255], [0, 255]]])
        >>> round(float(seed_loss(logits, seeds)), 4)  # log 2
        0.6931
    """
    _check_logits(logits)
    check_integer(seeds, "seeds")
    check_ndim(seeds, "seeds", 3, "(B, H, W)")
    check_same_batch(logits, "logits", seeds, "seeds")
    check_same_spatial(logits, "logits", seeds, "seeds")
    seeds = seeds.long()
    valid = seeds != ignore_index
    ce = F.cross_entropy(logits, torch.where(valid, seeds, torch.zeros_like(seeds)), reduction="none")
    return (ce * valid).sum() / valid.sum().clamp_min(1)


def size_loss(probs: torch.Tensor, barrier: ELB | float, keep: torch.Tensor | None = None) -> torch.Tensor:
    """ELB size constraints ``−Σ S_fg ≤ 0`` and ``−Σ S_bg ≤ 0`` per image (neither region empty).

    The ``(n, 2)`` constraint values of the kept images go through the barrier, reduced by its own ``reduction``:
    ``"mean"`` (the default of :class:`~wsolkit.losses.ELB`) averages over images **and** over the two
    constraints, ``"sum"`` sums both. ``"mean"`` is the reference: ``sbelharbi/fcam-wsol``,
    ``dlib/losses/core.py``, ``MaxSizePositiveFcams.forward`` adds the batch means of the two constraints
    (its ``ELB.forward`` returns a mean) and multiplies by ½. (Before this release wsolkit summed the two
    penalties — twice the reference; ``size_weight=2`` reproduces it.) A float ``barrier`` is ``ELB(t0=barrier)``.

    Args:
        probs: background/foreground probabilities.
        barrier: an :class:`~wsolkit.losses.ELB` (its ``t`` and ``reduction`` apply) or a barrier parameter ``t``.
        keep: images to include (e.g. not the negative class); ``None``: all. 0 (with a graph) when none is kept.

    Shape:
        - probs: :math:`(B, 2, H, W)`; keep: :math:`(B,)` bool

    Example:
        >>> probs = torch.full((1, 2, 2, 2), 0.5)
        >>> round(float(size_loss(probs, 1.0)), 4)  # ½ · 2 · (−log 2)
        -0.6931
    """
    _check_logits(probs, "probs")
    keep = _check_keep(keep, probs.shape[0])
    if isinstance(barrier, ELB):
        if barrier.reduction == "none":
            raise WSOLValueError("`size`: an ELB with reduction='none' gives no scalar loss; use 'mean' or 'sum'")
        fn = barrier
    else:
        t = check_number(barrier, "barrier", low=0.0, low_inclusive=False)

        def fn(z: torch.Tensor) -> torch.Tensor:
            return elb(z, t).mean()

    sums = probs.flatten(2).sum(-1)  # (B, 2)
    if keep is not None:
        if not bool(keep.any()):
            return probs.sum() * 0.0
        sums = sums[keep]
    return fn(-sums)


def negative_evidence_loss(logits: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """NEGEV negative evidence: pixels of negative-class images are all background (mean CE over their pixels).

    Args:
        logits: decoder logits (background, foreground).
        negative: which images belong to the negative class. 0 when none does.

    Shape:
        - logits: :math:`(B, 2, H, W)`; negative: :math:`(B,)` bool

    Example:
        >>> round(float(negative_evidence_loss(torch.zeros(2, 2, 3, 3), torch.tensor([True, False]))), 4)
        0.6931
    """
    _check_logits(logits)
    negative = _check_keep(negative, logits.shape[0], "negative")
    ce = F.cross_entropy(logits, torch.zeros_like(logits[:, 0], dtype=torch.long), reduction="none")
    per_image = ce.flatten(1).mean(1)
    return (per_image * negative).sum() / negative.sum().clamp_min(1)


class FCAMLoss(nn.Module):
    """F-CAM objective over an :class:`~wsolkit.decoders.fcam.FCAM` output: seeds CE + dense CRF + ELB size.

    Seeds are drawn (every call) from the frozen classifier's CAM of the target class (:func:`seed_map`).

    Args:
        seeder: an :class:`~wsolkit.decoders.seeds.FCAMSeeder` or :class:`~wsolkit.decoders.seeds.NEGEVSeeder`.
        crf: a :class:`~wsolkit.decoders.crf.DenseCRFLoss` (its ``weight`` is λ) or ``None``.
        size: an :class:`~wsolkit.losses.elb.ELB` (its ``t`` and ``reduction`` apply, see :func:`size_loss`; call
            ``size.step()`` once per epoch) or ``None``.
        seed_weight: weight of the seed CE.
        size_weight: weight of the size term.

    Example:
        >>> from wsolkit.decoders import DenseCRFLoss, FCAMSeeder
        >>> loss_fn = FCAMLoss(FCAMSeeder(n_fg=2, n_bg=2), crf=DenseCRFLoss(weight=1e-3), size=ELB())
        >>> out = WSOLOutput(torch.zeros(2, 2), torch.zeros(2, 1, 8, 8),
        ...                  {"decoder_logits": torch.zeros(2, 2, 8, 8), "classifier_cams": torch.rand(2, 2, 2, 2)})
        >>> total, terms = loss_fn(out, torch.tensor([0, 1]), 255 * torch.rand(2, 3, 8, 8))
        >>> sorted(terms)
        ['crf', 'seeds', 'size']
    """

    def __init__(
        self,
        seeder: nn.Module,
        crf: DenseCRFLoss | None = None,
        size: ELB | None = None,
        seed_weight: float = 1.0,
        size_weight: float = 1.0,
    ):
        super().__init__()
        if not isinstance(seeder, nn.Module):
            raise WSOLTypeError(f"`seeder` must be a seeder module, got {type(seeder).__name__}")
        if crf is not None and not isinstance(crf, DenseCRFLoss):
            raise WSOLTypeError(f"`crf` must be a DenseCRFLoss or None, got {type(crf).__name__}")
        if size is not None and not isinstance(size, ELB):
            raise WSOLTypeError(f"`size` must be a wsolkit.losses.ELB or None, got {type(size).__name__}")
        if size is not None and size.reduction == "none":
            raise WSOLValueError("`size`: an ELB with reduction='none' gives no scalar loss; use 'mean' or 'sum'")
        self.seeder = seeder
        self.crf = crf
        self.size = size
        self.seed_weight = check_number(seed_weight, "seed_weight", low=0.0)
        self.size_weight = check_number(size_weight, "size_weight", low=0.0)

    def _negative(self, labels: torch.Tensor) -> torch.Tensor | None:
        return None

    def forward(
        self, output: WSOLOutput, labels: torch.Tensor, images: torch.Tensor | None = None
    ) -> LossOutput:
        """Total loss and its (detached) terms.

        Args:
            output: :class:`FCAM` output (``aux["decoder_logits"]``, ``aux["classifier_cams"]``).
            labels: ``(B,)`` image-level labels (seeds use the CAM of this class).
            images: ``(B, 3, H, W)`` colour images in ``[0, 255]`` for the CRF term (needed when ``crf`` is set).
        """
        if not isinstance(output, WSOLOutput) or "decoder_logits" not in output.aux:
            raise WSOLTypeError("`output` must be the WSOLOutput of an FCAM model (aux['decoder_logits'] missing)")
        logits = output.aux["decoder_logits"]
        _check_logits(logits, "output.aux['decoder_logits']")
        check_integer(labels, "labels")
        b = logits.shape[0]
        if labels.shape != (b,):
            raise ShapeError(f"`labels` must have shape ({b},), got {tuple(labels.shape)}")
        negative = self._negative(labels)
        keep = None if negative is None else ~negative
        cam = seed_map(output.aux["classifier_cams"].float(), labels, logits.shape[-2:])
        seeds = self.seeder(cam)
        if keep is not None:
            seeds = torch.where(keep.view(b, 1, 1), seeds, torch.full_like(seeds, self.seeder.ignore_index))
        terms = {"seeds": self.seed_weight * seed_loss(logits, seeds, self.seeder.ignore_index)}
        probs = torch.softmax(logits, dim=1)
        if self.crf is not None:
            if images is None:
                raise WSOLTypeError("`images` (B, 3, H, W) in [0, 255] are required for the CRF term")
            terms["crf"] = self.crf(probs, images)
        if self.size is not None:
            terms["size"] = self.size_weight * size_loss(probs, self.size, keep)
        self._extra_terms(logits, negative, terms)
        total = sum(terms.values())
        return LossOutput(total, {k: v.detach() for k, v in terms.items()})

    def _extra_terms(self, logits, negative, terms) -> None:
        return None


class NEGEVLoss(FCAMLoss):
    """NEGEV objective: :class:`FCAMLoss` plus negative evidence; seeds and size skip negative-class images.

    Args:
        seeder: usually a :class:`~wsolkit.decoders.seeds.NEGEVSeeder`.
        crf: as in :class:`FCAMLoss`.
        size: as in :class:`FCAMLoss`.
        negative_classes: labels of the negative class(es) (e.g. ``(0,)``: normal tissue).
        seed_weight: weight of the seed CE.
        size_weight: weight of the size term.
        negative_weight: weight of the negative-evidence CE.

    Example:
        >>> from wsolkit.decoders import NEGEVSeeder
        >>> loss_fn = NEGEVLoss(NEGEVSeeder(n_fg=2, n_bg=2), negative_classes=(0,))
        >>> out = WSOLOutput(torch.zeros(2, 2), torch.zeros(2, 1, 8, 8),
        ...                  {"decoder_logits": torch.zeros(2, 2, 8, 8), "classifier_cams": torch.rand(2, 2, 2, 2)})
        >>> total, terms = loss_fn(out, torch.tensor([0, 1]))
        >>> sorted(terms)
        ['negative', 'seeds']
    """

    def __init__(
        self,
        seeder: nn.Module,
        crf: DenseCRFLoss | None = None,
        size: ELB | None = None,
        negative_classes: Sequence[int] = (0,),
        seed_weight: float = 1.0,
        size_weight: float = 1.0,
        negative_weight: float = 1.0,
    ):
        super().__init__(seeder, crf, size, seed_weight, size_weight)
        if isinstance(negative_classes, int) or not isinstance(negative_classes, Sequence):
            raise WSOLTypeError(f"`negative_classes` must be a sequence of ints, got {negative_classes!r}")
        self.negative_classes = tuple(check_int(c, "negative_classes", low=0) for c in negative_classes)
        self.negative_weight = check_number(negative_weight, "negative_weight", low=0.0)

    def _negative(self, labels: torch.Tensor) -> torch.Tensor:
        neg = torch.zeros_like(labels, dtype=torch.bool)
        for c in self.negative_classes:
            neg |= labels == c
        return neg

    def _extra_terms(self, logits, negative, terms) -> None:
        terms["negative"] = self.negative_weight * negative_evidence_loss(logits, negative)

    def extra_repr(self) -> str:
        return f"negative_classes={self.negative_classes}, negative_weight={self.negative_weight}"
