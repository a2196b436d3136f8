"""The shared base of wsolkit's meters: a ``torchmetrics.Metric`` with int64 sum states and a configuration.

- ``compute()`` is global under ``torch.distributed`` (torchmetrics gathers and sums the states, then restores the
  local ones), so every rank gets the value of the whole dataset with no extra call;
- ``merge(other)`` adds another meter's state (same class and configuration);
- ``state_dict()`` holds the integer states and the configuration (``_extra_state``); ``load_state_dict`` checks
  the configuration and also reads the ``{"config": ..., <states>}`` dicts of the previous release;
- results are :class:`MetricDict`: percentages, snake_case keys; the keys of the previous release (``"tp*"``,
  ``"f1+"``, ...) still read, with a :class:`DeprecationWarning`.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torchmetrics import Metric

from wsolkit._checks import ShapeError, WSOLTypeError, WSOLValueError
from wsolkit._deprecation import warn_deprecated

__all__ = ["MetricDict", "WSOLMetric"]

#: keys of the previous release → current keys
_OLD_KEYS = {
    "tp*": "tp_star",
    "fn*": "fn_star",
    "fp*": "fp_star",
    "tn*": "tn_star",
    "f1+": "f1_pos",
    "f1-": "f1_neg",
    "boxacc_v2@30": "boxacc_v2_iou30",
    "boxacc_v2@50": "boxacc_v2_iou50",
    "boxacc_v2@70": "boxacc_v2_iou70",
    "n": "n_images",
}


class MetricDict(dict):
    """A ``dict`` of results that still answers the previous release's keys (with a ``DeprecationWarning``).

    Example:
        >>> import warnings; warnings.simplefilter("ignore", DeprecationWarning)
        >>> MetricDict({"tp_star": 40.0})["tp*"]
        40.0
    """

    def __missing__(self, key: str) -> Any:
        new = _OLD_KEYS.get(key)
        if new is None or new not in self:
            raise KeyError(key)
        warn_deprecated(f"result key {key!r}", repr(new))
        return self[new]

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or (key in _OLD_KEYS and dict.__contains__(self, _OLD_KEYS[key]))


class WSOLMetric(Metric):
    """``torchmetrics.Metric`` with int64 sum states, a configuration, ``merge`` and a checked ``state_dict``."""

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("compute_with_cache", False)  # compute(threshold=...) takes arguments
        super().__init__(**kwargs)

    def _add_int_state(self, name: str, shape: tuple[int, ...]) -> None:
        self.add_state(name, torch.zeros(shape, dtype=torch.int64), dist_reduce_fx="sum", persistent=True)

    def _config(self) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def _state(self) -> dict[str, torch.Tensor]:
        """The integer states by name (read-only view)."""
        return {k: getattr(self, k) for k in self._defaults}

    def _check_config(self, other: dict[str, Any], name: str) -> None:
        mine = self._config()
        if other != mine:
            diff = {k: (mine.get(k), other.get(k)) for k in set(mine) | set(other) if mine.get(k) != other.get(k)}
            raise WSOLValueError(f"`{name}` has a different configuration (this, other): {diff}")

    def get_extra_state(self) -> Any:
        return {"config": self._config()}

    def set_extra_state(self, state: Any) -> None:
        if not isinstance(state, dict) or "config" not in state:
            raise WSOLTypeError(f"`state` must come from {type(self).__name__}.state_dict()")
        self._check_config(state["config"], "state")

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        """Restore a :meth:`state_dict` (also the previous release's ``{"config": ..., ...}`` form)."""
        if not isinstance(state_dict, dict):
            raise WSOLTypeError(f"`state` must be a dict from {type(self).__name__}.state_dict()")
        state = dict(state_dict)
        if "config" in state:
            state["_extra_state"] = {"config": state.pop("config")}
        if "_extra_state" not in state:
            raise WSOLTypeError(f"`state` must be a dict from {type(self).__name__}.state_dict()")
        self.set_extra_state(state["_extra_state"])
        for k, v in self._state.items():
            if k not in state:
                raise WSOLValueError(f"`state` misses the entry {k!r}")
            w = torch.as_tensor(state[k])
            if w.shape != v.shape:
                raise ShapeError(f"`state[{k!r}]` must have shape {tuple(v.shape)}, got {tuple(w.shape)}")
            state[k] = w.to(device=v.device, dtype=torch.int64)
        return super().load_state_dict(state, strict=strict, assign=assign)

    def merge(self, other: WSOLMetric) -> WSOLMetric:
        """Add the state of ``other`` (same class and configuration) to this meter; returns ``self``."""
        if type(other) is not type(self):
            raise WSOLTypeError(f"`other` must be a {type(self).__name__}, got {type(other).__name__}")
        self._check_config(other._config(), "other")
        for k in self._defaults:
            setattr(self, k, getattr(self, k) + getattr(other, k).to(getattr(self, k).device))
        self._update_count += other._update_count
        return self

    def sync(self, *args: Any, **kwargs: Any) -> Any:
        """torchmetrics' in-place ``sync``; called as ``sync()`` / ``sync(group=...)``: deprecated synced copy.

        ``compute()`` already returns the global value under ``torch.distributed``; the previous release's
        ``sync()`` returned a copy holding the all-reduced state, and still does (with a ``DeprecationWarning``).
        """
        if args or set(kwargs) - {"group"}:
            return super().sync(*args, **kwargs)
        warn_deprecated("meter.sync()", "meter.compute(), already global under torch.distributed")
        out = copy.deepcopy(self)
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            group = kwargs.get("group")
            configs: list[Any] = [None] * dist.get_world_size(group)
            dist.all_gather_object(configs, self._config(), group=group)
            for c in configs:
                self._check_config(c, "configuration of another process")
            Metric.sync(out, process_group=group, should_sync=True)
            out._is_synced = False
            out._cache = None
        return out

    def __repr__(self) -> str:
        cfg = ", ".join(f"{k}={v!r}" for k, v in self._config().items())
        return f"{type(self).__name__}({cfg})"
