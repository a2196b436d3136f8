"""The mask convention shared by every writer and reader of mask files (datasets, ``extract_patches``, the CLI).

In memory, wsolkit's masks are ``uint8`` with **0 = background, 1 = foreground, 255 = ignored** (the metrics'
``ignore_index=255``). On disk, a folder of masks declares how its values read in a ``dataset.json`` next to the
files (``{"mask_convention": {"foreground": 255, "background": 0, "ignore": null}}``), written by
:func:`write_dataset_json` and read by :func:`read_dataset_json`. :meth:`MaskConvention.decode` maps stored values
to the in-memory convention and refuses values the convention does not name, so a 0/255 mask can never be read as
"all foreground ignored".
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wsolkit._checks import WSOLTypeError, WSOLValueError

__all__ = [
    "MaskConvention",
    "BINARY",
    "BINARY_255",
    "FOREGROUND",
    "BACKGROUND",
    "IGNORE",
    "DATASET_JSON",
    "write_dataset_json",
    "read_dataset_json",
]

#: in-memory values
BACKGROUND, FOREGROUND, IGNORE = 0, 1, 255
#: name of the file that declares a mask folder's convention
DATASET_JSON = "dataset.json"


@dataclass(frozen=True)
class MaskConvention:
    """How a stored mask encodes foreground, background and ignored pixels.

    Args:
        foreground: stored value of foreground pixels (1 or 255 are common).
        background: stored value of background pixels.
        ignore: stored value of pixels left out of the metrics, or ``None`` when there is none.

    Example:
        >>> MaskConvention(foreground=255).decode(np.array([[0, 255]], dtype=np.uint8)).tolist()
        [[0, 1]]
    """

    foreground: int = 1
    background: int = 0
    ignore: int | None = None

    def __post_init__(self) -> None:
        vals = [self.foreground, self.background] + ([] if self.ignore is None else [self.ignore])
        for name, v in zip(("foreground", "background", "ignore"), vals):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= int(v) <= 65535:
                raise WSOLTypeError(f"mask convention `{name}` must be an int in [0, 65535], got {v!r}")
        if len(set(int(v) for v in vals)) != len(vals):
            raise WSOLValueError(f"mask convention values must differ, got foreground={self.foreground}, "
                                 f"background={self.background}, ignore={self.ignore}")

    def decode(self, mask: np.ndarray | torch.Tensor, name: str = "mask") -> np.ndarray | torch.Tensor:
        """Stored values → in-memory ``uint8`` (0 / 1 / 255); any other stored value is a :class:`WSOLValueError`."""
        is_t = isinstance(mask, torch.Tensor)
        a = mask.cpu().numpy() if is_t else np.asarray(mask)
        if a.dtype.kind not in "uib":
            raise WSOLTypeError(f"`{name}` must hold integers, got dtype {a.dtype}")
        out = np.full(a.shape, 254, dtype=np.uint8)
        out[a == self.background] = BACKGROUND
        out[a == self.foreground] = FOREGROUND
        if self.ignore is not None:
            out[a == self.ignore] = IGNORE
        bad = out == 254
        if bad.any():
            seen = np.unique(a[bad])[:5].tolist()
            raise WSOLValueError(
                f"`{name}` holds values {seen} that the mask convention {self} does not name (expected "
                f"{sorted(self.values())}); declare the convention (dataset.json or the command's flags)"
            )
        return torch.from_numpy(out) if is_t else out

    def values(self) -> set[int]:
        """The stored values this convention names."""
        return {self.foreground, self.background} | (set() if self.ignore is None else {self.ignore})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MaskConvention:
        """Inverse of :meth:`to_dict` (unknown keys are an error)."""
        if not isinstance(d, dict):
            raise WSOLTypeError(f"a mask convention must be a dict, got {type(d).__name__}")
        extra = set(d) - {"foreground", "background", "ignore"}
        if extra:
            raise WSOLValueError(f"unknown mask convention keys {sorted(extra)}")
        return cls(**d)


#: 0 = background, 1 = foreground (what :class:`~wsolkit.data.SyntheticHistology` holds)
BINARY = MaskConvention(foreground=1, background=0, ignore=None)
#: 0 = background, 255 = foreground (8-bit mask images as viewers show them)
BINARY_255 = MaskConvention(foreground=255, background=0, ignore=None)


def write_dataset_json(folder: str | os.PathLike, convention: MaskConvention, **extra: Any) -> Path:
    """Write ``dataset.json`` declaring the mask convention (plus ``extra`` JSON fields) into ``folder``.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> _ = write_dataset_json(d, BINARY_255, classes=["normal", "tumor"])
        >>> read_dataset_json(d) == BINARY_255
        True
    """
    if not isinstance(convention, MaskConvention):
        raise WSOLTypeError(f"`convention` must be a MaskConvention, got {type(convention).__name__}")
    path = Path(folder) / DATASET_JSON
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"mask_convention": convention.to_dict(), **extra}, indent=2))
    return path


def read_dataset_json(folder: str | os.PathLike, default: MaskConvention | None = None) -> MaskConvention | None:
    """The convention declared by ``folder/dataset.json``; ``default`` when the file is absent."""
    path = Path(folder) / DATASET_JSON
    if not path.is_file():
        return default
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise WSOLValueError(f"{str(path)!r} is not valid JSON: {e}") from None
    if "mask_convention" not in data:
        raise WSOLValueError(f"{str(path)!r} has no 'mask_convention' entry")
    return MaskConvention.from_dict(data["mask_convention"])
