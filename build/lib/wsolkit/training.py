"""The training loop of the method protocol, over DataLoaders (or in-memory tensors), with evaluation and checkpoints.

:func:`fit` is ``for step in training_steps(method, x, y): step.total.backward()`` per batch, plus what a real run
needs: AMP on CUDA (``GradScaler``), gradient accumulation, a tqdm bar, a checkpoint each epoch (loaded with
``torch.load(weights_only=True)``), ``resume=``, B-LOC / B-CL model selection on a validation loader
(:class:`~wsolkit.metrics.ModelSelector`) and per-epoch metrics to a CSV or callbacks. Nothing is forced: the same
three lines work in any loop (Lightning, a DDP script).

Checkpoint format (a dict of tensors and plain Python values)::

    {"format": "wsolkit-checkpoint-1", "method": name | None, "num_classes": K, "options": {...},
     "state_dict": ..., "optimizer": ... | None, "scaler": ... | None, "scheduler": ... | None, "epoch": e,
     "history": [per-epoch records], "wsolkit_version": "..."}

:func:`load_method` rebuilds the method with ``wsolkit.create_method(method, num_classes, **options)``.
"""

from __future__ import annotations

import csv
import math
import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from wsolkit import cams as cam_ops
from wsolkit._checks import WSOLTypeError, WSOLValueError, check_int
from wsolkit.data.preprocessing import IMAGENET, preprocessing
from wsolkit.metrics import localization_histogram, pxap_from_histogram
from wsolkit.output import LossOutput

__all__ = ["training_steps", "fit", "evaluate", "predict_maps", "save_checkpoint", "load_checkpoint", "load_method",
           "CHECKPOINT_FORMAT", "standardize"]

CHECKPOINT_FORMAT = "wsolkit-checkpoint-1"
_DEPRECATED = {"IMAGENET_MEAN": IMAGENET.mean, "IMAGENET_STD": IMAGENET.std}


def __getattr__(name: str) -> Any:
    if name in _DEPRECATED:
        warnings.warn(f"wsolkit.training.{name} is deprecated: use wsolkit.data.preprocessing(model) (or "
                      f"wsolkit.data.IMAGENET.{name.split('_')[1].lower()})", DeprecationWarning, stacklevel=2)
        return _DEPRECATED[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def standardize(images: torch.Tensor) -> torch.Tensor:
    """Deprecated: ImageNet standardisation; use ``wsolkit.data.preprocessing(model)(images)``."""
    warnings.warn("wsolkit.training.standardize is deprecated: use wsolkit.data.preprocessing(model)(images)",
                  DeprecationWarning, stacklevel=2)
    return IMAGENET(images)


def _core(method: nn.Module) -> nn.Module:
    while isinstance(method, nn.parallel.DistributedDataParallel) or hasattr(method, "_orig_mod"):
        method = method.module if isinstance(method, nn.parallel.DistributedDataParallel) else method._orig_mod
    return method


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


# ----------------------------------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: str | os.PathLike, method: nn.Module, *, method_name: str | None = None,
                    num_classes: int | None = None, options: dict[str, Any] | None = None, **state: Any) -> Path:
    """Write a checkpoint (see the module docstring); ``state`` adds ``optimizer``, ``scaler``, ``epoch``, ...

    The method's name, class count and plain options default to what :func:`wsolkit.create_method` recorded on it,
    so ``load_method(save_checkpoint(path, wsolkit.create_method(...)))`` rebuilds the same method. Values of
    ``state`` that have a ``state_dict()`` (optimizer, scaler, scheduler) are stored as their state dict.

    Example:
        >>> import tempfile, wsolkit
        >>> m = wsolkit.create_method("gap", 2, backbone="smallcnn")
        >>> p = save_checkpoint(tempfile.mkdtemp() + "/m.pt", m)
        >>> type(load_method(p)).__name__, load_checkpoint(p)["options"]
        ('WSOLModel', {'backbone': 'smallcnn'})
    """
    from wsolkit import __version__

    core = _core(method)
    if num_classes is None:
        num_classes = getattr(core, "method_num_classes", None)
    if options is None:
        options = getattr(core, "method_options", None)
    ckpt = {"format": CHECKPOINT_FORMAT, "method": method_name or getattr(core, "method_name", None),
            "num_classes": num_classes, "options": dict(options or {}),
            "state_dict": {k: v.detach().cpu() for k, v in _core(method).state_dict().items()},
            "wsolkit_version": __version__}
    for key, value in state.items():
        ckpt[key] = value.state_dict() if callable(getattr(value, "state_dict", None)) else value
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(ckpt, tmp)
    os.replace(tmp, path)  # never a half-written checkpoint
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)`` and check its format."""
    path = Path(path)
    if not path.is_file():
        raise WSOLValueError(f"checkpoint {str(path)!r} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise WSOLValueError(f"cannot read checkpoint {str(path)!r}: {exc}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise WSOLValueError(f"{str(path)!r} is not a wsolkit checkpoint (no 'state_dict' entry)")
    return ckpt


def load_method(checkpoint: str | os.PathLike | dict[str, Any], map_location: str | torch.device = "cpu",
                **overrides: Any) -> nn.Module:
    """Rebuild a method from a checkpoint with :func:`wsolkit.create_method` and load its weights (eval mode).

    Args:
        checkpoint: a path or a loaded checkpoint dict (needs ``"method"``, ``"num_classes"``, ``"options"``).
        map_location: where tensors are loaded.
        **overrides: replace stored options (e.g. ``classifier=`` a module for methods over a classifier).
    """
    import wsolkit

    ckpt = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint, map_location)
    if not ckpt.get("method"):
        raise WSOLValueError("the checkpoint does not name its method: pass `method_name=` to fit/save_checkpoint")
    method = wsolkit.create_method(ckpt["method"], ckpt.get("num_classes"), **{**ckpt.get("options", {}), **overrides})
    method.load_state_dict(ckpt["state_dict"])
    return method.eval()


# ---------------------------------------------------------------------------------------------------- evaluation
def _split_batch(batch: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    if not isinstance(batch, (list, tuple)) or len(batch) not in (2, 3):
        raise WSOLTypeError("loader batches must be (images, labels) or (images, labels, masks)")
    x, y = batch[0], torch.as_tensor(batch[1])
    return x, y, (batch[2] if len(batch) == 3 else None)


@torch.no_grad()
def _evaluate_loader(method: nn.Module, loader: Iterable, *, device: Any = None, num_thresholds: int = 1000,
                     roi_only: bool = True, amp: bool | None = None, progress: bool = False) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from wsolkit.metrics.meters import ClassificationMeter, LocalizationMeter

    device = torch.device(device) if device is not None else _device_of(method)
    amp = device.type == "cuda" if amp is None else amp
    was = method.training
    method.eval()
    loc = LocalizationMeter(num_thresholds, normalize=True)
    cls: Any = None
    n_loc = 0
    try:
        for batch in tqdm(loader, desc="evaluate", unit="batch", disable=not progress, leave=False):
            x, y, m = _split_batch(batch)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device.type, enabled=amp):
                out = method(x)
            logits = out.logits.float()
            if cls is None:
                cls = ClassificationMeter(logits.shape[1])
            labelled = y >= 0
            if labelled.any():
                cls.update(logits[labelled], y[labelled])
            if m is None:
                continue
            m = m.to(device)
            keep = labelled & ((m == 1).flatten(1).any(1) if roi_only else (m != 255).flatten(1).any(1))
            if keep.any():
                loc.update(out.cams.float()[keep], m[keep], y[keep])
                n_loc += int(keep.sum())
    finally:
        method.train(was)
    acc = cls.compute() if cls is not None else {"accuracy": float("nan")}
    res: dict[str, Any] = {"accuracy": acc["accuracy"], "n_loc": n_loc,
                           "pxap": loc.compute()["pxap"] if n_loc else float("nan")}
    return res


def evaluate(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Accuracy and PxAP of a method over a loader — ``evaluate(method, loader, *, device, num_thresholds,
    roi_only, amp, progress)`` — or of precomputed maps — ``evaluate(logits, maps, labels, masks, roi_only=True)``.

    Loader form: batches ``(images, labels[, masks])`` of model-ready images; maps of the true class go through the
    protocol (upsampling, per-image min-max) inside :class:`~wsolkit.metrics.LocalizationMeter`; localization is
    measured on images with foreground pixels (``roi_only``, as in the survey for CAMELYON16's normal images) or any
    non-ignored pixel; images labelled ``-1`` are skipped. Returns ``{"accuracy", "pxap", "n_loc"}`` (percent).

    Tensor form: ``logits (N, C)``, ``maps (N, H, W)`` normalised, ``labels (N,)``, ``masks (N, H, W)``; returns
    ``{"accuracy", "pxap", "pxap_baseline", "n_loc"}``.

    Example:
        >>> import wsolkit
        >>> m = wsolkit.create_method("gap", 2, backbone="smallcnn")
        >>> masks = torch.zeros(4, 32, 32, dtype=torch.uint8); masks[:, 8:24, 8:24] = 1
        >>> loader = [(torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 0, 1]), masks)]
        >>> sorted(evaluate(m, loader))
        ['accuracy', 'n_loc', 'pxap']
    """
    if args and isinstance(args[0], torch.Tensor):
        return _evaluate_tensors(*args, **kwargs)
    return _evaluate_loader(*args, **kwargs)


def _evaluate_tensors(logits: torch.Tensor, maps: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor,
                      roi_only: bool = True) -> dict[str, float]:
    acc = 100.0 * float((logits.argmax(1) == labels).float().mean())
    keep = (masks == 1).flatten(1).any(1) if roi_only else torch.ones(len(masks), dtype=torch.bool)
    fg, bg = localization_histogram(maps[keep], masks[keep])
    ones_fg, ones_bg = localization_histogram(torch.zeros_like(maps[keep]), masks[keep])
    return {"accuracy": acc, "pxap": pxap_from_histogram(fg, bg),
            "pxap_baseline": pxap_from_histogram(ones_fg, ones_bg),
            "n_loc": int(keep.sum())}


def _num_classes(method: nn.Module) -> int | None:
    from wsolkit.method import classifier_num_classes

    for m in _core(method).modules():
        k = classifier_num_classes(m)
        if k is not None:
            return k
    return None


def _device_of(method: nn.Module) -> torch.device:
    p = next(iter(method.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def predict_maps(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    batch_size: int = 64,
    cam_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor]] | None = None,
    device: str | torch.device = "cpu",
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and protocol-processed maps (target class = ``labels``, else the prediction) at the image size.

    Args:
        model: a method returning :class:`~wsolkit.output.WSOLOutput`.
        images: ``(N, 3, H, W)`` in ``[0, 1]``.
        labels: classes whose maps are taken; ``None`` → predicted class.
        batch_size: inference batch size.
        cam_fn: ``cam_fn(model, x, y) -> (logits, raw maps (B, C, h, w))`` for models that localise differently.
        device: device to run on.
        preprocess: normalisation of the images (default: :func:`wsolkit.data.preprocessing` of ``model``).

    Returns:
        ``(logits (N, C), maps (N, H, W))`` on the CPU.
    """
    preprocess = preprocess if preprocess is not None else preprocessing(model)
    was = model.training
    model.to(device).eval()
    all_logits, all_maps = [], []
    try:
        for i in range(0, images.shape[0], batch_size):
            x = preprocess(images[i : i + batch_size].to(device))
            y = labels[i : i + batch_size].to(device) if labels is not None else None
            if cam_fn is not None:
                logits, raw = cam_fn(model, x, y)
            else:
                out = model(x)
                logits, raw = out.logits, out.cams
            target = y if y is not None else logits.argmax(1)
            all_maps.append(cam_ops.postprocess(raw.float(), target, images.shape[-2:]).cpu())
            all_logits.append(logits.float().cpu())
    finally:
        model.train(was)
    return torch.cat(all_logits), torch.cat(all_maps)


# ------------------------------------------------------------------------------------------------------- training
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

