"""Stateful metric meters: streaming updates, exact merging and ``torch.distributed`` synchronisation.

Every meter keeps only integer tensors (histograms and counters), so

- streaming over any batch split gives exactly the one-shot result;
- ``merge`` (another meter) and ``sync`` (all processes, ``all_reduce(SUM)``) are exact;
- memory is O(T) whatever the dataset size.

``sync(group=None)`` returns a new meter holding the sum over the processes of the group and leaves the local
meter untouched, so it can be called at every evaluation without double counting. Without an initialised process
group it returns a copy.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch

from wsolkit._checks import (
    ShapeError,
    WSOLTypeError,
    WSOLValueError,
    check_int,
    check_labels,
    check_ndim,
    check_number,
)
from wsolkit.metrics.boxes import IOU_LEVELS_V2, _box_compute, _box_update
from wsolkit.metrics.histogram import _histogram_update, _histogram_validate
from wsolkit.metrics.pixel import _localization_compute, threshold_index

__all__ = ["LocalizationMeter", "BoxAccuracyMeter", "ClassificationMeter"]


class _Meter:
    """Integer state in ``self._state`` (name → int64 tensor) and a config dict that must match to merge."""

    _state: dict[str, torch.Tensor]

    def _config(self) -> dict[str, Any]:
        raise NotImplementedError

    def _init_state(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget every update."""
        self._state = self._init_state()

    def state_dict(self) -> dict[str, Any]:
        """Config and integer state (CPU copies), for checkpoints or manual gathering."""
        return {"config": dict(self._config()), **{k: v.detach().cpu().clone() for k, v in self._state.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; the configuration must match."""
        if not isinstance(state, dict) or "config" not in state:
            raise WSOLTypeError(f"`state` must be a dict from {type(self).__name__}.state_dict()")
        self._check_config(state["config"], "state")
        new = {}
        for k, v in self._state.items():
            if k not in state:
                raise WSOLValueError(f"`state` misses the entry {k!r}")
            w = torch.as_tensor(state[k])
            if w.shape != v.shape:
                raise ShapeError(f"`state[{k!r}]` must have shape {tuple(v.shape)}, got {tuple(w.shape)}")
            new[k] = w.to(device=v.device, dtype=torch.int64).clone()
        self._state = new

    def _check_config(self, other: dict[str, Any], name: str) -> None:
        mine = self._config()
        if other != mine:
            diff = {k: (mine.get(k), other.get(k)) for k in set(mine) | set(other) if mine.get(k) != other.get(k)}
            raise WSOLValueError(f"`{name}` has a different configuration (this, other): {diff}")

    def merge(self, other: _Meter) -> _Meter:
        """Add the state of ``other`` (same class and configuration) to this meter; returns ``self``."""
        if type(other) is not type(self):
            raise WSOLTypeError(f"`other` must be a {type(self).__name__}, got {type(other).__name__}")
        self._check_config(other._config(), "other")
        for k in self._state:
            self._state[k] = self._state[k] + other._state[k].to(self._state[k].device)
        return self

    def sync(self, group: Any = None) -> _Meter:
        """A copy of this meter holding the sum of the states of all processes (``all_reduce(SUM)``).

        Works with any backend (tensors are moved to CUDA for NCCL). The configuration must be identical in every
        process (it is checked with ``all_gather_object``).
        """
        out = copy.deepcopy(self)
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return out
        configs: list[Any] = [None] * dist.get_world_size(group)
        dist.all_gather_object(configs, self._config(), group=group)
        for c in configs:
            self._check_config(c, "configuration of another process")
        backend = dist.get_backend(group)
        device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
        for k, v in out._state.items():
            buf = v.to(device=device, dtype=torch.int64).clone()
            dist.all_reduce(buf, op=dist.ReduceOp.SUM, group=group)
            out._state[k] = buf.to(v.device)
        return out

    def __repr__(self) -> str:
        cfg = ", ".join(f"{k}={v!r}" for k, v in self._config().items())
        return f"{type(self).__name__}({cfg})"


class LocalizationMeter(_Meter):
    """Streaming pixel metrics: PxAP, TP*/FN*/FP*/TN*, Dice/IoU/mIoU, F1+/F1− and curves.

    Args:
        num_thresholds: T (thresholds ``i / T``).
        ignore_index: mask value left out.
        normalize: per-image min-max normalisation (after selection / upsampling) in :meth:`update`.
        f1_threshold: threshold of F1+/F1− (MaxMin paper: 0.5).

    Example:
        >>> meter = LocalizationMeter(num_thresholds=100, normalize=True)
        >>> masks = torch.zeros(2, 16, 16, dtype=torch.uint8); masks[:, 4:12, 4:12] = 1
        >>> meter.update(masks.float()[:, ::2, ::2] + 0.1 * torch.rand(2, 8, 8), masks)
        >>> r = meter.compute()
        >>> r["pxap"] > 90, r["tp*"] + r["fn*"]
        (True, 100.0)
    """

    def __init__(
        self,
        num_thresholds: int = 1000,
        ignore_index: int | None = 255,
        normalize: bool = False,
        f1_threshold: float = 0.5,
    ) -> None:
        self.num_thresholds = check_int(num_thresholds, "num_thresholds", low=1)
        self.ignore_index = ignore_index
        self.normalize = bool(normalize)
        self.f1_threshold = check_number(f1_threshold, "f1_threshold", 0.0, 1.0)
        self.reset()

    def _config(self) -> dict[str, Any]:
        return {"num_thresholds": self.num_thresholds, "ignore_index": self.ignore_index, "normalize": self.normalize}

    def _init_state(self) -> dict[str, torch.Tensor]:
        z = torch.zeros(self.num_thresholds + 1, dtype=torch.int64)
        return {"fg": z, "bg": z.clone(), "n_images": torch.zeros((), dtype=torch.int64)}

    @property
    def fg(self) -> torch.Tensor:
        """Foreground counts per bin ``(T + 1,)``."""
        return self._state["fg"]

    @property
    def bg(self) -> torch.Tensor:
        """Background counts per bin ``(T + 1,)``."""
        return self._state["bg"]

    def update(
        self,
        cams: torch.Tensor,
        masks: torch.Tensor,
        labels: torch.Tensor | int | None = None,
        validate_args: bool = True,
    ) -> None:
        """Add a batch (see :func:`wsolkit.metrics.localization_histogram` for the shapes)."""
        if validate_args:
            _histogram_validate(cams, masks, self.num_thresholds, self.ignore_index, labels)
        if cams.shape[0] == 0:
            return
        fg, bg = _histogram_update(cams, masks, self.num_thresholds, self.ignore_index, labels, self.normalize)
        dev = self._state["fg"].device
        if fg.device != dev and int(self._state["n_images"]) == 0:
            self._state = {k: v.to(fg.device) for k, v in self._state.items()}
            dev = fg.device
        self._state["fg"] += fg.to(dev)
        self._state["bg"] += bg.to(dev)
        self._state["n_images"] += cams.shape[0]

    def compute(self, threshold: float | None = None) -> dict:
        """All metrics (see :func:`wsolkit.metrics.localization_metrics`); ``threshold`` fixes the operating τ."""
        t = self.num_thresholds
        if threshold is not None:
            threshold_index(threshold, t)
        out = _localization_compute(self.fg, self.bg, threshold, self.f1_threshold)
        out["n_images"] = int(self._state["n_images"])
        return out


class BoxAccuracyMeter(_Meter):
    """Streaming MaxBoxAcc / MaxBoxAccV2 / top-1 localization (see :mod:`wsolkit.metrics.boxes`).

    Args:
        num_thresholds: T (CAM thresholds ``np.arange(0, 1, 1 / T)``).
        iou_levels: IoU levels δ (percent) of MaxBoxAccV2.
        normalize: per-image min-max normalisation in :meth:`update`.

    Example:
        >>> meter = BoxAccuracyMeter(num_thresholds=20)
        >>> cams = torch.zeros(1, 16, 16); cams[0, 4:8, 2:10] = 1.0
        >>> meter.update(cams, [torch.tensor([[2, 4, 9, 7]])])
        >>> meter.compute()["maxboxacc"]
        100.0
    """

    def __init__(
        self, num_thresholds: int = 1000, iou_levels: Sequence[int] = IOU_LEVELS_V2, normalize: bool = False
    ) -> None:
        self.num_thresholds = check_int(num_thresholds, "num_thresholds", low=1)
        self.iou_levels = tuple(check_int(v, "iou_levels", 0, 100) for v in iou_levels)
        if not self.iou_levels:
            raise WSOLValueError("`iou_levels` must not be empty")
        self.normalize = bool(normalize)
        self.reset()

    def _config(self) -> dict[str, Any]:
        return {"num_thresholds": self.num_thresholds, "iou_levels": self.iou_levels, "normalize": self.normalize}

    def _init_state(self) -> dict[str, torch.Tensor]:
        t = self.num_thresholds
        return {
            "correct_v1": torch.zeros(t, dtype=torch.int64),
            "correct_v2": torch.zeros(len(self.iou_levels), t, dtype=torch.int64),
            "correct_top1": torch.zeros(t, dtype=torch.int64),
            "n_images": torch.zeros((), dtype=torch.int64),
            "n_cls_correct": torch.zeros((), dtype=torch.int64),
        }

    def update(
        self,
        cams: torch.Tensor,
        boxes: Sequence,
        labels: torch.Tensor | int | None = None,
        preds: torch.Tensor | None = None,
        image_size: tuple[int, int] | None = None,
    ) -> None:
        """Add a batch: maps ``(B, H, W)`` or ``(B, C, h, w)`` (with ``labels``), boxes per image ``(M, 4)``.

        With ``preds`` (predicted classes ``(B,)``) and ``labels``, top-1 localization is counted.
        """
        correct = None
        if preds is not None:
            if not isinstance(labels, torch.Tensor):
                raise WSOLTypeError("`labels` (a (B,) tensor) is required with `preds`")
            correct = preds.to(labels.device) == labels
        st = _box_update(cams, boxes, self.num_thresholds, self.iou_levels, labels, correct, self.normalize,
                         image_size)
        for k in self._state:
            self._state[k] = self._state[k] + st[k]

    def compute(self) -> dict:
        """``{"maxboxacc", "maxboxacc_v2", "boxacc_v2@δ", "best_threshold", "top1_loc", "n_images", "curves"}``."""
        return _box_compute(self._state, self.iou_levels)


class ClassificationMeter(_Meter):
    """Streaming classification accuracy (survey eq. 13) and confusion matrix.

    Args:
        num_classes: number of classes C.

    Example:
        >>> meter = ClassificationMeter(num_classes=2)
        >>> meter.update(torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]]), torch.tensor([0, 1, 1]))
        >>> round(meter.compute()["accuracy"], 4)
        66.6667
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = check_int(num_classes, "num_classes", low=1)
        self.reset()

    def _config(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes}

    def _init_state(self) -> dict[str, torch.Tensor]:
        return {"confusion": torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)}

    def update(self, preds: torch.Tensor, labels: torch.Tensor) -> None:
        """Add a batch: logits ``(B, C)`` (argmax is taken) or predicted classes ``(B,)``, true ``labels (B,)``."""
        c = self.num_classes
        check_ndim(preds, "preds", (1, 2), "(B,) or (B, C)")
        if preds.ndim == 2:
            if preds.shape[1] != c:
                raise ShapeError(f"`preds` must have shape (B, {c}), got {tuple(preds.shape)}")
            preds = preds.argmax(1)
        check_labels(preds, "preds", preds.shape[0], c)
        check_labels(labels, "labels", preds.shape[0], c)
        idx = labels.long().cpu() * c + preds.long().cpu()
        self._state["confusion"] += torch.bincount(idx, minlength=c * c).view(c, c)

    def compute(self) -> dict:
        """``{"accuracy", "per_class_accuracy", "confusion", "n"}``; rows of ``confusion`` are the true classes."""
        cm = self._state["confusion"]
        n = int(cm.sum())
        acc = float(cm.diag().sum()) * 100.0 / n if n else float("nan")
        rows = cm.sum(1).double()
        per = torch.where(rows > 0, cm.diag().double() * 100.0 / rows.clamp_min(1), torch.full_like(rows, float("nan")))
        return {"accuracy": acc, "per_class_accuracy": per.tolist(), "confusion": cm.clone(), "n": n}
