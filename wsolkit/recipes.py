"""The survey's training protocol as named presets (Rony et al. 2023, Appendix A, Tables 8 and 9).

- :data:`RECIPES` — Table 8, "General hyper-parameters", one :class:`Recipe` per dataset: SGD with Nesterov
  momentum 0.9, weight decay 1e-4, batch 32, learning rate searched in {0.01, 0.001, 0.1}, decayed by 0.1 every 250
  epochs (GlaS) or every 5 epochs (CAMELYON16), 1000 (GlaS) or 20 (CAMELYON16) epochs, random horizontal / vertical
  flips, colour jitter (brightness, contrast, saturation 0.5, hue 0.05), resize to 225 × 225 then random 224 × 224
  crops. Section 3.3.3 of the same paper says "Images are resized to 256x256", and so does the default of the
  survey's code (``RESIZE_SIZE = 256`` in ``dlib/configure/constants.py``); the preset follows Table 8 (225) —
  ``recipe("glas").replace(resize=256)`` gives the other reading.
- :data:`SEARCH_GRIDS` — Table 9, "Per-method hyper-parameters", in wsolkit's option names (each entry says which
  symbol of the table it is). MaxMin and NEGEV: "Same as (Belharbi et al.)" — their defaults, no grid.
- :data:`SURVEY_BACKBONES` — the backbones of Sec. 3.3.3 / Table 5: VGG16, InceptionV3, ResNet-50 as modified by
  Choe et al. (:mod:`wsolkit._wsol_backbones`), DeiT-Ti / S / B for TS-CAM (timm names).

:func:`grid` enumerates a method's search (learning rate × Table 9), :func:`recipe` gets a preset by dataset.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from wsolkit._checks import WSOLValueError, check_choice
from wsolkit.data.transforms import RandomCrop

__all__ = ["Recipe", "RECIPES", "SEARCH_GRIDS", "SURVEY_BACKBONES", "TSCAM_BACKBONES", "ADL_POSITIONS",
           "SurveyAugmentation", "recipe", "grid", "survey_backbone"]


class SurveyAugmentation:
    """Table 8's training augmentation on a ``(3, 225, 225)`` image in [0, 1] and its mask.

    A random ``crop`` × ``crop`` patch, a horizontal and a vertical flip each with probability 1/2, then
    :class:`torchvision.transforms.ColorJitter` (brightness, contrast, saturation, hue) on the image only.

    Example:
        >>> image, mask = SurveyAugmentation(crop=4)(torch.rand(3, 5, 5), torch.zeros(5, 5, dtype=torch.uint8))
        >>> image.shape, mask.shape
        (torch.Size([3, 4, 4]), torch.Size([4, 4]))
    """

    def __init__(self, crop: int = 224, jitter: tuple[float, float, float, float] = (0.5, 0.5, 0.5, 0.05)):
        from torchvision.transforms import ColorJitter

        self.crop = RandomCrop(crop)
        self.jitter = ColorJitter(*jitter)

    def __call__(self, image: torch.Tensor, mask: torch.Tensor | None = None):
        image, mask = self.crop(image, mask)
        for dim in (-1, -2):  # horizontal, vertical
            if torch.rand(()) < 0.5:
                image = image.flip(dim)
                mask = mask.flip(dim) if mask is not None else None
        return self.jitter(image).clamp_(0.0, 1.0), mask

    def __repr__(self) -> str:
        return f"SurveyAugmentation(crop={self.crop.size}, jitter={self.jitter})"


@dataclass(frozen=True)
class Recipe:
    """The general training settings of one dataset (survey Table 8).

    Attributes:
        name: preset name.
        dataset: ``"glas"`` or ``"camelyon"``.
        lr: learning rate of a single run (the first value of ``lr_grid``).
        lr_grid: the learning rates searched ("Learning rate ∈ {0.01, 0.001, 0.1}").
        momentum, nesterov, weight_decay: SGD settings ("Optimizer SGD", "Nesterov acceleration True",
            "Momentum 0.9", "Weight decay 0.0001").
        lr_step_epochs, lr_gamma: "Learning rate decay": × ``lr_gamma`` every ``lr_step_epochs`` epochs.
        batch_size: "Mini-batch size 32".
        epochs: "Learning epochs" (GlaS 1000, CAMELYON16 20).
        resize, crop: "Resize image to 225 × 225. Then, crop random patches of 224 × 224".
        jitter: "Random color jittering": brightness, contrast, saturation 0.5, hue 0.05.
        bloc_per_class: B-LOC images per class in ``valpx`` (Sec. 3.3: GlaS 3, CAMELYON16 5).
        source: where the values come from.
    """

    name: str
    dataset: str
    lr: float = 0.01
    lr_grid: tuple[float, ...] = (0.01, 0.001, 0.1)
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    lr_step_epochs: int = 250
    lr_gamma: float = 0.1
    batch_size: int = 32
    epochs: int = 1000
    resize: int = 225
    crop: int = 224
    jitter: tuple[float, float, float, float] = (0.5, 0.5, 0.5, 0.05)
    bloc_per_class: int = 3
    source: str = "Rony et al. 2023, Appendix A, Table 8"

    def replace(self, **changes: Any) -> Recipe:
        """A copy with some fields changed (e.g. ``epochs=1`` for a smoke run)."""
        return dataclasses.replace(self, **changes)

    def optimizer(self, params: Any, lr: float | None = None) -> torch.optim.SGD:
        """SGD with Nesterov momentum and weight decay over ``params`` at ``lr`` (default :attr:`lr`)."""
        return torch.optim.SGD(params, lr=self.lr if lr is None else lr, momentum=self.momentum,
                               nesterov=self.nesterov, weight_decay=self.weight_decay)

    def scheduler(self, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> torch.optim.lr_scheduler.StepLR:
        """Step decay, stepped once per optimizer step (as :func:`wsolkit.training.fit` does): ``lr_gamma`` every
        ``lr_step_epochs × steps_per_epoch`` steps."""
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(self.lr_step_epochs * steps_per_epoch, 1),
                                               gamma=self.lr_gamma)

    def train_transform(self) -> SurveyAugmentation:
        """The training augmentation (images are resized to :attr:`resize` by the dataset first)."""
        return SurveyAugmentation(self.crop, self.jitter)


#: Table 8 per dataset
RECIPES: dict[str, Recipe] = {
    "survey-glas": Recipe("survey-glas", "glas", lr_step_epochs=250, epochs=1000, bloc_per_class=3),
    "survey-camelyon": Recipe("survey-camelyon", "camelyon", lr_step_epochs=5, epochs=20, bloc_per_class=5),
}

_SPG_PAIRS = (
    tuple(itertools.product((0.5, 0.7), (0.01, 0.05, 0.1))),  # δ1h, δ1l
    tuple(itertools.product((0.5, 0.6, 0.7), (0.01, 0.05, 0.1))),  # δ2h, δ2l
    tuple(itertools.product((0.5, 0.6, 0.7), (0.01, 0.05, 0.1))),  # δ3h, δ3l
)

#: Table 9 in wsolkit's option names (searched together with Table 8's learning rates); ``{}``: learning rate only
SEARCH_GRIDS: dict[str, dict[str, tuple]] = {
    "gap": {}, "max": {}, "cam": {}, "tscam": {},
    "lse": {"q": tuple(float(q) for q in range(1, 11))},  # q ∈ {1, …, 10}
    "has": {"grid_size": (8, 16, 32, 44, 56), "drop_rate": (0.2, 0.3, 0.4, 0.5, 0.6)},  # grid size, drop rate
    "wildcat": {"alpha": (0.1, 0.6), "kmax": (0.1, 0.3, 0.5, 0.6, 0.7), "kmin": (0.1, 0.2, 0.3),
                "modalities": (5,)},  # α, kmax, kmin, modalities = 5
    "acol": {"delta": (0.5, 0.6, 0.7, 0.8, 0.9)},  # δ
    "spg": {"thresholds": tuple(itertools.product(*_SPG_PAIRS))},  # ((δ1h, δ1l), (δ2h, δ2l), (δ3h, δ3l))
    "deepmil": {"mid_channels": (128,), "gated": (True, False)},  # mid-channels 128, gated attention
    "prm": {"window": (3, 5, 7, 9, 11, 13)},  # r; Table 9's "kernel stride" has no counterpart in wsolkit's PRM
    "adl": {"drop_rate": (0.0, 0.25, 0.35, 0.45, 0.50, 0.75), "gamma": (0.75, 0.85, 0.90)},  # drop rate, γ
    "cutmix": {"beta": (1.0,), "prob": (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)},  # α = 1.0, λ (the mixing probability)
    "maxmin": {}, "negev": {},  # "Same as (Belharbi et al., 2022b / 2022a)": the methods' defaults
}

#: where ADL goes on the survey backbones, as in Choe et al.'s ``wsol`` models (``vgg.py`` config ``adl/28x28``: after
#: pool3, conv4_3, conv5_3; ``resnet.py`` ``_ADL_POSITION``: after block 0 of layer3, blocks 0 and 2 of layer4;
#: ``inception.py``: after Mixed_5d, Mixed_6e, SPG_A3_2b) — module names of the backbones of
#: :mod:`wsolkit._wsol_backbones`
ADL_POSITIONS: dict[str, tuple[str, ...]] = {"vgg16_wsol": ("body.16", "body.22", "body.28"),
                                             "resnet50_wsol": ("body.6.0", "body.7.0", "body.7.2"),
                                             "inceptionv3_wsol": ("body.9", "body.14", "body.20")}
#: the survey's CNN backbones (Table 5), as Choe et al. modified them
SURVEY_BACKBONES: dict[str, str] = {"vgg16": "vgg16_wsol", "inceptionv3": "inceptionv3_wsol",
                                    "resnet50": "resnet50_wsol"}
#: TS-CAM's backbones (Sec. 3.3.3: DeiT-Ti, DeiT-S, DeiT-B) and the CNN column each stands in for in Table 1
TSCAM_BACKBONES: dict[str, str] = {"deit-t": "deit_tiny_patch16_224", "deit-s": "deit_small_patch16_224",
                                   "deit-b": "deit_base_patch16_224"}


def recipe(dataset: str) -> Recipe:
    """The Table 8 preset of ``dataset`` (``"glas"``, ``"camelyon"`` or a key of :data:`RECIPES`).

    Example:
        >>> r = recipe("camelyon")
        >>> r.epochs, r.lr_step_epochs, r.batch_size, r.source
        (20, 5, 32, 'Rony et al. 2023, Appendix A, Table 8')
    """
    key = dataset if dataset in RECIPES else f"survey-{dataset}"
    check_choice(key, "dataset", list(RECIPES))
    return RECIPES[key]


def survey_backbone(name: str) -> str:
    """The backbone name to build for a survey name (``vgg16``, ``inceptionv3``, ``resnet50``, ``deit-t/s/b``);
    any other name is returned as it is (a timm / torchvision / local name)."""
    key = name.lower().replace("_", "").replace("-", "")
    for table in (SURVEY_BACKBONES, TSCAM_BACKBONES):
        for k, v in table.items():
            if key == k.replace("-", ""):
                return v
    return name


def grid(method: str, rec: Recipe | None = None) -> Iterator[dict[str, Any]]:
    """The search of ``method``: every ``{"lr": …, **options}`` of Table 8's learning rates × Table 9's grid.

    Example:
        >>> first = grid("acol", recipe("glas"))
        >>> next(first), next(first)
        ({'lr': 0.01, 'delta': 0.5}, {'lr': 0.01, 'delta': 0.6})
        >>> len(list(grid("wildcat", recipe("glas"))))
        90
    """
    from wsolkit.method import method_info

    name = method_info(method)["name"]
    lrs = (rec or RECIPES["survey-glas"]).lr_grid
    options = SEARCH_GRIDS.get(name, {})
    if name not in SEARCH_GRIDS and method_info(name)["family"] != "explainer":
        raise WSOLValueError(f"method {name!r} has no search grid in Table 9 (methods: {sorted(SEARCH_GRIDS)})")
    keys = list(options)
    for lr in lrs:
        for values in itertools.product(*(options[k] for k in keys)):
            yield {"lr": lr, **dict(zip(keys, values))}
