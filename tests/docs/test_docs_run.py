"""Every ```python block of ``docs/`` (and of the README) runs as written, page by page.

Blocks of one page share one namespace and run in order, as a reader would paste them. Pretrained weights cannot
be downloaded here, so ``pretrained=True`` is swapped for random initialisation (timm, torchvision and wsolkit's own
factories), and the working directory is a temporary folder.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)
SNIPPET = re.compile(r'^--8<-- "([^"]+)"\s*$', re.M)  # pymdownx.snippets include, base path: the repository


def _expand(code: str) -> str:
    return SNIPPET.sub(lambda m: (ROOT / m.group(1)).read_text(), code)


def _pages_with_code() -> list[Path]:
    return [p for p in PAGES if BLOCK.search(p.read_text())]


@pytest.fixture
def no_downloads(monkeypatch):
    """Force random weights wherever a page asks for pretrained ones."""
    import timm
    import torch
    import torchvision

    create = timm.create_model

    def create_model(*args, **kwargs):
        kwargs["pretrained"] = False
        return create(*args, **kwargs)

    monkeypatch.setattr(timm, "create_model", create_model)
    get_model = torchvision.models.get_model

    def tv_get_model(name, **kwargs):
        kwargs["weights"] = None
        return get_model(name, **kwargs)

    monkeypatch.setattr(torchvision.models, "get_model", tv_get_model)
    # torchvision builders called with weights=...: keep the weights' metadata, skip the download
    random = object()
    monkeypatch.setattr(torchvision.models._api.WeightsEnum, "get_state_dict", lambda self, *a, **k: random)
    load = torch.nn.Module.load_state_dict

    def load_state_dict(self, state_dict, *args, **kwargs):
        if state_dict is random:
            return None
        return load(self, state_dict, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "load_state_dict", load_state_dict)


def test_every_page_is_collected():
    assert len(_pages_with_code()) >= 5


@pytest.mark.parametrize("page", _pages_with_code(), ids=lambda p: str(p.relative_to(ROOT)))
def test_page_runs(page, no_downloads, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for i, match in enumerate(BLOCK.finditer(page.read_text())):
        code = _expand(match.group(1))
        line = page.read_text()[: match.start()].count("\n") + 2
        try:
            exec(compile(code, f"{page.relative_to(ROOT)}:block{i}@line{line}", "exec"), namespace)
        except Exception as e:  # pragma: no cover - the message is what a reader needs
            raise AssertionError(f"{page.relative_to(ROOT)} block {i} (line {line}) failed: "
                                 f"{type(e).__name__}: {e}") from e
