"""The training loop: :func:`fit` over a DataLoader (or in-memory tensors) and :func:`training_steps`."""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from wsolkit._checks import WSOLTypeError, WSOLValueError, check_int
from wsolkit.data.preprocessing import preprocessing
from wsolkit.output import LossOutput
from wsolkit.training._common import _core, _device_of, _num_classes, _split_batch
from wsolkit.training.checkpoints import load_checkpoint, save_checkpoint
from wsolkit.training.evaluation import _evaluate_loader

__all__ = ["fit", "training_steps"]


def training_steps(method: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> Iterator[LossOutput]:
    """The losses of one batch for ``method`` or a :class:`~torch.nn.parallel.DistributedDataParallel` wrapper of it.

    Equivalent to ``method.training_steps(x, labels)``; with a DDP (or ``torch.compile``) wrapper the forward
    passes go through the wrapper, so gradients are synchronised.

    Example:
        >>> import wsolkit
        >>> m = wsolkit.create_method("gap", 2, backbone="smallcnn")
        >>> [sorted(s.terms) for s in training_steps(m, torch.rand(2, 3, 32, 32), torch.tensor([0, 1]))]
        [['ce']]
    """
    core = _core(method)
    steps = getattr(core, "training_steps", None)
    if not callable(steps):
        raise WSOLTypeError(
            f"{type(core).__name__} has no `training_steps`: build methods with wsolkit.create_method or subclass "
            f"wsolkit.WSOLMethod"
        )
    return steps(x, labels, forward=None if core is method else method)



class _Preprocessed:
    """In-memory tensors with flips/transposes (drawn from ``g``) and the model's normalisation."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, augment: bool, g: torch.Generator, preprocess):
        self.images, self.labels, self.augment, self.g, self.preprocess = images, labels, augment, g, preprocess

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.images[idx]
        if self.augment:  # one draw per batch (histology has no canonical orientation)
            for op in (lambda t: t.flip(-1), lambda t: t.flip(-2), lambda t: t.transpose(-1, -2)):
                if torch.rand((), generator=self.g) < 0.5:
                    x = op(x)
        return self.preprocess(x), self.labels[idx]


def _fit_tensors(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epochs: int = 10,
                 batch_size: int = 32, lr: float = 1e-3, weight_decay: float = 1e-4, seed: int = 0,
                 augment: bool = True, progress: bool = False, device: str | torch.device = "cpu",
                 preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None) -> list[float]:
    """The in-memory form of :func:`fit` (AdamW + one-cycle schedule); returns the mean loss of each epoch."""
    preprocess = preprocess if preprocess is not None else preprocessing(model)
    g = torch.Generator().manual_seed(seed)
    data = _Preprocessed(images, labels, augment, g, preprocess)
    n = images.shape[0]
    steps_per_epoch = max(math.ceil(n / batch_size), 1)

    class _Batches:  # a re-iterable "loader" drawing a fresh permutation per epoch from `g`
        def __len__(self) -> int:
            return steps_per_epoch

        def __iter__(self):
            perm = torch.randperm(n, generator=g)
            return (data.batch(perm[i : i + batch_size]) for i in range(0, n, batch_size))

    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.15)
    result = _fit_loader(model, _Batches(), opt, epochs=epochs, scheduler=sched, device=device, progress=progress,
                         recalibrate=False)
    recalibrate = getattr(model, "recalibrate_statistics", None)
    if callable(recalibrate):  # batch-norm statistics recomputed with the final weights (MaxMin)
        with torch.no_grad():
            recalibrate(preprocess(images).to(device), batch_size=batch_size)
    model.eval()
    return [rec["loss"] for rec in result["history"]]


def fit(method: nn.Module, train_loader: Any, optimizer: Any = None, *args: Any, **kwargs: Any) -> Any:
    """Train a method: the protocol's loop over a DataLoader (or, for small data, over in-memory tensors).

    **Loader form** — ``fit(method, train_loader, optimizer=None, *, epochs, val_loader=None, ...)`` — see
    :func:`_fit_loader` for every option; batches are ``(images, labels[, masks])`` of model-ready images (the
    datasets of :mod:`wsolkit.data` apply ``preprocess=``). Returns ``{"history": [per-epoch records], "selector":
    ModelSelector | None, "checkpoint": last checkpoint path | None}``.

    **Tensor form** — ``fit(method, images, labels, epochs=10, batch_size=32, lr=1e-3, weight_decay=1e-4, seed=0,
    augment=True, progress=False, device="cpu", preprocess=None)`` with images ``(N, 3, H, W)`` in ``[0, 1]``:
    AdamW with a one-cycle schedule, flips/transposes, the model's :func:`~wsolkit.data.preprocessing`; a method with
    ``recalibrate_statistics`` (MaxMin) has it called at the end. Returns the mean training loss of each epoch.

    Example:
        >>> import wsolkit
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> m = wsolkit.create_method("gap", 2, backbone="smallcnn")
        >>> loader = DataLoader(TensorDataset(torch.rand(8, 3, 32, 32), torch.tensor([0, 1] * 4)), batch_size=4)
        >>> len(fit(m, loader, epochs=2)["history"])
        2
        >>> len(fit(m, torch.rand(8, 3, 32, 32), torch.tensor([0, 1] * 4), epochs=1, batch_size=4))
        1
    """
    if isinstance(train_loader, torch.Tensor):
        return _fit_tensors(method, train_loader, optimizer, *args, **kwargs)
    if args:
        raise WSOLTypeError("fit(method, train_loader, optimizer, *, epochs=..., ...): options are keyword-only")
    return _fit_loader(method, train_loader, optimizer, **kwargs)


def _optimizer_step(method: nn.Module, optimizer: Any, scaler: Any, scheduler: Any, max_grad_norm: float | None):
    if max_grad_norm is not None:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(method.parameters(), max_grad_norm)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    if scheduler is not None:
        scheduler.step()


def _write_csv(path: Path, record: dict[str, Any]) -> None:
    new = not path.is_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(record), extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow(record)


def _fit_loader(
    method: nn.Module,
    train_loader: Iterable,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    epochs: int = 10,
    val_loader: Iterable | None = None,
    select: str | None = "b-loc",
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    scheduler: Any = None,
    device: str | torch.device | None = None,
    amp: bool | None = None,
    accumulate: int = 1,
    max_grad_norm: float | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    method_name: str | None = None,
    method_options: dict[str, Any] | None = None,
    num_classes: int | None = None,
    metrics_csv: str | os.PathLike | None = None,
    callbacks: Sequence[Callable[[dict[str, Any], nn.Module], None]] = (),
    progress: bool = False,
    recalibrate: bool = False,
) -> dict[str, Any]:
    """``fit`` over a loader.

    Args:
        method: a trainable method.
        train_loader: batches ``(images, labels[, masks])``.
        optimizer: default AdamW(``lr``, ``weight_decay``) over trainable parameters.
        epochs: total epochs (with ``resume``: the run continues up to this count).
        val_loader: evaluated after each epoch with :func:`evaluate` (needs masks for B-LOC).
        select: ``"b-loc"`` (best PxAP), ``"b-cl"`` (best accuracy) or ``None``: with ``val_loader``, the best
            epoch's weights are loaded into ``method`` at the end (and saved as ``best.pt`` with ``checkpoint_dir``).
        scheduler: stepped after every optimizer step.
        device: default: where the method's parameters are.
        amp: mixed precision (default: on CUDA); gradients are scaled with ``torch.amp.GradScaler``.
        accumulate: batches per optimizer step (each loss is divided by it).
        max_grad_norm: clip the gradient norm before each optimizer step.
        checkpoint_dir: ``last.pt`` written after each epoch (and ``best.pt``).
        resume: a checkpoint to continue from (weights, optimizer, scaler, scheduler, epoch, history).
        method_name, method_options, num_classes: stored in checkpoints for :func:`load_method`.
        metrics_csv: one row per epoch appended.
        callbacks: ``callback(record, method)`` after each epoch (TensorBoard, Lightning loggers, early stopping).
        progress: tqdm bars.
        recalibrate: call ``method.recalibrate_statistics`` (MaxMin) at the end on the training images, gathered
            from ``train_loader`` into memory (for small sets; the tensor form of :func:`fit` always does it).
    """
    from tqdm.auto import tqdm

    from wsolkit.metrics.selection import ModelSelector

    epochs = check_int(epochs, "epochs", low=0)
    accumulate = check_int(accumulate, "accumulate", low=1)
    if select not in ("b-loc", "b-cl", None):
        raise WSOLValueError(f"`select` must be 'b-loc', 'b-cl' or None, got {select!r}")
    device = torch.device(device) if device is not None else _device_of(method)
    method.to(device)
    amp = device.type == "cuda" if amp is None else bool(amp)
    if optimizer is None:
        optimizer = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=lr,
                                      weight_decay=weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=amp and device.type == "cuda")
    selector = ModelSelector(keep_states=checkpoint_dir is None) if val_loader is not None else None
    history: list[dict[str, Any]] = []
    start = 0
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if resume is not None:
        ckpt = load_checkpoint(resume, device)
        _core(method).load_state_dict(ckpt["state_dict"])
        for obj, key in ((optimizer, "optimizer"), (scaler, "scaler"), (scheduler, "scheduler")):
            if obj is not None and ckpt.get(key) is not None:
                obj.load_state_dict(ckpt[key])
        start, history = int(ckpt.get("epoch", 0)), list(ckpt.get("history", []))
        method_name = method_name or ckpt.get("method")
        method_options = method_options if method_options is not None else ckpt.get("options")
        num_classes = num_classes or ckpt.get("num_classes")
        for rec in history:
            if selector is not None and "pxap" in rec:
                selector.update(rec["epoch"], loc=rec["pxap"], cls=rec["accuracy"])
    last = None
    for epoch in range(start, epochs):
        method.train()
        t0 = time.perf_counter()
        total, count, n_batches = 0.0, 0, 0
        bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{epochs}", unit="batch", disable=not progress, leave=False)
        optimizer.zero_grad(set_to_none=True)
        for batch in bar:
            x, y, _ = _split_batch(batch)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            steps, loss = training_steps(method, x, y), 0.0
            while True:  # the forward of each step runs under autocast, its backward outside
                with torch.autocast(device.type, enabled=amp):
                    step = next(steps, None)
                if step is None:
                    break
                scaler.scale(step.total / accumulate).backward()
                loss += float(step.total.detach())
            n_batches += 1
            if n_batches % accumulate == 0:
                _optimizer_step(method, optimizer, scaler, scheduler, max_grad_norm)
            total += loss * len(y)
            count += len(y)
            bar.set_postfix(loss=f"{total / max(count, 1):.3f}")
        if n_batches % accumulate:  # the last, incomplete accumulation
            _optimizer_step(method, optimizer, scaler, scheduler, max_grad_norm)
        if num_classes is None:
            num_classes = _num_classes(method)
        record: dict[str, Any] = {"epoch": epoch, "loss": total / max(count, 1), "seconds": time.perf_counter() - t0}
        if val_loader is not None:
            res = _evaluate_loader(method, val_loader, device=device, amp=amp, progress=progress)
            record.update(accuracy=res["accuracy"], pxap=res["pxap"], n_loc=res["n_loc"])
            improved = selector.update(epoch, loc=res["pxap"], cls=res["accuracy"], model=_core(method))
            if select is not None and improved[select] and ckpt_dir is not None:
                save_checkpoint(ckpt_dir / "best.pt", method, method_name=method_name, num_classes=num_classes,
                                options=method_options, epoch=epoch + 1, history=history + [record])
        history.append(record)
        if ckpt_dir is not None:
            last = save_checkpoint(ckpt_dir / "last.pt", method, method_name=method_name, num_classes=num_classes,
                                   options=method_options, optimizer=optimizer, scaler=scaler,
                                   scheduler=scheduler, epoch=epoch + 1, history=history)
        if metrics_csv is not None:
            _write_csv(Path(metrics_csv), record)
        for cb in callbacks:
            cb(record, method)
    if selector is not None and select is not None and selector.history:
        if ckpt_dir is not None and (ckpt_dir / "best.pt").is_file():
            _core(method).load_state_dict(load_checkpoint(ckpt_dir / "best.pt", device)["state_dict"])
        elif selector.keep_states:
            _core(method).load_state_dict(selector.state(select))
    rec_fn = getattr(_core(method), "recalibrate_statistics", None)
    if recalibrate and callable(rec_fn) and epochs > start:  # needs the training images in memory
        with torch.no_grad():
            rec_fn(torch.cat([_split_batch(b)[0] for b in train_loader]).to(device))
    method.eval()
    return {"history": history, "selector": selector, "checkpoint": last}
