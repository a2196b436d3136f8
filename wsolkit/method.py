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

import contextlib
import functools
import warnings
from collections.abc import Callable, Iterable, Iterator
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
    "LifecycleWarning",
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


class LifecycleWarning(UserWarning):
    """A training loop skipped a life-cycle hook (:meth:`WSOLMethod.on_epoch_end` / :meth:`WSOLMethod.on_fit_end`)
    that changes this method: what it trains is not the method :func:`wsolkit.training.fit` trains."""


def _counted(steps: Callable[..., Iterator[LossOutput]]) -> Callable[..., Iterator[LossOutput]]:
    """Wrap a ``training_steps`` so that the method knows a batch was trained (for :class:`LifecycleWarning`)."""
    if getattr(steps, "_lifecycle_counted", False):
        return steps

    @functools.wraps(steps)
    def wrapper(self: WSOLMethod, *args: Any, **kwargs: Any) -> Iterator[LossOutput]:
        state = self._lifecycle()
        state["epoch_steps"] += 1
        state["fit_steps"] += 1
        return steps(self, *args, **kwargs)

    wrapper._lifecycle_counted = True  # type: ignore[attr-defined]
    return wrapper


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

    # -- life cycle: what happens between batches, called by wsolkit.training.fit and by a user's own loop --------

    def on_epoch_end(self, epoch: int) -> None:
        """Called once after each training epoch (``epoch`` counts from 0): advances per-epoch schedules.

        The default has nothing to advance; F-CAM / NEGEV step their ELB size barrier and MaxMin its size prior, as
        the authors do every epoch. A loop that trains a method with a schedule and skips this hook gets a
        :class:`LifecycleWarning`.
        """
        self._lifecycle()["epoch_steps"] = 0

    def on_fit_end(self, loader: Iterable[Any]) -> None:
        """Called once when training ends, before the method is saved or used: final work over the training data.

        Args:
            loader: the training batches ``(images, labels[, masks])`` (re-iterable, e.g. a DataLoader).

        The default does nothing; MaxMin recomputes its batch-norm statistics with the final weights. Every
        checkpoint :func:`wsolkit.training.fit` writes at the end is taken after it.
        """
        self._lifecycle()["fit_steps"] = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "training_steps" in cls.__dict__:
            cls.training_steps = _counted(cls.__dict__["training_steps"])  # type: ignore[method-assign]

    def _lifecycle_work(self) -> set[str]:
        """The hooks that change this method (subclasses with schedules say which); default: none."""
        return set()

    def _lifecycle(self) -> dict[str, Any]:
        state = self.__dict__.get("_lifecycle_state")
        if state is None:
            state = self.__dict__["_lifecycle_state"] = {"epoch_steps": 0, "fit_steps": 0, "managed": False}
        return state

    def _check_lifecycle(self, hook: str, stacklevel: int = 3) -> None:
        state = self._lifecycle()
        pending = state["epoch_steps" if hook == "on_epoch_end" else "fit_steps"]
        if not pending or state["managed"] or hook not in self._lifecycle_work():
            return
        if hook == "on_epoch_end":
            msg = (f"{type(self).__name__} starts a new epoch after {pending} training batches without "
                   f"`method.on_epoch_end(epoch)`: its per-epoch schedule (ELB barrier) stays where it was. Call "
                   f"it after each epoch, as wsolkit.training.fit does")
        else:
            msg = (f"{type(self).__name__} is used or saved after {pending} training batches without "
                   f"`method.on_fit_end(train_loader)`: the end-of-training work (batch-norm statistics) is "
                   f"missing. Call it once when training ends, as wsolkit.training.fit does")
        warnings.warn(msg, LifecycleWarning, stacklevel=stacklevel)

    def train(self, mode: bool = True) -> WSOLMethod:
        # a loop that calls .train() at each epoch (the PyTorch idiom) tells us an epoch went by; .eval() (inference,
        # localize) that training ended
        self._check_lifecycle("on_epoch_end" if mode else "on_fit_end", 3 if mode else 4)  # eval() calls train()
        return super().train(mode)


WSOLMethod.training_steps = _counted(WSOLMethod.training_steps)  # type: ignore[method-assign]


@contextlib.contextmanager
def _lifecycle_managed(method: nn.Module):
    """Within this context the caller (``fit``) calls the hooks itself: no :class:`LifecycleWarning`."""
    state = method._lifecycle() if isinstance(method, WSOLMethod) else None
    if state is None:
        yield
        return
    before, state["managed"] = state["managed"], True
    try:
        yield
    finally:
        state["managed"] = before


def _builtins() -> None:
    """Import the packages that register the built-in methods (``import wsolkit`` itself is lazy)."""
    import wsolkit.decoders  # noqa: F401
    import wsolkit.erasing  # noqa: F401
    import wsolkit.explain  # noqa: F401
    import wsolkit.heads  # noqa: F401
    import wsolkit.maxmin  # noqa: F401


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
    _builtins()
    return _METHODS.list(pattern)


def method_info(name: str) -> dict[str, str]:
    """``{"name", "needs", "family"}`` of a registered method.

    Example:
        >>> method_info("Grad-CAM++")
        {'name': 'gradcam++', 'needs': 'classifier', 'family': 'explainer'}
    """
    _builtins()
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
    _builtins()
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
        recorded = {"classifier": classifier}
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
    # what a checkpoint needs to rebuild the method (wsolkit.training.load_method): its name and its options as plain
    # data; a module argument is recorded by what rebuilds it (a wsolkit method's or backbone's name and options, a
    # timm model's architecture), else listed in `method_unrecorded` (load_method then asks for it)
    method.method_name = entry.name
    method.method_num_classes = num_classes
    method.method_options, method.method_unrecorded = {}, {}
    for key, value in {**recorded, **options}.items():
        spec = _spec(value)
        if spec is not _UNRECORDED:
            method.method_options[key] = spec
        else:
            method.method_unrecorded[key] = type(value).__name__
    return method


_UNRECORDED = object()


def _spec(v: Any) -> Any:
    """A plain-data record of an option that rebuilds it (see :func:`rebuild_option`), or ``_UNRECORDED``."""
    if _plain(v):
        return v
    if isinstance(v, nn.Module):
        name = getattr(v, "method_name", None)
        if isinstance(name, str) and not getattr(v, "method_unrecorded", None):
            return {"wsolkit_spec": "method", "name": name, "num_classes": getattr(v, "method_num_classes", None),
                    "options": dict(getattr(v, "method_options", {}))}
        cfg = getattr(v, "backbone_cfg", None)
        if isinstance(cfg, dict) and _plain(cfg):
            return {"wsolkit_spec": "backbone", **cfg}
        arch = (getattr(v, "pretrained_cfg", None) or {}).get("architecture")
        if type(v).__module__.startswith("timm.") and isinstance(arch, str):
            return {"wsolkit_spec": "timm", "name": arch, "num_classes": getattr(v, "num_classes", None)}
    return _UNRECORDED


def rebuild_option(v: Any) -> Any:
    """Rebuild an option recorded by :func:`create_method` (inverse of its module records; plain data as is)."""
    if isinstance(v, dict) and "wsolkit_spec" in v:
        kind = v["wsolkit_spec"]
        if kind == "method":
            return create_method(v["name"], v.get("num_classes"), **{k: rebuild_option(o) for k, o in
                                                                     v.get("options", {}).items()}).eval()
        if kind == "backbone":
            from wsolkit.backbones import create_backbone

            return create_backbone(v["name"], output_stride=v.get("output_stride", 32), **v.get("options", {}))
        if kind == "timm":
            import timm

            kw = {} if v.get("num_classes") is None else {"num_classes": v["num_classes"]}
            return timm.create_model(v["name"], pretrained=False, **kw)
        raise WSOLValueError(f"unknown recorded option kind {kind!r}")
    if isinstance(v, dict):
        return {k: rebuild_option(o) for k, o in v.items()}
    return v


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
