"""Model selection of the WSOL protocol (Choe et al. 2020; survey Sec. 3.1 and 4.3).

- **B-LOC**: a few validation images per class also get pixel-level masks; the epoch with the best localization
  (PxAP) on this small subset is kept. :func:`bloc_subset` draws it (GlaS: 3 per class, CAMELYON16: 5 per class).
- **B-CL**: the epoch with the best classification accuracy on the full validation set (image labels only).

:class:`ModelSelector` tracks both side by side so the two choices can be compared (survey Fig. 9, Tables 6-7).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

import torch

from wsolkit._checks import WSOLValueError, check_int, check_integer, check_number

__all__ = ["BLOC_PER_CLASS", "bloc_subset", "ModelSelector"]

#: samples per class with masks for B-LOC selection in the survey (Sec. 3.3)
BLOC_PER_CLASS = {"glas": 3, "camelyon16": 5}


def bloc_subset(labels: torch.Tensor, k_per_class: int, seed: int = 0) -> torch.Tensor:
    """Indices of a class-balanced random subset with ``k_per_class`` samples of each class present.

    Args:
        labels: image-level labels of the validation set.
        k_per_class: samples per class (GlaS 3, CAMELYON16 5: :data:`BLOC_PER_CLASS`).
        seed: seed of the draw (a private generator; the global RNG is not touched).

    Returns:
        Sorted int64 indices into ``labels``, ``k_per_class`` per class.

    Shape:
        - labels: :math:`(N,)`

    Example:
        >>> idx = bloc_subset(torch.tensor([0, 1, 0, 1, 0, 1, 0]), 2, seed=0)
        >>> len(idx), torch.tensor([0, 1, 0, 1, 0, 1, 0])[idx].bincount().tolist()
        (4, [2, 2])
    """
    check_integer(labels, "labels")
    if labels.ndim != 1:
        raise WSOLValueError(f"`labels` must have shape (N,), got {tuple(labels.shape)}")
    k = check_int(k_per_class, "k_per_class", low=1)
    g = torch.Generator().manual_seed(int(seed))
    labels = labels.cpu()
    out = []
    for c in torch.unique(labels).tolist():
        pool = torch.nonzero(labels == c).flatten()
        if pool.numel() < k:
            raise WSOLValueError(f"class {c} has {pool.numel()} samples in `labels`, fewer than k_per_class={k}")
        out.append(pool[torch.randperm(pool.numel(), generator=g)[:k]])
    return torch.cat(out).sort().values if out else torch.zeros(0, dtype=torch.long)


class ModelSelector:
    """Track the best epoch by localization (B-LOC) and by classification (B-CL) side by side.

    Ties keep the earliest epoch. With ``keep_states=True`` a CPU copy of the model ``state_dict`` of each best
    epoch is stored.

    Example:
        >>> sel = ModelSelector()
        >>> for epoch, (loc, cl) in enumerate([(40.0, 80.0), (55.0, 85.0), (50.0, 95.0)]):
        ...     _ = sel.update(epoch, loc=loc, cls=cl)
        >>> sel.best("b-loc")["epoch"], sel.best("b-cl")["epoch"]
        (1, 2)
    """

    def __init__(self, keep_states: bool = False) -> None:
        self.keep_states = bool(keep_states)
        self.history: list[dict[str, Any]] = []
        self._best: dict[str, dict[str, Any] | None] = {"b-loc": None, "b-cl": None}
        self._states: dict[str, Any] = {}

    def update(
        self,
        epoch: int,
        loc: float,
        cls: float,
        model: torch.nn.Module | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, bool]:
        """Record an epoch's validation localization (e.g. PxAP on the B-LOC subset) and classification scores.

        Returns:
            ``{"b-loc": improved, "b-cl": improved}``.
        """
        check_int(epoch, "epoch")
        rec = {"epoch": epoch, "loc": check_number(loc, "loc"), "cls": check_number(cls, "cls"), **(extra or {})}
        self.history.append(rec)
        improved = {}
        for key, field in (("b-loc", "loc"), ("b-cl", "cls")):
            cur = self._best[key]
            better = cur is None or rec[field] > cur[field] or (math.isnan(cur[field]) and not math.isnan(rec[field]))
            improved[key] = bool(better)
            if better:
                self._best[key] = dict(rec)
                if self.keep_states and model is not None:
                    self._states[key] = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
        return improved

    def best(self, criterion: str = "b-loc") -> dict[str, Any]:
        """The record of the best epoch under ``"b-loc"`` or ``"b-cl"``."""
        if criterion not in self._best:
            raise WSOLValueError(f"`criterion` must be 'b-loc' or 'b-cl', got {criterion!r}")
        rec = self._best[criterion]
        if rec is None:
            raise WSOLValueError("no epoch recorded yet: call update() first")
        return dict(rec)

    def state(self, criterion: str = "b-loc") -> dict[str, torch.Tensor]:
        """The stored model ``state_dict`` of the best epoch (requires ``keep_states=True``)."""
        self.best(criterion)
        if criterion not in self._states:
            raise WSOLValueError("no model state stored: create the selector with keep_states=True and pass `model`")
        return self._states[criterion]

    def summary(self) -> dict[str, dict[str, Any] | None]:
        """Best records of both criteria."""
        return {k: (dict(v) if v is not None else None) for k, v in self._best.items()}
