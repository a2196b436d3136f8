"""The two output contracts of wsolkit: what a method's ``forward`` returns and what a training step yields."""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["WSOLOutput", "LossOutput"]


class WSOLOutput(NamedTuple):
    """What every method (and every bottom-up head) returns from ``forward(x, labels=None)``.

    A :class:`~typing.NamedTuple`, so it unpacks like a tuple and passes through DDP and ``torch.compile``.

    ``cams`` are **raw evidence maps**: higher means more evidence for the class, on any scale, at a resolution no
    larger than the input; :func:`wsolkit.cams.postprocess` and the localization meters turn them into the
    protocol's ``[0, 1]`` maps. What they are, per family:

    - bottom-up pooling heads (``gap``, ``max``, ``lse``, ``wildcat``, ``prm``): the class maps ``M_c`` the pooling
      reads, at the feature resolution (WILDCAT: the modality average);
    - ``deepmil``: the attention logits per class (the softmax attention weights are in ``aux["attention"]``);
    - refinement (``has``, ``adl``, ``cutmix``): the GAP class maps of the trained network; ``acol``: the element-wise
      maximum of both branches' maps (``aux["cams_a"]``, ``aux["cams_b"]``); ``spg``: the class maps of the main
      branch (side-branch maps in ``aux``); ``tscam``: semantic maps × class-token attention;
    - ``cam``: ``W_c · F`` read off a classifier's own last linear layer; explainers: the method's map
      (e.g. ReLU(Σ_k α_k A_k)) for the explained class, ``(B, 1, h, w)``;
    - ``maxmin``: the localizer's class maps (the mask ``R⁺`` in ``aux["mask"]``);
    - ``fcam`` / ``negev``: the decoder's foreground logit map, ``(B, 1, H, W)`` (its probabilities in
      ``aux["probs"]``).

    Attributes:
        logits: class scores before softmax.
        cams: raw evidence maps, one per class ``(B, K, h, w)`` or class-specific ``(B, 1, h, w)``.
        aux: method-specific tensors only (side branches, normalised maps, attention, probabilities). Empty dict
            when none.

    Shape:
        - logits: :math:`(B, K)`
        - cams: :math:`(B, K, h, w)` or :math:`(B, 1, h, w)`

    Example:
        >>> out = WSOLOutput(torch.zeros(2, 3), torch.zeros(2, 3, 7, 7), {})
        >>> logits, cams, aux = out
        >>> cams.shape
        torch.Size([2, 3, 7, 7])
    """

    logits: torch.Tensor
    cams: torch.Tensor
    aux: dict[str, torch.Tensor]


class LossOutput(NamedTuple):
    """One training step of a method: the loss to back-propagate and its named terms.

    Attributes:
        total: the scalar to call ``backward()`` on.
        terms: detached scalar tensors, one per term of the objective (for logging); ``terms`` never hold graphs.

    Example:
        >>> step = LossOutput(torch.tensor(1.5), {"ce": torch.tensor(1.5)})
        >>> float(step.total), sorted(step.terms)
        (1.5, ['ce'])
    """

    total: torch.Tensor
    terms: dict[str, torch.Tensor]
