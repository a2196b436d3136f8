"""MaxMin: localizer–classifier trained with min-max entropy and recursive erasing (Belharbi et al.)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
import torch.nn as nn

from wsolkit._checks import (
    ShapeError,
    WSOLTypeError,
    WSOLValueError,
    check_floating,
    check_int,
    check_labels,
    check_ndim,
    check_number,
)
from wsolkit._deprecation import warn_deprecated
from wsolkit.losses.elb import ELB
from wsolkit.maxmin._bn import BNStats, batch_stats_only, batchnorm_layers, cumulative
from wsolkit.maxmin.losses import localizer_ce, negative_uniform_ce, positive_ce, size_prior
from wsolkit.maxmin.mask import maxmin_mask
from wsolkit.maxmin.trust import accumulate_mask, trust_coefficients
from wsolkit.method import WSOLMethod
from wsolkit.output import LossOutput, WSOLOutput

__all__ = ["MaxMin", "maxmin_train_step"]

_PASSES = ("localizer", "erased", "classifier")
_ERASING = ("authors", "algorithm1")


class MaxMin(WSOLMethod):
    """Localizer ``M`` + classifier ``C`` of the min-max entropy framework (build it with
    ``wsolkit.create_method("maxmin", K, backbone=...)``).

    Inference (``forward(x)``): ``M(x)`` gives class maps ``A`` and posteriors ``p̂ˢ``; the mask
    ``R⁺ = sigmoid(ω(T↑ − σ′))`` (eqs. 10-11, :func:`~wsolkit.maxmin.maxmin_mask`); ``C`` classifies ``x ⊙ R⁺``.
    ``labels`` are not used at inference (no erasing runs, Sec. 3.4).

    Training (:meth:`training_steps`, a generator): recursive erasing with trust coefficients (eqs. 12-14) builds
    the accumulated mask ``R⁺*`` over ``passes`` localizer passes; eq. 8 is yielded once per pass and the
    classifier's terms (eq. 3 on ``x⊙R⁺*``, eq. 6 on ``x⊙R⁻*``, optional TMI size priors) in a final step.
    Back-propagate each step before asking for the next: the graph of a pass is freed before the next is built, so
    memory does not grow with ``passes``.

    The loop (``erasing="authors"``, default) is the one of the authors' ``deepmil/train.py``
    (``sbelharbi/wsol-min-max-entropy-interpretability``), which produced the papers' numbers:

    - ``passes = N`` is their ``nbr_times_erase``: N localizer passes ``t = 0..N−1`` (their GlaS config:
      ``nbr_times_erase: 4``, the paper's "u = 4"); ``passes = 0`` is their no-erasing path: one pass, ``C``
      classifies ``x·R⁺`` and ``x·(1 − R⁺)`` with no trust (``deepmil/models.py``, ``ResNet.forward``,
      ``code=None``). With ``passes >= 1`` the first mask already enters ``R⁺*`` scaled by ``Ψ(0, i)``.
    - Trust history by label only (``history = min(pred == y, history)``): a sample whose loss rose at one step
      gets trust 0 at that step (its image is not erased further then) but may be trusted again later; a wrong
      label removes it for good. The loop stops early when every sample is removed.
    - Every pass forwards the whole batch and back-propagates the mean cross-entropy over every sample.

    ``erasing="algorithm1"`` is a literal reading of Alg. 1 kept for comparison: any zero trust removes a sample
    for good, only the still-trusted samples are forwarded at ``t >= 1`` and eq. 8 at ``t >= 1`` covers them only,
    normalised by the batch size (Alg. 1, l. 10-12, 23).

    Before this release ``u`` counted the erasing steps after the first pass (``u + 1`` passes) and
    ``trust_at_zero=False`` selected the no-trust path at ``u = 0``; both still work, deprecated:
    ``u=k`` means ``passes=k + 1`` (``passes=0`` for ``u=0, trust_at_zero=False``), with the loop of ``erasing``.

    Masks are min-max normalised per sample (the reference's ``ResNet.get_pseudo_binary_mask`` normalises over the
    whole batch, so a sample's mask depends on the other images of its batch; see :func:`maxmin_mask`).

    Batch-norm statistics: ``M`` sees ``x`` and ``C`` sees ``x⊙R⁺``, two different input distributions. When the
    two networks share batch-norm layers (the shared backbone of the default factory), ``C`` keeps its own running
    statistics of those layers (buffers ``classifier_bn_stats.*``, in the state dict) and every pass of ``C`` runs
    inside :meth:`classifier_statistics`; ``M`` keeps the layers' own. Running statistics are updated only by the
    passes inference also makes (``M`` on ``x``, ``C`` on ``x ⊙ R⁺*``); erased images and ``x ⊙ R⁻*`` are normalised
    with their batch statistics without updating them. After training, :meth:`recalibrate_statistics` (called by
    :func:`wsolkit.training.fit`) makes each network's statistics exact averages over its inference inputs.

    Distributed: run ``wsolkit.training.training_steps(ddp_model, x, y)`` (or ``training_steps(x, y,
    forward=ddp_model)``) with a ``DistributedDataParallel(model, find_unused_parameters=True)``: every forward
    pass goes through the wrapper, the localizer steps run under ``no_sync()`` and the final step all-reduces the
    accumulated gradients once. ``detach_mask=False`` is not supported under DDP.

    Args:
        localizer: ``M``, a module ``x -> WSOLOutput`` (e.g. :class:`~wsolkit.models.WSOLModel`).
        classifier: ``C``, a module ``x -> WSOLOutput``; may share the backbone module with ``M``.
        passes: localizer passes N of the erasing loop (the authors' ``nbr_times_erase``; GlaS: 4); ``0``: the
            authors' no-erasing path (no trust).
        erasing: ``"authors"`` (``deepmil/train.py``, default) or ``"algorithm1"`` (the Alg. 1 reading).
        sigma: decay σ of the step trust ``exp(−t/σ)`` (paper: 10).
        omega: sigmoid sharpness ω of eq. 11 (paper: 8).
        sigma_prime: sigmoid offset σ′ of eq. 11 (paper: 0.5).
        detach_mask: ``True`` (paper): the mask is input data for ``C``, ``M`` learns from eq. 8 only.
            ``False`` (TMI variant): gradients of ``C``'s losses (and size priors) reach ``M`` through the mask of
            step 0 (the erasing steps' masks stay detached); eq. 8 of step 0 then joins the final step.
        weights: ``(w⁺, w⁻, wˢ)`` of eq. 9.
        size_prior: an :class:`~wsolkit.losses.ELB` on ``−ΣR⁺*`` and ``−ΣR⁻*`` (needs ``detach_mask=False``);
            call ``size_prior.step()`` once per epoch.
        size_weight: weight of the size priors.
        u: deprecated, ``passes = u + 1``.
        trust_at_zero: deprecated; ``u=0, trust_at_zero=False`` is ``passes=0``.

    Shape:
        - input: :math:`(B, 3, H, W)`
        - logits: :math:`(B, K)` (``C`` on ``x⊙R⁺``); cams: :math:`(B, K, h, w)` (the localizer's class maps);
          ``aux["mask"]``: :math:`(B, H, W)` (``R⁺``), ``aux["localizer_logits"]``: :math:`(B, K)`,
          ``aux["classifier_cams"]``: the classifier's maps on ``x⊙R⁺``.

    Example:
        >>> import wsolkit
        >>> model = wsolkit.create_method("maxmin", 2, backbone="smallcnn", head="gap", passes=2)
        >>> x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 1])
        >>> for step in model.training_steps(x, y):  # up to 2 localizer passes, then the classifier's step
        ...     step.total.backward()
        >>> model(x).aux["mask"].shape
        torch.Size([2, 32, 32])
    """

    def __init__(
        self,
        localizer: nn.Module,
        classifier: nn.Module,
        passes: int | None = None,
        sigma: float = 10.0,
        omega: float = 8.0,
        sigma_prime: float = 0.5,
        detach_mask: bool = True,
        weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
        size_prior: ELB | None = None,
        size_weight: float = 1.0,
        erasing: str = "authors",
        *,
        u: int | None = None,
        trust_at_zero: bool | None = None,
    ):
        super().__init__()
        for name, m in (("localizer", localizer), ("classifier", classifier)):
            if not isinstance(m, nn.Module):
                raise WSOLTypeError(f"`{name}` must be an nn.Module returning WSOLOutput, got {type(m).__name__}")
            _check_widths(m, name)
        self.localizer = localizer
        self.classifier = classifier
        self.passes = _resolve_passes(passes, u, trust_at_zero)
        if erasing not in _ERASING:
            raise WSOLValueError(f"`erasing` must be one of {_ERASING}, got {erasing!r}")
        self.erasing = erasing
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
        # Batch-norm layers shared by M and C (shared backbone) keep one set of running statistics per network.
        loc_ids = {id(m) for m in localizer.modules()}
        self._shared_bns = [m for m in batchnorm_layers(classifier) if id(m) in loc_ids]
        self.classifier_bn_stats = BNStats(self._shared_bns)

    def mask(self, out: WSOLOutput, size: tuple[int, int], detach: bool = True) -> torch.Tensor:
        """``R⁺`` (eqs. 10-11) from a localizer output, ``(B, 1, H, W)``."""
        cams, logits = out.cams.float(), out.logits.float()
        if detach:
            cams, logits = cams.detach(), logits.detach()
        return maxmin_mask(cams, logits, size, self.omega, self.sigma_prime)

    @contextlib.contextmanager
    def classifier_statistics(self):
        """Within this context the batch-norm layers shared with ``M`` use (and update) ``C``'s own statistics.

        :meth:`forward` runs ``C`` inside it; use it when calling ``model.classifier`` directly. No effect when
        ``M`` and ``C`` share no batch-norm layer.
        """
        with self.classifier_bn_stats.swapped(self._shared_bns):
            yield

    def on_epoch_end(self, epoch: int) -> None:
        """Advance the size prior's ELB barrier once per epoch (no effect without ``size_prior``)."""
        super().on_epoch_end(epoch)
        if self.size_prior is not None:
            self.size_prior.step()

    def on_fit_end(self, loader: Iterable[Any]) -> None:
        """Recalibrate the batch-norm statistics over the training batches with the final weights
        (:meth:`recalibrate_statistics`, streamed: the loader is read twice, one batch in memory at a time).

        Args:
            loader: batches ``(images, labels[, masks])`` of standardised images (the training loader).
        """
        super().on_fit_end(loader)
        device = next(self.parameters()).device

        def batches() -> Iterator[torch.Tensor]:
            for batch in loader:
                xb = batch[0] if isinstance(batch, (list, tuple)) else batch
                _check_images(xb, "loader images")
                yield xb.to(device)

        self._recalibrate(batches)

    def _lifecycle_work(self) -> set[str]:
        return {"on_fit_end"} | ({"on_epoch_end"} if self.size_prior is not None else set())

    @torch.no_grad()
    def recalibrate_statistics(self, images: torch.Tensor, batch_size: int = 32) -> None:
        """Recompute the batch-norm running statistics with the final weights, as exact averages over ``images``.

        First ``M``'s statistics from ``M(x)``, then ``C``'s from ``C(x ⊙ R⁺)`` with ``R⁺`` of the recalibrated
        eval-mode ``M`` — the inputs inference feeds to each network. Only batch-norm layers change (other layers,
        e.g. dropout, stay in eval mode); the training mode is restored. Useful after short trainings, where the
        exponential running averages lag behind fast-changing weights.

        Args:
            images: standardised images (the inputs of :meth:`forward`).
            batch_size: images per pass (each batch counts equally in the averages).

        Shape:
            - images: :math:`(N, 3, H, W)`
        """
        _check_images(images, "images")
        batch_size = check_int(batch_size, "batch_size", low=1)
        self._lifecycle()["fit_steps"] = 0  # the end-of-training work on_fit_end does
        self._recalibrate(lambda: (images[i : i + batch_size] for i in range(0, images.shape[0], batch_size)))

    @torch.no_grad()
    def _recalibrate(self, batches: Callable[[], Iterable[torch.Tensor]]) -> None:
        """:meth:`recalibrate_statistics` over ``batches()`` (called twice: ``M``'s pass, then ``C``'s)."""
        was_training = self.training
        self.eval()
        try:
            with cumulative(batchnorm_layers(self.localizer)):
                for xb in batches():
                    self.localizer(xb)
            # C's statistics: exact averages (momentum None) over C(x ⊙ R⁺), R⁺ from the recalibrated eval-mode M;
            # one batch at a time, so M's pass runs between C's with the shared layers holding M's statistics
            bns = batchnorm_layers(self.classifier)
            momenta = [m.momentum for m in bns]
            with self.classifier_statistics():
                for m in bns:
                    m.reset_running_stats()
                    m.momentum = None
            try:
                for xb in batches():
                    r = self.mask(self.localizer(xb), tuple(xb.shape[-2:]))
                    with self.classifier_statistics():
                        for m in bns:
                            m.train()
                        try:
                            self.classifier(xb * r.to(xb.dtype))
                        finally:
                            for m in bns:
                                m.eval()
            finally:
                for m, mom in zip(bns, momenta, strict=True):
                    m.momentum = mom
        finally:
            self.train(was_training)

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor | None = None, *, _pass: str | None = None,
        _negative: torch.Tensor | None = None,
    ) -> Any:
        """Inference → :class:`WSOLOutput` (``labels`` are ignored: no erasing at inference).

        ``_pass`` is private: :meth:`training_steps` routes its passes through ``forward`` so that a DDP wrapper
        sees every one of them (``"localizer"``: ``M(x)``; ``"erased"``: ``M(x*)`` without updating batch-norm
        statistics; ``"classifier"``: ``(C(x⊙R⁺*), C(x⊙R⁻*))``, only the first updating statistics).
        """
        _check_images(x, "x")
        if _pass is not None:
            if _pass not in _PASSES:
                raise WSOLValueError(f"`_pass` must be one of {_PASSES}, got {_pass!r}")
            if _pass == "localizer":
                return self.localizer(x)
            if _pass == "erased":
                with batch_stats_only(self.localizer):
                    return self.localizer(x)
            with self.classifier_statistics():
                first = self.classifier(x)
                with batch_stats_only(self.classifier):
                    return first, self.classifier(_negative)
        loc = self.localizer(x)
        r = self.mask(loc, tuple(x.shape[-2:]), detach=True)
        with self.classifier_statistics():
            out = self.classifier(x * r.to(x.dtype))
        if out.logits.shape != loc.logits.shape:
            raise ShapeError(f"localizer and classifier disagree on classes: logits {tuple(loc.logits.shape)} vs "
                             f"{tuple(out.logits.shape)}")
        aux = {"mask": r[:, 0], "localizer_logits": loc.logits, "classifier_cams": out.cams}
        return WSOLOutput(out.logits, loc.cams, aux)

    def training_steps(
        self, x: torch.Tensor, labels: torch.Tensor, *, forward: Callable[..., Any] | None = None
    ) -> Iterator[LossOutput]:
        """Recursive erasing as a generator: one :class:`LossOutput` per localizer pass, then ``C``'s.

        For ``t = 0..N−1`` (``N = max(passes, 1)``): forward the current image ``x*`` in ``M``; yield eq. 8 of
        pass ``t`` (term ``loc`` at ``t = 0``, ``loc_erasing`` after); compute ``R⁺ᵗ`` and the trusts ``Ψ(t, ·)``
        (eqs. 13-14, :func:`~wsolkit.maxmin.trust_coefficients`); ``R⁺* ← max(R⁺*, Ψ·R⁺ᵗ)`` (eq. 12);
        ``x* ← x* ⊙ (1 − R⁺*)``. With ``erasing="authors"`` every pass covers the whole batch (mean cross-entropy
        over every sample), a sample leaves the loop only when ``M`` mislabels it, and only samples trusted at
        pass ``t`` are erased further. With ``erasing="algorithm1"`` a zero trust removes a sample, only the
        remaining samples are forwarded and eq. 8 at ``t >= 1`` sums over them divided by the batch size. The
        loop stops after ``N`` passes or when no sample remains. The final step yields ``w⁺·eq. 3 + w⁻·eq. 6`` on
        ``x ⊙ R⁺*`` / ``x ⊙ R⁻*`` (terms ``pos``, ``neg``; ``size`` with a size prior; ``loc`` when
        ``detach_mask=False`` defers eq. 8 of step 0 to it). So at most ``N + 1`` steps are yielded.

        Args:
            x: standardised images.
            labels: image classes.
            forward: the callable running the forward passes (a DDP wrapper of this model): the localizer steps
                are then computed and back-propagated under its ``no_sync()``.

        Shape:
            - x: :math:`(B, 3, H, W)`; labels: :math:`(B,)`
        """
        run = self if forward is None else forward
        no_sync = getattr(run, "no_sync", None) if run is not self else None
        if no_sync is not None and not self.detach_mask:
            raise WSOLValueError("detach_mask=False is not supported under DistributedDataParallel")
        no_sync = no_sync if no_sync is not None else contextlib.nullcontext
        _check_images(x, "x")
        if not (isinstance(labels, torch.Tensor) and labels.ndim == 1 and labels.shape[0] == x.shape[0]):
            raise ShapeError(f"`labels` must have shape ({x.shape[0]},), got "
                             f"{tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__}")
        w_pos, w_neg, w_loc = self.weights
        b, size = x.shape[0], tuple(x.shape[-2:])
        authors = self.erasing == "authors"
        n_passes = max(self.passes, 1)
        acc = x.new_zeros((b, 1, *size), dtype=torch.float32)
        x_star = x
        alive = loss0 = deferred = None
        for t in range(n_passes):
            # Alg. 1 reading, t >= 1: only the samples still trusted are forwarded (a zero trust stays zero)
            idx = None if (t == 0 or authors) else alive.nonzero()[:, 0]
            y_t = labels if idx is None else labels[idx]
            with no_sync():
                if t == 0:
                    out = run(x_star, _pass="localizer")
                    check_labels(labels, "labels", b, out.logits.shape[1])
                else:
                    out = run(x_star if idx is None else x_star[idx], _pass="erased")
                ce = localizer_ce(out.logits, y_t, reduction="none")
                psi_t, alive_t = trust_coefficients(
                    out.logits, y_t, t, self.sigma, None if t == 0 else (loss0 if idx is None else loss0[idx]),
                    alive=alive if (authors and t > 0) else None, history="label" if authors else "trust",
                )
                if self.passes == 0:  # the authors' no-erasing path: x·R⁺, no Ψ
                    psi_t = torch.ones_like(psi_t)
                keep_graph = t == 0 and not self.detach_mask
                r = self.mask(out, size, detach=not keep_graph)
                if t == 0 or authors:
                    loss_t = w_loc * ce.mean()
                else:
                    loss_t = w_loc * (ce * (psi_t > 0).to(ce.dtype)).sum() / b
                if t == 0:
                    loss0 = ce.detach()
                step = LossOutput(loss_t, {"loc" if t == 0 else "loc_erasing": loss_t.detach()})
                del out, ce
                if keep_graph:
                    deferred = loss_t  # joins C's losses (the graph of step 0 reaches the mask)
                else:
                    yield step
                del step, loss_t
            if idx is None:
                acc, alive = accumulate_mask(acc, r, psi_t), alive_t
            else:
                acc = acc.clone()
                acc[idx] = accumulate_mask(acc[idx], r, psi_t)
                alive = torch.zeros_like(alive).index_fill_(0, idx[alive_t], True)
            del r
            if not bool(alive.any()):
                break
            if t < n_passes - 1:
                erased = x_star * (1.0 - acc.detach()).to(x.dtype)
                # authors: a sample not trusted at this pass keeps its current image
                x_star = torch.where((psi_t != 0)[:, None, None, None], erased, x_star) if authors else erased
        out_pos, out_neg = run(x * acc.to(x.dtype), _pass="classifier", _negative=x * (1.0 - acc).to(x.dtype))
        pos = positive_ce(out_pos.logits, labels)
        neg = negative_uniform_ce(out_neg.logits)
        total = w_pos * pos + w_neg * neg
        terms = {"pos": pos.detach(), "neg": neg.detach()}
        if self.size_prior is not None:
            size_term = self.size_weight * size_prior(acc, self.size_prior)
            total = total + size_term
            terms["size"] = size_term.detach()
        if deferred is not None:
            total = total + deferred
            terms["loc"] = deferred.detach()
        del out_pos, out_neg, deferred
        yield LossOutput(total, terms)

    def train_step(
        self, x: torch.Tensor, labels: torch.Tensor, scaler: torch.amp.GradScaler | None = None
    ) -> dict[str, torch.Tensor]:
        """Deprecated: use ``for step in model.training_steps(x, y): step.total.backward()``."""
        warn_deprecated("MaxMin.train_step", "for step in model.training_steps(x, y): step.total.backward()")
        return _run_steps(self.training_steps(x, labels), scaler)

    def extra_repr(self) -> str:
        return (f"passes={self.passes}, erasing={self.erasing!r}, sigma={self.sigma}, omega={self.omega}, "
                f"sigma_prime={self.sigma_prime}, detach_mask={self.detach_mask}, weights={self.weights}")


def _run_steps(steps: Iterator[LossOutput], scaler: torch.amp.GradScaler | None) -> dict[str, torch.Tensor]:
    logs: dict[str, torch.Tensor] = {}
    total = 0.0
    for step in steps:
        (scaler.scale(step.total) if scaler is not None else step.total).backward()
        total += float(step.total.detach())
        for k, v in step.terms.items():
            logs[k] = logs.get(k, 0.0) + v
    logs["loss"] = torch.tensor(total)
    return logs


def maxmin_train_step(
    model: nn.Module, x: torch.Tensor, labels: torch.Tensor, scaler: torch.amp.GradScaler | None = None
) -> dict[str, torch.Tensor]:
    """Deprecated: use ``for step in wsolkit.training.training_steps(model, x, y): step.total.backward()``."""
    warn_deprecated("wsolkit.maxmin.maxmin_train_step", "for step in wsolkit.training.training_steps(model, x, "
                    "y): step.total.backward()")
    ddp = isinstance(model, nn.parallel.DistributedDataParallel)
    core = model.module if ddp else model
    if not isinstance(core, MaxMin):
        raise WSOLTypeError(f"`model` must be a MaxMin (or a DDP wrapper of one), got {type(core).__name__}")
    return _run_steps(core.training_steps(x, labels, forward=model if ddp else None), scaler)


def _resolve_passes(passes: int | None, u: int | None, trust_at_zero: bool | None) -> int:
    """``passes``, or the deprecated ``u`` (``u + 1`` passes) / ``trust_at_zero`` (``False`` at ``u = 0``: 0)."""
    if trust_at_zero is not None and not isinstance(trust_at_zero, bool):
        raise WSOLTypeError(f"`trust_at_zero` must be a bool, got {type(trust_at_zero).__name__}")
    if u is None and trust_at_zero is None:
        return 4 if passes is None else check_int(passes, "passes", low=0)
    if passes is not None:
        raise WSOLValueError("give `passes` only: `u` and `trust_at_zero` are its deprecated spellings")
    u = check_int(0 if u is None else u, "u", low=0)
    warnings.warn("MaxMin(u=...) and trust_at_zero are deprecated: `passes` counts the localizer passes (the "
                  f"authors' nbr_times_erase); u={u} is passes={u + 1}, and u=0 with trust_at_zero=False is passes=0",
                  DeprecationWarning, stacklevel=3)
    return 0 if (u == 0 and trust_at_zero is False) else u + 1


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
