"""The images of the docs and the README: every reference resolves to a file of ``docs/img``, has alt text, and the
files stay small; the figure script (``python -m wsolkit.figures``) runs on tiny inputs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
IMG_DIR = ROOT / "docs" / "img"
MD_IMAGE = re.compile(r"!\[([^\]]*)\]\(\s*([^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
HTML_IMAGE = re.compile(r"<img\b[^>]*>", re.I)
RAW_PREFIX = "https://raw.githubusercontent.com/wsolkit/wsolkit/main/"  # the README's images (PyPI page)
MAX_BYTES, MAX_TOTAL = 300 * 1024, 5 * 1024 * 1024


def _references() -> list[tuple[Path, str, str]]:
    """``(page, alt text, target)`` of every image of every page (markdown and HTML ``<img>``)."""
    refs = []
    for page in PAGES:
        text = page.read_text()
        refs += [(page, m.group(1), m.group(2)) for m in MD_IMAGE.finditer(text)]
        for tag in HTML_IMAGE.findall(text):
            src = re.search(r'src="([^"]+)"', tag)
            alt = re.search(r'alt="([^"]*)"', tag)
            refs.append((page, alt.group(1) if alt else "", src.group(1) if src else ""))
    return refs


def _resolve(page: Path, target: str) -> Path:
    if target.startswith(RAW_PREFIX):
        return ROOT / target[len(RAW_PREFIX) :]
    if re.match(r"[a-z]+://", target):
        raise AssertionError(f"{page.relative_to(ROOT)}: image {target!r} is remote but not a file of this "
                             f"repository ({RAW_PREFIX}...)")
    return (page.parent / target).resolve()


def test_pages_reference_images():
    pages = {page for page, _, _ in _references()}
    assert ROOT / "README.md" in pages and ROOT / "docs" / "index.md" in pages
    assert len(pages) >= 6


@pytest.mark.parametrize("ref", _references(), ids=lambda r: f"{r[0].relative_to(ROOT)}:{r[2]}")
def test_image_exists_and_has_alt_text(ref):
    page, alt, target = ref
    assert len(alt.strip()) >= 10, f"{page.relative_to(ROOT)}: image {target!r} needs alt text"
    path = _resolve(page, target)
    assert path.is_file(), f"{page.relative_to(ROOT)}: image {target!r} does not exist ({path})"
    assert IMG_DIR in path.parents, f"{page.relative_to(ROOT)}: images live in docs/img, got {path}"


def test_readme_images_are_absolute_urls():
    """PyPI renders the README from the wheel's metadata, where a relative path resolves to nothing."""
    for page, _, target in _references():
        if page.name == "README.md" and page.parent == ROOT:
            assert target.startswith(RAW_PREFIX), f"README image {target!r} must be an absolute URL"


def test_image_sizes():
    files = sorted(IMG_DIR.glob("*.png"))
    assert files, "docs/img holds no figure"
    big = {f.name: f.stat().st_size for f in files if f.stat().st_size > MAX_BYTES}
    assert not big, f"images over 300 KB: {big}"
    assert sum(f.stat().st_size for f in files) <= MAX_TOTAL
    referenced = {_resolve(p, t) for p, _, t in _references()}
    unused = [f.name for f in files if f.resolve() not in referenced]
    assert not unused, f"images no page shows: {unused}"


# ------------------------------------------------------------------------------------------ the figure script

TINY = dict(size=64, n_train=8, n_test=8, epochs=1, batch_size=8, width=4)


@pytest.fixture
def agg():
    """matplotlib (the ``viz`` extra) with a file backend; the image checks above do not need it."""
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")


def _png(path: Path) -> tuple[int, int]:
    from PIL import Image

    assert path.is_file() and path.stat().st_size <= MAX_BYTES
    with Image.open(path) as im:
        return im.size


def test_viz_map_grid_values(agg):
    """The grid draws each map where it belongs: a map that is 1 on the left half only lights the left half."""
    from wsolkit.viz import map_grid

    maps = torch.zeros(1, 16, 16)
    maps[..., :8] = 1.0
    fig = map_grid(torch.zeros(1, 3, 16, 16), {"half": maps}, image_column=None, colorbar=False, alpha=1.0)
    img = fig.axes[0].images[0].get_array()
    assert img.shape == (16, 16, 3)
    assert (img[:, :8] != img[:, 8:]).any(-1).all()  # viridis(1) on the left, viridis(0) on the right
    with pytest.raises(ValueError, match="half"):
        map_grid(torch.zeros(2, 3, 16, 16), {"half": maps})


def test_plot_precision_recall_marks_operating_point(agg):
    from wsolkit.metrics import localization_metrics
    from wsolkit.viz import plot_precision_recall, plot_threshold_curves

    g = torch.Generator().manual_seed(0)
    masks = (torch.rand(3, 16, 16, generator=g) > 0.5).long()
    cams = masks.float() + 0.8 * torch.rand(3, 16, 16, generator=g)
    r = localization_metrics(cams[:, None], masks, None)
    ax = plot_precision_recall(r).axes[0]
    point = ax.lines[1]
    i = int((r["curves"]["tau"] - r["threshold"]).abs().argmin())
    assert float(point.get_xdata()[0]) == pytest.approx(float(r["curves"]["recall"][i]))
    assert float(point.get_ydata()[0]) == pytest.approx(float(r["curves"]["precision"][i]))
    line = plot_threshold_curves(r, threshold=r["threshold"]).axes[0].lines[-1]
    assert list(line.get_xdata()) == [pytest.approx(r["threshold"])] * 2


def test_figures_run_on_tiny_inputs(tmp_path, agg):
    """Two figures of the script at a tiny budget: the diagram and the curves (a GAP model trained for one step)."""
    from wsolkit import figures

    zoo = figures.Zoo(figures.Budget(**TINY), log=lambda *a: None)
    for name in ("taxonomy", "metrics"):
        w, h = _png(figures.FIGURES[name](zoo, tmp_path))
        assert w > 300 and h > 150
    assert {p.name for p in tmp_path.iterdir()} == {"taxonomy.png", "metrics_curves.png"}


def test_figures_cli_rejects_unknown_names(capsys, agg):
    from wsolkit import figures

    with pytest.raises(SystemExit) as e:
        figures.main(["--out", "x", "--only", "nope"])
    assert e.value.code == 2 and "nope" in capsys.readouterr().err


@pytest.mark.slow
def test_every_figure_renders_at_a_tiny_budget(tmp_path, agg):
    """Every figure function of the script (the full render, at a tiny budget; minutes on a CPU)."""
    from wsolkit import figures

    zoo = figures.Zoo(figures.Budget(**TINY), log=lambda *a: None)
    for fn in figures.FIGURES.values():
        _png(fn(zoo, tmp_path))
    assert len(list(tmp_path.glob("*.png"))) == len(figures.FIGURES)
