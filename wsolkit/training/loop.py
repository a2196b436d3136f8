"""The training loop: :func:`fit` over a DataLoader and :func:`training_steps`."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from wsolkit._checks import WSOLTypeError, WSOLValueError, check_int
from wsolkit._deprecation import warn_deprecated
from wsolkit.method import _lifecycle_managed
from wsolkit.output import LossOutput
from wsolkit.training._common import (
    _check_batch_labels,
    _core,
    _device_of,
    _num_classes,
    _split_batch,
    _write_csv,
)
from wsolkit.training.checkpoints import load_checkpoint, load_state, save_checkpoint
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



def fit(
    method: nn.Module,
    train_loader: Iterable,
    optimizer: torch.optim.Optimizer | None = None,
    *args: Any,
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
    classes: Sequence[str] | None = None,
    preprocessing: Any = None,
    metrics_csv: str | os.PathLike | None = None,
    callbacks: Sequence[Callable[[dict[str, Any], nn.Module], None]] = (),
    progress: bool | None = None,
    **deprecated: Any,
) -> dict[str, Any]:
    """Train a method over a DataLoader: the protocol's loop plus the method's life-cycle hooks.

    Per batch ``for step in training_steps(method, x, y): step.total.backward()``; after each epoch
    ``method.on_epoch_end(epoch)`` (barrier schedules), validation, ``last.pt``; at the end the best epoch's weights
    (with ``val_loader``), then ``method.on_fit_end(train_loader)`` (MaxMin's batch-norm statistics) before the last
    and best checkpoints are written — so ``load_method(best.pt)`` is the method in memory. In-memory tensors:
    :func:`~wsolkit.training.fit_tensors`.

    Args:
        method: a trainable method (or a DDP / ``torch.compile`` wrapper of one).
        train_loader: batches ``(images, labels[, masks])`` of model-ready images (the datasets of
            :mod:`wsolkit.data` apply ``preprocess=``); re-iterable (read again by ``on_fit_end``).
        optimizer: default AdamW(``lr``, ``weight_decay``) over trainable parameters.
        epochs: total epochs (with ``resume``: the run continues up to this count).
        val_loader: evaluated after each epoch (needs masks for B-LOC).
        select: ``"b-loc"`` (best PxAP), ``"b-cl"`` (best accuracy) or ``None``: with ``val_loader``, the best
            epoch's weights are loaded into ``method`` at the end (and saved as ``best.pt`` with ``checkpoint_dir``).
        scheduler: stepped after every optimizer step.
        device: default: where the method's parameters are.
        amp: mixed precision (default: on CUDA); gradients are scaled with ``torch.amp.GradScaler``.
        accumulate: batches per optimizer step (each loss is divided by it).
        max_grad_norm: clip the gradient norm before each optimizer step.
        checkpoint_dir: ``last.pt`` written after each epoch (and ``best.pt``).
        resume: a checkpoint to continue from (weights, optimizer, scaler, scheduler, epoch, history).
        method_name: stored in checkpoints (default: what :func:`wsolkit.create_method` recorded on the method).
        method_options: stored in checkpoints (default: as ``method_name``).
        num_classes: stored in checkpoints and bounds the labels (default: as ``method_name``, else the model's).
        classes: class names stored in checkpoints (default: ``train_loader.dataset.classes`` when present).
        preprocessing: the :class:`~wsolkit.data.Preprocessing` the loader applies, stored in checkpoints
            (default: what the method declares, :func:`wsolkit.data.preprocessing`).
        metrics_csv: one row per epoch appended.
        callbacks: ``callback(record, method)`` after each epoch (TensorBoard, Lightning loggers, early stopping).
        progress: tqdm bars, kept when done (default: when stderr is a terminal).

    Returns:
        ``{"history": [per-epoch records], "selector": ModelSelector | None, "checkpoint": last.pt path | None}``.

    Example:
        >>> import wsolkit
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> m = wsolkit.create_method("gap", 2, backbone="smallcnn")
        >>> loader = DataLoader(TensorDataset(torch.rand(8, 3, 32, 32), torch.tensor([0, 1] * 4)), batch_size=4)
        >>> len(fit(m, loader, epochs=2, progress=False)["history"])
        2
    """
    if isinstance(train_loader, torch.Tensor):  # the tensor form of 0.2
        from wsolkit.training.tensors import fit_tensors

        warn_deprecated("fit(method, images, labels, ...)", "wsolkit.training.fit_tensors(method, images, labels, "
                        "...)")
        shared = {"epochs": epochs, "lr": lr, "weight_decay": weight_decay, "progress": progress,
                  "device": device if device is not None else "cpu"}
        return fit_tensors(method, train_loader, optimizer, *args, **shared, **deprecated)  # type: ignore
    if args:
        raise WSOLTypeError("fit(method, train_loader, optimizer, *, epochs=..., ...): options are keyword-only")
    if "recalibrate" in deprecated:
        deprecated.pop("recalibrate")
        warn_deprecated("fit(..., recalibrate=)", "nothing: fit calls method.on_fit_end(train_loader), which "
                        "recalibrates MaxMin")
    if deprecated:
        raise WSOLTypeError(f"fit() got unexpected keyword arguments {sorted(deprecated)}")
    from wsolkit.metrics.selection import ModelSelector

    epochs = check_int(epochs, "epochs", low=0)
    accumulate = check_int(accumulate, "accumulate", low=1)
    if select not in ("b-loc", "b-cl", None):
        raise WSOLValueError(f"`select` must be 'b-loc', 'b-cl' or None, got {select!r}")
    if hasattr(train_loader, "__len__") and len(train_loader) == 0:
        raise WSOLValueError("`train_loader` is empty: it yields no batch (an empty dataset, or drop_last=True with "
                             "fewer images than batch_size)")
    core = _core(method)
    device = torch.device(device) if device is not None else _device_of(method)
    method.to(device)
    amp = device.type == "cuda" if amp is None else bool(amp)
    progress = sys.stderr.isatty() if progress is None else bool(progress)
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
        load_state(core, ckpt, resume)
        for obj, key in ((optimizer, "optimizer"), (scaler, "scaler"), (scheduler, "scheduler")):
            if obj is not None and ckpt.get(key) is not None:
                obj.load_state_dict(ckpt[key])
        start, history = int(ckpt.get("epoch", 0)), list(ckpt.get("history", []))
        method_name = method_name or ckpt.get("method")
        method_options = method_options if method_options is not None else ckpt.get("options")
        num_classes = num_classes or ckpt.get("num_classes")
        classes = classes if classes is not None else ckpt.get("classes")
        for rec in history:
            if selector is not None and "pxap" in rec:
                selector.update(rec["epoch"], loc=rec["pxap"], cls=rec["accuracy"])
    num_classes = num_classes or getattr(core, "method_num_classes", None) or _num_classes(method)
    if classes is None:
        classes = getattr(getattr(train_loader, "dataset", None), "classes", None)
    meta = {"method_name": method_name, "num_classes": num_classes, "options": method_options,
            "classes": list(classes) if classes is not None else None, "preprocessing": preprocessing}
    run = _Run(method, optimizer, scaler, scheduler, device, amp, accumulate, max_grad_norm, num_classes, progress)
    last = None
    with _lifecycle_managed(core):
        for epoch in range(start, epochs):
            record = run.epoch(train_loader, epoch, epochs)
            _hook(core, "on_epoch_end", epoch)
            if val_loader is not None:
                res = _evaluate_loader(method, val_loader, device=device, amp=amp, progress=progress)
                record.update(accuracy=res["accuracy"], pxap=res["pxap"], n_loc=res["n_loc"])
                improved = selector.update(epoch, loc=res["pxap"], cls=res["accuracy"], model=core)
                if select is not None and improved[select] and ckpt_dir is not None:
                    save_checkpoint(ckpt_dir / "best.pt", method, epoch=epoch + 1, history=history + [record], **meta)
            history.append(record)
            if ckpt_dir is not None:
                last = save_checkpoint(ckpt_dir / "last.pt", method, optimizer=optimizer, scaler=scaler,
                                       scheduler=scheduler, epoch=epoch + 1, history=history, **meta)
            if metrics_csv is not None:
                _write_csv(Path(metrics_csv), record)
            for cb in callbacks:
                cb(record, method)
        if epochs > start:
            _finish(method, train_loader, selector, select, ckpt_dir, device, meta, optimizer, scaler, scheduler,
                    history)
    method.eval()
    return {"history": history, "selector": selector, "checkpoint": last}


def _hook(core: nn.Module, name: str, arg: Any) -> None:
    fn = getattr(core, name, None)
    if callable(fn):
        fn(arg)


def _finish(method: nn.Module, train_loader: Iterable, selector: Any, select: str | None, ckpt_dir: Path | None,
            device: torch.device, meta: dict[str, Any], optimizer: Any, scaler: Any, scheduler: Any,
            history: list[dict[str, Any]]) -> None:
    """``on_fit_end`` on the last weights (then ``last.pt``) and on the best weights (then ``best.pt``)."""
    core = _core(method)
    _hook(core, "on_fit_end", train_loader)
    if ckpt_dir is not None:
        save_checkpoint(ckpt_dir / "last.pt", method, optimizer=optimizer, scaler=scaler, scheduler=scheduler,
                        epoch=history[-1]["epoch"] + 1, history=history, **meta)
    if selector is None or select is None or not selector.history:
        return
    best = selector.best(select)
    if best["epoch"] == history[-1]["epoch"]:  # the last epoch is the best: its weights are already final
        state = None
    elif ckpt_dir is not None and (ckpt_dir / "best.pt").is_file():
        state = load_checkpoint(ckpt_dir / "best.pt", device)
    elif selector.keep_states:
        state = {"state_dict": selector.state(select)}
    else:
        return
    if state is not None:
        load_state(core, state, "the best epoch's weights")
        _hook(core, "on_fit_end", train_loader)
    if ckpt_dir is not None:
        save_checkpoint(ckpt_dir / "best.pt", method, epoch=best["epoch"] + 1,
                        history=[r for r in history if r["epoch"] <= best["epoch"]], **meta)


class _Run:
    """One epoch of training batches (AMP, accumulation, clipping, the optimizer and scheduler steps)."""

    def __init__(self, method, optimizer, scaler, scheduler, device, amp, accumulate, max_grad_norm, num_classes,
                 progress):
        self.method, self.optimizer, self.scaler, self.scheduler = method, optimizer, scaler, scheduler
        self.device, self.amp, self.accumulate, self.max_grad_norm = device, amp, accumulate, max_grad_norm
        self.num_classes, self.progress = num_classes, progress

    def epoch(self, loader: Iterable, epoch: int, epochs: int) -> dict[str, Any]:
        from tqdm.auto import tqdm

        method, device = self.method, self.device
        method.train()
        t0 = time.perf_counter()
        total, count, n_batches = 0.0, 0, 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", unit="batch", disable=not self.progress, leave=True)
        self.optimizer.zero_grad(set_to_none=True)
        for batch in bar:
            x, y, _ = _split_batch(batch)
            _check_batch_labels(y, self.num_classes)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            steps, loss = training_steps(method, x, y), 0.0
            while True:  # the forward of each step runs under autocast, its backward outside
                with torch.autocast(device.type, enabled=self.amp):
                    step = next(steps, None)
                if step is None:
                    break
                self.scaler.scale(step.total / self.accumulate).backward()
                loss += float(step.total.detach())
            n_batches += 1
            if n_batches % self.accumulate == 0:
                _optimizer_step(method, self.optimizer, self.scaler, self.scheduler, self.max_grad_norm)
            total += loss * len(y)
            count += len(y)
            bar.set_postfix(loss=f"{total / count:.3f}")
        if n_batches == 0:
            raise WSOLValueError("`train_loader` yielded no batch: nothing to train on (an empty dataset?)")
        if n_batches % self.accumulate:  # the last, incomplete accumulation
            _optimizer_step(method, self.optimizer, self.scaler, self.scheduler, self.max_grad_norm)
        return {"epoch": epoch, "loss": total / count, "seconds": time.perf_counter() - t0}


def _optimizer_step(method: nn.Module, optimizer: Any, scaler: Any, scheduler: Any, max_grad_norm: float | None):
    if max_grad_norm is not None:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(method.parameters(), max_grad_norm)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    if scheduler is not None:
        scheduler.step()
