"""MaxMin: localizer–classifier trained with min-max entropy and recursive erasing (Belharbi et al.)."""

from __future__ import annotations

import contextlib
import copy
import warnings
from typing import Any

import torch
import torch.nn as nn

from wsolkit._checks import (
    ShapeError,
    WSOLTypeError,
    WSOLValueError,
    check_choice,
    check_floating,
    check_int,
    check_labels,
    check_ndim,
    check_number,
)
from wsolkit.heads import create_head, list_heads
from wsolkit.losses.elb import ELB
from wsolkit.maxmin.losses import localizer_ce, negative_uniform_ce, positive_ce, size_prior
from wsolkit.maxmin.mask import maxmin_mask
from wsolkit.maxmin.trust import accumulate_mask, trust_coefficients
from wsolkit.models import WSOLModel
from wsolkit.output import WSOLOutput

__all__ = ["MaxMin", "build_maxmin", "maxmin_train_step", "WILDCAT_DEFAULTS"]

#: Head hyper-parameters of the paper (App. B.2): 5 modalities, k⁺ = k⁻ = 0.09, α = 0, dropout 0.75 (GlaS).
WILDCAT_DEFAULTS: dict[str, Any] = {"modalities": 5, "kmax": 0.09, "kmin": 0.09, "alpha": 0.0, "dropout": 0.75}

_STAGES = ("infer", "localizer", "classifier")


class MaxMin(nn.Module):
    """Localizer ``M`` + classifier ``C`` of the min-max entropy framework.

    Inference (``forward(x)``): ``M(x)`` gives class maps ``A`` and posteriors ``p̂ˢ``; the mask
    ``R⁺ = sigmoid(ω(T↑ − σ′))`` (eqs. 10-11, :func:`~wsolkit.maxmin.maxmin_mask`); ``C`` classifies ``x ⊙ R⁺``.
    Training (:meth:`train_step`): recursive erasing with trust coefficients (eqs. 12-14, Alg. 1) builds the
    accumulated mask ``R⁺*``; the loss is eq. 9 (eq. 3 on ``x⊙R⁺*``, eq. 6 on ``x⊙R⁻*``, eq. 8 on ``x`` and on the
    trusted erased images), plus optional TMI size priors.

    Trust at ``t = 0`` and inference: eq. 13 holds "∀t ≥ 0", so in training the first mask enters ``R⁺*``
    scaled by ``Ψ(0, i) = p̂ˢ(y_i|x_i)`` (0 when ``M`` misclassifies ``x_i``), as in Alg. 1; this is kept. At
    inference no label is known and no erasing runs (Sec. 3.4, Fig. 2): ``C`` classifies ``x ⊙ R⁺`` (eq. 3 with
    eq. 11's mask). The scale difference vanishes as eq. 8 drives ``p̂ˢ(y|x) → 1``; measured on synthetic GlaS,
    neither rescaling the inference mask by the label-free ``max_k p̂ˢ(k|x)`` nor dropping the scale in training
    helped ``C``'s accuracy — the gap came from the batch-norm statistics below.

    Batch-norm statistics: ``M`` sees ``x`` and ``C`` sees ``x⊙R⁺``, two different input distributions. When the
    two networks share batch-norm layers (the shared backbone of :func:`build_maxmin`), ``C`` keeps its own running
    statistics of those layers (buffers ``classifier_bn_stats.*``, in the state dict) and every pass of ``C``
    (training and inference) runs inside :meth:`classifier_statistics`; ``M`` keeps the layers' own. With one
    mixed set of statistics the eval-mode ``C`` normalised ``x⊙R⁺`` with statistics pooled over ``x`` and
    ``x⊙R⁺`` and its accuracy fell far below the training-mode one. After training, call
    :meth:`recalibrate_statistics` so that each network's statistics are exact averages over its inference inputs.

    Args:
        localizer: ``M``, a module ``x -> WSOLOutput`` (e.g. :class:`~wsolkit.models.WSOLModel`).
        classifier: ``C``, a module ``x -> WSOLOutput``; may share the backbone module with ``M``.
        u: maximum erasing depth (``u = 0``: no erasing; paper: 4).
        sigma: decay σ of the step trust ``exp(−t/σ)`` (paper: 10).
        omega: sigmoid sharpness ω of eq. 11 (paper: 8).
        sigma_prime: sigmoid offset σ′ of eq. 11 (paper: 0.5).
        detach_mask: ``True`` (paper): the mask is input data for ``C``, ``M`` learns from eq. 8 only.
            ``False`` (TMI variant): gradients of ``C``'s losses (and size priors) reach ``M`` through the mask of
            step 0 (the erasing steps' masks stay detached).
        weights: ``(w⁺, w⁻, wˢ)`` of eq. 9.
        size_prior: an :class:`~wsolkit.losses.ELB` on ``−ΣR⁺*`` and ``−ΣR⁻*`` (needs ``detach_mask=False``);
            call ``size_prior.step()`` once per epoch.
        size_weight: weight of the size priors.

    Shape:
        - input: :math:`(B, 3, H, W)`
        - logits: :math:`(B, C)` (``C`` on ``x⊙R⁺``); cams: :math:`(B, C, h, w)` (the localizer's class maps);
          ``aux["mask"]``: :math:`(B, H, W)` (``R⁺``), ``aux["localizer_logits"]``: :math:`(B, C)`,
          ``aux["classifier_cams"]``: the classifier's maps on ``x⊙R⁺``.

    Example:
        >>> from wsolkit.backbones import create_backbone
        >>> model = build_maxmin(create_backbone("smallcnn", output_stride=8, width=8), num_classes=2, head="gap")
        >>> x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 1])
        >>> logs = model.train_step(x, y)  # gradients are now in model.parameters()
        >>> sorted(logs)[:3], model(x).aux["mask"].shape
        (['loc', 'loc_erasing', 'loss'], torch.Size([2, 32, 32]))
    """

    def __init__(
        self,
        localizer: nn.Module,
        classifier: nn.Module,
        u: int = 4,
        sigma: float = 10.0,
        omega: float = 8.0,
        sigma_prime: float = 0.5,
        detach_mask: bool = True,
        weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
        size_prior: ELB | None = None,
        size_weight: float = 1.0,
    ):
        super().__init__()
        for name, m in (("localizer", localizer), ("classifier", classifier)):
            if not isinstance(m, nn.Module):
                raise WSOLTypeError(f"`{name}` must be an nn.Module returning WSOLOutput, got {type(m).__name__}")
            _check_widths(m, name)
        self.localizer = localizer
        self.classifier = classifier
        self.u = check_int(u, "u", low=0)
        self.sigma = check_number(sigma, "sigma", low=0.0, low_inclusive=False)
        self.omega = check_number(omega, "omega", low=0.0, low_inclusive=False)
        self.sigma_prime = check_number(sigma_prime, "sigma_prime")
        if not isinstance(detach_mask, bool):
            raise WSOLTypeError(f"`detach_mask` must be a bool, got {type(detach_mask).__name__}")
        self.detach_mask = detach_mask
        if len(tuple(weights)) != 3:
            raise WSOLValueError(f"`weights` must be (w_pos, w_neg, w_loc), got {weights!r}")
        self.weights = tuple(check_number(w, f"weights[{i}]", low=0.0) for i, w in enumerate(weights))
        if size_prior is not None:
            if not isinstance(size_prior, ELB):
                raise WSOLTypeError(f"`size_prior` must be a wsolkit.losses.ELB, got {type(size_prior).__name__}")
            if detach_mask:
                raise WSOLValueError("`size_prior` acts on the localizer through the mask: use detach_mask=False")
        self.size_prior = size_prior
        self.size_weight = check_number(size_weight, "size_weight", low=0.0)
        # Batch-norm layers shared by M and C (shared backbone) keep one set of running statistics per network:
        # M normalises x, C normalises x⊙R⁺, two different input distributions.
        loc_ids = {id(m) for m in localizer.modules()}
        self._shared_bns = [
            m for m in classifier.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats and id(m) in loc_ids
        ]
        self.classifier_bn_stats = _BNStats(self._shared_bns)

    def mask(self, out: WSOLOutput, size: tuple[int, int], detach: bool = True) -> torch.Tensor:
        """``R⁺`` (eqs. 10-11) from a localizer output, ``(B, 1, H, W)``."""
        cams, logits = out.cams.float(), out.logits.float()
        if detach:
            cams, logits = cams.detach(), logits.detach()
        return maxmin_mask(cams, logits, size, self.omega, self.sigma_prime)

    @contextlib.contextmanager
    def classifier_statistics(self):
        """Within this context the batch-norm layers shared with ``M`` use (and update) ``C``'s own statistics.

        ``C`` is always run inside it by :meth:`forward` and :func:`maxmin_train_step`; use it when calling
        ``model.classifier`` directly. No effect when ``M`` and ``C`` share no batch-norm layer.
        """
        with self.classifier_bn_stats.swapped(self._shared_bns):
            yield

    @torch.no_grad()
    def recalibrate_statistics(self, images: torch.Tensor, batch_size: int = 32) -> None:
        """Recompute the batch-norm running statistics with the final weights, as exact averages over ``images``.

        First ``M``'s statistics from ``M(x)``, then ``C``'s from ``C(x ⊙ R⁺)`` with ``R⁺`` of the recalibrated
        eval-mode ``M`` — the inputs inference feeds to each network. Only batch-norm layers change (other layers,
        e.g. dropout, stay in eval mode); the training mode is restored. Useful after short trainings, where the
        exponential running averages lag behind fast-changing weights (measured: eval accuracy 55-80 % vs 97-99 %
        with batch statistics after 30 steps).

        Args:
            images: standardised images (the inputs of :meth:`forward`).
            batch_size: images per pass (each batch counts equally in the averages).

        Shape:
            - images: :math:`(N, 3, H, W)`
        """
        _check_images(images, "images")
        batch_size = check_int(batch_size, "batch_size", low=1)
        was_training = self.training
        self.eval()

        def bns(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
            return [m for m in module.modules()
                    if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]

        @contextlib.contextmanager
        def cumulative(layers: list[nn.modules.batchnorm._BatchNorm]):
            momenta = [m.momentum for m in layers]
            for m in layers:
                m.reset_running_stats()
                m.momentum = None  # cumulative average
                m.train()
            try:
                yield
            finally:
                for m, mom in zip(layers, momenta, strict=True):
                    m.momentum = mom
                    m.eval()

        batches = [images[i : i + batch_size] for i in range(0, images.shape[0], batch_size)]
        try:
            with cumulative(bns(self.localizer)):
                for xb in batches:
                    self.localizer(xb)
            masked = []
            for xb in batches:
                r = self.mask(self.localizer(xb), tuple(xb.shape[-2:]))
                masked.append(xb * r.to(xb.dtype))
            with self.classifier_statistics(), cumulative(bns(self.classifier)):
                for z in masked:
                    self.classifier(z)
        finally:
            self.train(was_training)

    def forward(self, x: torch.Tensor, *more: torch.Tensor, stage: str = "infer") -> Any:
        """Inference (``stage="infer"``) → :class:`WSOLOutput`.

        Training stages used by :func:`maxmin_train_step` (so that DDP sees one forward per pass): ``"localizer"``
        → ``M(x)``, or ``M(more[0])`` for an erased image (batch-norm statistics not updated); ``"classifier"`` →
        ``(C(x), C(more[0]), ...)`` (only ``C(x)`` updates batch-norm statistics).
        """
        stage = check_choice(stage, "stage", _STAGES)
        _check_images(x, "x")
        if stage == "localizer":  # more = (), or (x*,) for an erasing step: batch statistics only
            if more:
                with _batch_stats_only(self.localizer):
                    return self.localizer(more[0])
            return self.localizer(x)
        if stage == "classifier":  # C(x⊙R⁺) updates the BN statistics; C(x⊙R⁻) uses batch statistics only
            with self.classifier_statistics():
                first = self.classifier(x)
                with _batch_stats_only(self.classifier):
                    return (first, *(self.classifier(z) for z in more))
        loc = self.localizer(x)
        r = self.mask(loc, tuple(x.shape[-2:]), detach=True)
        with self.classifier_statistics():
            out = self.classifier(x * r.to(x.dtype))
        if out.logits.shape != loc.logits.shape:
            raise ShapeError(f"localizer and classifier disagree on classes: logits {tuple(loc.logits.shape)} vs "
                             f"{tuple(out.logits.shape)}")
        aux = {"mask": r[:, 0], "localizer_logits": loc.logits, "classifier_cams": out.cams}
        return WSOLOutput(out.logits, loc.cams, aux)

    def train_step(
        self, x: torch.Tensor, labels: torch.Tensor, scaler: torch.amp.GradScaler | None = None
    ) -> dict[str, torch.Tensor]:
        """One training step (see :func:`maxmin_train_step`); gradients are accumulated into the parameters."""
        return maxmin_train_step(self, x, labels, scaler)

    def extra_repr(self) -> str:
        return (f"u={self.u}, sigma={self.sigma}, omega={self.omega}, sigma_prime={self.sigma_prime}, "
                f"detach_mask={self.detach_mask}, weights={self.weights}")


def maxmin_train_step(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    scaler: torch.amp.GradScaler | None = None,
) -> dict[str, torch.Tensor]:
    """One MaxMin training step with recursive erasing (Alg. 1); gradients accumulate in the parameters.

    For ``t = 0..u``: forward the current image ``x*`` in ``M``; compute ``R⁺ᵗ`` and the trusts ``Ψ(t, ·)``
    (eqs. 13-14); back-propagate eq. 8 at once (the graph of step ``t`` is freed before step ``t+1``, so memory
    does not grow with ``u``) — at ``t = 0`` for every sample (eq. 9), at ``t >= 1`` only for samples with
    ``Ψ(t, i) ≠ 0`` (Alg. 1, l. 10-12); ``R⁺* ← max(R⁺*, Ψ·R⁺ᵗ)`` (eq. 12); ``x* ← x* ⊙ (1 − R⁺*)``. Stops
    after ``t = u`` or as soon as every trust is 0 (a zero trust stays zero). Then ``C`` classifies
    ``x ⊙ R⁺*`` (eq. 3) and ``x ⊙ R⁻*`` (eq. 6). Every loss is a batch mean (Alg. 1, l. 23). At ``t >= 1``
    only the still-trusted samples are forwarded. As eqs. 12-14 hold for ``t >= 0``, ``R⁺*`` starts as
    ``p̂ˢ(y|x)·R⁺⁰`` and stays empty for a sample the localizer misclassifies on ``x``.

    Batch-norm running statistics are updated only by the passes inference also makes (``M`` on ``x``, ``C`` on
    ``x ⊙ R⁺*``); the erased images and ``x ⊙ R⁻*`` are normalised with their batch statistics without updating
    them (otherwise the statistics drift towards erased images and the eval-mode localizer degrades with ``u``).
    Layers shared by ``M`` and ``C`` keep one set of running statistics per network
    (:meth:`MaxMin.classifier_statistics`).

    The caller runs ``optimizer.zero_grad()`` before and ``optimizer.step()`` (or ``scaler.step(optimizer)``;
    ``scaler.update()``) after. With a :class:`torch.amp.GradScaler` every backward pass is scaled.

    Distributed: pass the ``DistributedDataParallel`` wrapper of a :class:`MaxMin` (built with
    ``find_unused_parameters=True``); the localizer's backward passes run under ``no_sync()`` and the final pass
    all-reduces the accumulated gradients once, so they are identical on all ranks. (``detach_mask=False`` is not
    supported under DDP.)

    Args:
        model: a :class:`MaxMin` or a DDP wrapper of one.
        x: standardised images.
        labels: image classes.
        scaler: optional gradient scaler.

    Returns:
        Detached scalars: ``loss`` (sum of all back-propagated terms), ``pos`` (eq. 3), ``neg`` (eq. 6), ``loc``
        (eq. 8 at ``t = 0``), ``loc_erasing`` (eq. 8 summed over trusted erasing steps), ``size``, ``steps``
        (localizer forwards run), ``trusted`` (fraction of samples with non-zero trust at the last step).

    Shape:
        - x: :math:`(B, 3, H, W)`; labels: :math:`(B,)`
    """
    ddp = isinstance(model, nn.parallel.DistributedDataParallel)
    core = model.module if ddp else model
    if not isinstance(core, MaxMin):
        raise WSOLTypeError(f"`model` must be a MaxMin (or a DDP wrapper of one), got {type(core).__name__}")
    if ddp and not core.detach_mask:
        raise WSOLValueError("detach_mask=False is not supported under DistributedDataParallel")
    _check_images(x, "x")
    if not (isinstance(labels, torch.Tensor) and labels.ndim == 1 and labels.shape[0] == x.shape[0]):
        raise ShapeError(f"`labels` must have shape ({x.shape[0]},), got "
                         f"{tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__}")
    no_sync = model.no_sync if ddp else contextlib.nullcontext
    w_pos, w_neg, w_loc = core.weights
    b, size = x.shape[0], tuple(x.shape[-2:])

    def backward(loss: torch.Tensor) -> None:
        (scaler.scale(loss) if scaler is not None else loss).backward()

    acc = x.new_zeros((b, 1, *size), dtype=torch.float32)
    x_star = x
    alive = loss0 = deferred = None
    loc_erasing = torch.zeros((), device=x.device)
    steps = 0
    for t in range(core.u + 1):
        # t >= 1: only the samples still trusted are forwarded (a zero trust stays zero, Alg. 1 is per sample)
        idx = None if t == 0 else alive.nonzero()[:, 0]
        y_t = labels if idx is None else labels[idx]
        with no_sync():
            out = model(x_star, stage="localizer") if idx is None else model(x, x_star[idx], stage="localizer")
            if t == 0:
                check_labels(labels, "labels", b, out.logits.shape[1])
            ce = localizer_ce(out.logits, y_t, reduction="none")
            psi_t, alive_t = trust_coefficients(
                out.logits, y_t, t, core.sigma, None if idx is None else loss0[idx]
            )
            steps += 1
            if t == 0:
                loss0 = ce.detach()
                loss_t = w_loc * ce.mean()
            else:
                loss_t = w_loc * (ce * (psi_t > 0).to(ce.dtype)).sum() / b
                loc_erasing = loc_erasing + loss_t.detach()
            keep_graph = t == 0 and not core.detach_mask
            r = core.mask(out, size, detach=not keep_graph)
            if keep_graph:
                deferred = loss_t  # back-propagated with C's losses (graph of step 0 reaches the mask)
            elif t == 0 or bool(alive_t.any()):
                backward(loss_t)
        if idx is None:
            acc, alive = accumulate_mask(acc, r, psi_t), alive_t
        else:
            acc = acc.clone()
            acc[idx] = accumulate_mask(acc[idx], r, psi_t)
            alive = torch.zeros_like(alive).index_fill_(0, idx[alive_t], True)
        del out, ce, r
        if not bool(alive.any()):
            break
        if t < core.u:
            x_star = x_star * (1.0 - acc.detach()).to(x.dtype)
    out_pos, out_neg = model(x * acc.to(x.dtype), x * (1.0 - acc).to(x.dtype), stage="classifier")
    pos = positive_ce(out_pos.logits, labels)
    neg = negative_uniform_ce(out_neg.logits)
    total_c = w_pos * pos + w_neg * neg
    size_term = torch.zeros((), device=x.device)
    if core.size_prior is not None:
        size_term = core.size_weight * size_prior(acc, core.size_prior)
        total_c = total_c + size_term
    loc0 = (deferred if deferred is not None else torch.zeros((), device=x.device))
    backward(total_c + loc0)
    with torch.no_grad():
        loc_val = w_loc * loss0.mean()
        logs = {
            "loss": (total_c.detach() + loc_val + loc_erasing).float(),
            "pos": pos.detach(),
            "neg": neg.detach(),
            "loc": loc_val,
            "loc_erasing": loc_erasing,
            "size": size_term.detach(),
            "steps": torch.tensor(float(steps)),
            "trusted": alive.float().mean(),
        }
    return logs


def build_maxmin(
    backbone: nn.Module,
    num_classes: int,
    head: str | None = None,
    head_kwargs: dict[str, Any] | None = None,
    share_backbone: bool = True,
    classifier_backbone: nn.Module | None = None,
    **kwargs: Any,
) -> MaxMin:
    """Build a :class:`MaxMin` from a backbone and a registered head for both ``M`` and ``C``.

    Args:
        backbone: feature extractor of the localizer (``.out_channels`` is used for the heads).
        num_classes: classes C.
        head: registry name; ``None`` → ``"wildcat"`` with :data:`WILDCAT_DEFAULTS` (the paper's head) when it is
            registered, else ``"gap"`` (with a warning).
        head_kwargs: head hyper-parameters (default: :data:`WILDCAT_DEFAULTS` for ``"wildcat"``, none otherwise).
        share_backbone: ``M`` and ``C`` use the same backbone module (the paper's setting).
        classifier_backbone: a separate backbone for ``C`` (only with ``share_backbone=False``; default: a deep
            copy of ``backbone``). Its width must match.
        **kwargs: :class:`MaxMin` arguments (``u``, ``sigma``, ``omega``, ...).

    Example:
        >>> from wsolkit.backbones import create_backbone
        >>> m = build_maxmin(create_backbone("smallcnn", output_stride=8, width=8), 2, head="gap", u=0)
        >>> m(torch.zeros(1, 3, 32, 32)).logits.shape
        torch.Size([1, 2])
    """
    num_classes = check_int(num_classes, "num_classes", low=1)
    if head is None:
        if "wildcat" in list_heads():
            head = "wildcat"
        else:
            warnings.warn("the 'wildcat' head is not registered; MaxMin falls back to the 'gap' head", stacklevel=2)
            head = "gap"
    if head_kwargs is None:
        head_kwargs = dict(WILDCAT_DEFAULTS) if str(head).lower() == "wildcat" else {}
    width = _out_channels(backbone, "backbone")
    if share_backbone:
        if classifier_backbone is not None and classifier_backbone is not backbone:
            raise WSOLValueError("`classifier_backbone` must be None when share_backbone=True")
        cls_backbone = backbone
    else:
        cls_backbone = classifier_backbone if classifier_backbone is not None else copy.deepcopy(backbone)
        if cls_backbone is backbone:
            raise WSOLValueError("`classifier_backbone` is the localizer's backbone; use share_backbone=True")
    cls_width = _out_channels(cls_backbone, "classifier_backbone")
    localizer = WSOLModel(backbone, create_head(head, width, num_classes, **head_kwargs))
    classifier = WSOLModel(cls_backbone, create_head(head, cls_width, num_classes, **head_kwargs))
    return MaxMin(localizer, classifier, **kwargs)


@contextlib.contextmanager
def _batch_stats_only(module: nn.Module):
    """Batch-norm layers in training mode normalise with batch statistics but do not update their running ones."""
    bns = [
        m for m in module.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats
    ]
    for m in bns:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in bns:
            m.track_running_stats = True


class _BNStats(nn.Module):
    """``C``'s running statistics of the batch-norm layers it shares with ``M`` (buffers, saved in state dicts)."""

    def __init__(self, bns: list[nn.Module]):
        super().__init__()
        self.n = len(bns)
        for i, m in enumerate(bns):
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                buf = getattr(m, name)
                self.register_buffer(f"{name}_{i}", None if buf is None else buf.detach().clone())

    @contextlib.contextmanager
    def swapped(self, bns: list[nn.Module]):
        """Exchange the layers' statistics with the stored ones (in-place updates land in ``C``'s copies)."""

        def swap() -> None:
            for i, m in enumerate(bns):
                for name in ("running_mean", "running_var", "num_batches_tracked"):
                    mine, theirs = getattr(self, f"{name}_{i}"), getattr(m, name)
                    setattr(m, name, mine)
                    setattr(self, f"{name}_{i}", theirs)

        swap()
        try:
            yield
        finally:
            swap()

    def extra_repr(self) -> str:
        return f"shared_layers={self.n}"


def _out_channels(backbone: nn.Module, name: str) -> int:
    if not isinstance(backbone, nn.Module):
        raise WSOLTypeError(f"`{name}` must be an nn.Module, got {type(backbone).__name__}")
    width = getattr(backbone, "out_channels", None)
    if not isinstance(width, int):
        raise WSOLTypeError(f"`{name}` must expose an int `out_channels` (see wsolkit.backbones), got {width!r}")
    return width


def _check_widths(model: nn.Module, name: str) -> None:
    """A ``backbone`` + ``head`` pair whose widths are known must agree."""
    bb, head = getattr(model, "backbone", None), getattr(model, "head", None)
    out_c, in_c = getattr(bb, "out_channels", None), getattr(head, "in_channels", None)
    if isinstance(out_c, int) and isinstance(in_c, int) and out_c != in_c:
        raise ShapeError(
            f"`{name}`: the backbone outputs {out_c} channels but the head expects in_channels={in_c}"
        )


def _check_images(x: torch.Tensor, name: str) -> None:
    check_ndim(x, name, 4, "(B, 3, H, W)")
    check_floating(x, name)
