"""The method protocol: every WSOL method is an ``nn.Module`` from one registry, with one forward and one loss shape.

- :func:`create_method` builds any registered method; :func:`list_methods` lists them; :func:`register_method`
  adds one (your own included — it is then covered by the conformance suite).
- ``method(x, labels=None) -> WSOLOutput``: logits, raw evidence maps and ``aux`` tensors. ``labels`` are the
  classes whose maps are asked for (``None``: the predicted class): a method whose map of class y depends on y
  (explainers, ACoL, ...) uses them, the others ignore them. :func:`wsolkit.localize` is the one way from a method
  to maps.
- ``method.training_steps(x, labels)`` yields :class:`~wsolkit.output.LossOutput` s; back-propagate each one as it
  comes. Most methods yield once; MaxMin yields once per erasing step so memory stays flat in ``u``. One loop trains
  every trainable method::

      for x, y in loader:
          optimizer.zero_grad()
          for step in method.training_steps(x, y):
              step.total.backward()
          optimizer.step()

  Under :class:`~torch.nn.parallel.DistributedDataParallel` use :func:`wsolkit.training.training_steps`
  ``(ddp_model, x, y)``, which runs the forward passes through the wrapper.
- Methods over a trained classifier (``cam``, the explainers) are not trained: ``trainable`` is ``False`` and
  ``training_steps`` raises :class:`NotTrainableError` — train the classifier, then wrap it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from wsolkit._checks import WSOLTypeError, WSOLValueError, check_int
from wsolkit._modules import classifier_num_classes, resolve_classifier
from wsolkit.output import LossOutput, WSOLOutput
from wsolkit.registry import Registry

__all__ = [
    "WSOLMethod",
    "NotTrainableError",
    "create_method",
    "list_methods",
    "register_method",
    "method_info",
    "resolve_backbone",
    "resolve_classifier",
    "classifier_num_classes",
]

_METHODS: Registry[Callable[..., nn.Module]] = Registry("method")

#: what a registered method is built over
_NEEDS = ("backbone", "classifier")


class NotTrainableError(WSOLTypeError):
    """``training_steps`` was called on a method that is not trained (explainers, ``cam``)."""


class WSOLMethod(nn.Module):
    """Base class of every method: ``forward(x, labels=None) -> WSOLOutput`` and ``training_steps``.

    Subclasses implement :meth:`forward` and, when their objective is not cross-entropy on the logits,
    :meth:`loss` (one step) or :meth:`training_steps` (several steps per batch, like MaxMin). Set ``trainable =
    False`` for methods over a frozen model.
    """

    #: ``False`` for methods that explain a trained model (they have no objective of their own)
    trainable: bool = True
    #: ``True`` when ``forward`` needs autograd at inference (gradient explainers): :func:`wsolkit.localize` then
    #: runs it under ``torch.enable_grad()``, else under ``torch.no_grad()``
    needs_grad: bool = False

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> WSOLOutput:  # pragma: no cover
        raise NotImplementedError

    def loss(self, output: WSOLOutput, labels: torch.Tensor, x: torch.Tensor | None = None) -> LossOutput:
        """The method's objective on one forward output (default: cross-entropy on the logits).

        Args:
            output: what ``forward(x, labels)`` returned.
            labels: ``(B,)`` class indices.
            x: the input batch (for objectives that look at the image, e.g. a CRF term).
        """
        ce = F.cross_entropy(output.logits, labels)
        return LossOutput(ce, {"ce": ce.detach()})

    def training_steps(
        self, x: torch.Tensor, labels: torch.Tensor, *, forward: Callable[..., Any] | None = None
    ) -> Iterator[LossOutput]:
        """Yield the losses of one batch; back-propagate each before asking for the next.

        Args:
            x: input batch (preprocessed as the model expects).
            labels: ``(B,)`` class indices.
            forward: the callable that runs forward passes (default: ``self``; a DDP wrapper of ``self`` under
                :func:`wsolkit.training.training_steps`).
        """
        if not self.trainable:
            raise NotTrainableError(
                f"{type(self).__name__} is not trained: it explains a trained classifier. Train the classifier "
                f"(e.g. create_method('gap', ...)), then wrap it with create_method(name, classifier=...)"
            )
        run = self if forward is None else forward
        out = run(x, labels)
        yield self.loss(out, labels, x)


def _check_needs(needs: str) -> str:
    if needs not in _NEEDS:
        raise WSOLValueError(f"`needs` must be one of {_NEEDS}, got {needs!r}")
    return needs


def register_method(
    name: str, *, needs: str = "backbone", family: str = "custom", overwrite: bool = False
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a method factory under ``name``.

    The factory is called as ``factory(num_classes, pretrained=..., **options)`` with ``backbone=`` among the options
    when the caller gave one (``needs="backbone"``; the factory's own default applies otherwise), or as
    ``factory(num_classes, classifier=..., **options)`` (``needs="classifier"``), and returns an ``nn.Module``
    following the protocol (usually a :class:`WSOLMethod`). A class works as a factory.

    Args:
        name: registry name (key rule of :mod:`wsolkit.registry`).
        needs: ``"backbone"`` (trained from a feature extractor) or ``"classifier"`` (wraps a trained model).
        family: taxonomy family, shown by :func:`method_info` (``"pooling"``, ``"refinement"``, ``"explainer"``,
            ``"localizer-classifier"``, ``"decoder"``, ``"custom"``).
        overwrite: replace an existing entry.

    Example:
        >>> @register_method("my_gap", overwrite=True)
        ... def my_gap(num_classes, backbone="smallcnn", pretrained=False, **options):
        ...     return create_method("gap", num_classes, backbone=backbone, pretrained=pretrained, **options)
        >>> "mygap" in list_methods("my*")
        True
    """
    _check_needs(needs)

    def deco(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if not callable(factory):
            raise WSOLTypeError(f"a method factory must be callable, got {type(factory).__name__}")
        _METHODS.register(name, factory, overwrite=overwrite, needs=needs, family=family)
        return factory

    return deco


def list_methods(pattern: str = "*") -> list[str]:
    """Registered method names matching ``pattern`` (:mod:`fnmatch`, case-insensitive), sorted alphabetically.

    Example:
        >>> list_methods("gradcam*")
        ['gradcam', 'gradcam++']
    """
    return _METHODS.list(pattern)


def method_info(name: str) -> dict[str, str]:
    """``{"name", "needs", "family"}`` of a registered method.

    Example:
        >>> method_info("Grad-CAM++")
        {'name': 'gradcam++', 'needs': 'classifier', 'family': 'explainer'}
    """
    e = _METHODS.entry(name)
    return {"name": e.name, **e.info}


def create_method(
    name: str,
    num_classes: int | None = None,
    *,
    backbone: str | nn.Module | None = None,
    classifier: nn.Module | str | None = None,
    pretrained: bool = False,
    **options: Any,
) -> nn.Module:
    """Build a registered method.

    Args:
        name: a name of :func:`list_methods` (unknown names raise :class:`~wsolkit.registry.UnknownNameError` with
            close matches).
        num_classes: classes K. Required for methods trained from a backbone; for methods over a classifier it is
            read from the classifier when ``None``.
        backbone: for methods trained from a backbone: a name of :func:`wsolkit.list_backbones` or a
            feature-extractor module with ``out_channels``; ``None`` takes the method's default (``"resnet18"`` for
            the CNN methods, DeiT-S/16 for ``tscam``).
        classifier: for methods over a trained model (``cam``, explainers, ``fcam``, ``negev``): a timm /
            torchvision model, a :class:`~wsolkit.models.WSOLModel`, a Hugging Face image classifier (output with
            ``.logits``), or a timm name (``"timm:resnet18"``) / torchvision name (``"tv:resnet18"``).
        pretrained: load pretrained weights for a backbone / classifier given by name (timm / torchvision).
        **options: the method's hyper-parameters (see its class).

    Returns:
        An ``nn.Module`` with ``forward(x, labels=None) -> WSOLOutput`` and ``training_steps``.

    Example:
        >>> m = create_method("gap", 2, backbone="smallcnn")
        >>> out = m(torch.rand(2, 3, 32, 32))
        >>> out.logits.shape, out.cams.shape[:2]
        (torch.Size([2, 2]), torch.Size([2, 2]))
    """
    entry = _METHODS.entry(name)
    if num_classes is not None:
        num_classes = check_int(num_classes, "num_classes", low=1)
    if entry.info["needs"] == "classifier":
        if classifier is None:
            raise WSOLValueError(
                f"method {entry.name!r} explains or refines a trained model: pass `classifier=` (a timm / "
                f"torchvision / Hugging Face classifier or a WSOLModel)"
            )
        method = entry.obj(num_classes, classifier=resolve_classifier(classifier, num_classes, pretrained),
                           **options)
        recorded = {"classifier": classifier} if isinstance(classifier, str) else {}
    else:
        if classifier is not None:
            raise WSOLValueError(
                f"method {entry.name!r} is trained from a backbone: pass `backbone=`, not `classifier=`"
            )
        if num_classes is None:
            raise WSOLValueError(f"method {entry.name!r} needs `num_classes` (it trains a new classifier)")
        if backbone is not None:
            options = {"backbone": backbone, **options}
        method = entry.obj(num_classes, pretrained=pretrained, **options)
        recorded = {}
    # what a checkpoint needs to rebuild the method (wsolkit.training.load_method): its name and the options that
    # are plain data (modules given as arguments cannot be recorded and must be passed again)
    method.method_name = entry.name
    method.method_num_classes = num_classes
    method.method_options = {**recorded, **{k: v for k, v in options.items() if _plain(v)}}
    return method


def _plain(v: Any) -> bool:
    if v is None or isinstance(v, (bool, int, float, str)):
        return True
    if isinstance(v, (list, tuple)):
        return all(_plain(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _plain(x) for k, x in v.items())
    return False


def resolve_backbone(backbone: str | nn.Module, pretrained: bool = False, output_stride: int = 32,
                     **kwargs: Any) -> nn.Module:
    """A feature extractor from a name (:func:`wsolkit.create_backbone`) or a module with ``out_channels``.

    ``pretrained``, ``output_stride`` and ``kwargs`` apply to a name only; a module is returned as it is (options
    given with a module are an error).
    """
    if isinstance(backbone, str):
        from wsolkit.backbones import create_backbone

        return create_backbone(backbone, pretrained=pretrained, output_stride=output_stride, **kwargs)
    if not isinstance(backbone, nn.Module):
        raise WSOLTypeError(f"`backbone` must be a name or an nn.Module, got {type(backbone).__name__}")
    if not isinstance(getattr(backbone, "out_channels", None), int):
        raise WSOLTypeError(
            f"`backbone` module {type(backbone).__name__} has no integer `out_channels`; build it with "
            f"wsolkit.create_backbone or set the attribute"
        )
    if kwargs:
        raise WSOLValueError(f"backbone options {sorted(kwargs)} only apply to a backbone given by name")
    return backbone
