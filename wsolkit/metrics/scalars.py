"""Scalar localization metrics: one number per metric, ``compute()`` a tensor — for Lightning and MetricCollection.

:class:`~wsolkit.metrics.LocalizationMeter` returns a dict of every metric; Lightning's ``self.log(name, metric)``
and ``self.log_dict(MetricCollection(...))`` need a ``compute()`` that returns a tensor. These meters are a
``LocalizationMeter`` (the same exact int64 histograms, the same ``update(cams, masks, labels=None)``, global under
``torch.distributed``) whose ``compute()`` returns one value, in percent, as a 0-dim float32 tensor. Every one of
them takes the same positional arguments, so a ``MetricCollection`` of them is updated with
``collection.update(cams, masks, labels)``; torchmetrics' compute groups then share one histogram between them.

In a LightningModule::

    def __init__(self):
        super().__init__()
        self.val_pxap = PxAP()
        self.val_loc = MetricCollection({"pxap": PxAP(), "peak_iou": PeakIoU()}, prefix="val_")

    def validation_step(self, batch, batch_idx):
        x, masks, y = batch
        out = self.model(x, labels=y)
        self.val_pxap.update(out.cams, masks, y)
        self.log("val_pxap", self.val_pxap)         # computed (and synchronised) at the end of the epoch
        self.val_loc.update(out.cams, masks, y)
        self.log_dict(self.val_loc)
"""

from __future__ import annotations

from typing import Any

import torch

from wsolkit._checks import WSOLTypeError, WSOLValueError
from wsolkit.metrics.meters import LocalizationMeter

__all__ = ["LocalizationScalar", "PxAP", "PeakIoU", "F1Pos", "F1Neg"]

#: keys of ``LocalizationMeter.compute()`` a :class:`LocalizationScalar` may return
SCALAR_KEYS = ("pxap", "tp_star", "fn_star", "fp_star", "tn_star", "max_miou", "f1_pos", "f1_neg")


class LocalizationScalar(LocalizationMeter):
    """One metric of :class:`~wsolkit.metrics.LocalizationMeter` as a 0-dim tensor (percent).

    Args:
        key: the metric, one of ``"pxap"``, ``"tp_star"``, ``"fn_star"``, ``"fp_star"``, ``"tn_star"``,
            ``"max_miou"``, ``"f1_pos"``, ``"f1_neg"`` (the named subclasses fix it).
        **kwargs: :class:`~wsolkit.metrics.LocalizationMeter` options (``num_thresholds``, ``ignore_index``,
            ``normalize``, ``f1_threshold``) and ``torchmetrics.Metric`` options.

    Example:
        >>> m = LocalizationScalar("tp_star")
        >>> masks = torch.zeros(2, 8, 8, dtype=torch.uint8); masks[:, 2:6, 2:6] = 1
        >>> m.update(masks.float(), masks)
        >>> m.compute()
        tensor(100.)
    """

    key: str = ""

    def __init__(self, key: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        key = type(self).key if key is None else key
        if not isinstance(key, str):
            raise WSOLTypeError(f"`key` must be a str, got {type(key).__name__}")
        if key not in SCALAR_KEYS:
            raise WSOLValueError(f"`key` must be one of {SCALAR_KEYS}, got {key!r}")
        self.key = key

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "key": self.key}

    def compute(self) -> torch.Tensor:  # type: ignore[override]
        """The metric in percent, a 0-dim float32 tensor on the meter's device (global under DDP)."""
        return torch.tensor(super().compute()[self.key], dtype=torch.float32, device=self.fg.device)


class PxAP(LocalizationScalar):
    """Pixel average precision (Choe et al. 2020), percent, as a tensor — see :class:`LocalizationScalar`.

    Example:
        >>> m = PxAP()
        >>> masks = torch.zeros(2, 8, 8, dtype=torch.uint8); masks[:, 2:6, 2:6] = 1
        >>> m.update(masks.float() + 0.01 * torch.rand(2, 8, 8), masks)
        >>> m.compute()
        tensor(100.)
    """

    key = "pxap"


class PeakIoU(LocalizationScalar):
    """Peak mean IoU: ``max_τ (IoU_fg(τ) + IoU_bg(τ)) / 2`` (the ``max_miou`` key), percent, as a tensor."""

    key = "max_miou"


class F1Pos(LocalizationScalar):
    """F1 of the foreground at ``f1_threshold`` (MaxMin paper: 0.5; the ``f1_pos`` key), percent, as a tensor."""

    key = "f1_pos"


class F1Neg(LocalizationScalar):
    """F1 of the background at ``f1_threshold`` (the ``f1_neg`` key), percent, as a tensor."""

    key = "f1_neg"
