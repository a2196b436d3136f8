"""Readers on real pyramidal TIFFs (tiffslide and OpenSlide agree with each other and with the written array),
level / mpp resolution, pickling, and the typed errors of bad input."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from wsolkit._checks import WSOLValueError
from wsolkit.wsi import (
    CorruptTileError,
    InMemorySlide,
    MissingLevelError,
    OpenSlideReader,
    SlideReader,
    TiffSlideReader,
    UnknownMPPError,
    resolve_level,
    write_pyramidal_tiff,
)
from wsolkit.wsi.readers import read_rgb


def test_tiffslide_reads_the_pyramid(tiff_slide):
    path, img = tiff_slide
    r = TiffSlideReader(path)
    assert isinstance(r, SlideReader)
    assert r.level_dimensions == [(320, 224), (160, 112), (80, 56)]
    assert r.level_downsamples == [1.0, 2.0, 4.0]
    assert r.mpp == pytest.approx(0.25)
    # JPEG: close to the written image; outside the slide: transparent -> white
    got = read_rgb(r, (300, 200), 0, (40, 40))
    assert np.abs(got[:24, :20].astype(int) - img[200:, 300:].astype(int)).mean() < 8
    assert (got[24:] == 255).all() and (got[:, 20:] == 255).all()
    assert (r.read_region((300, 200), 0, (40, 40))[24:, :, 3] == 0).all()


def test_lossless_tiff_equals_array(tmp_path):
    img = np.random.default_rng(1).integers(0, 256, (100, 140, 3), np.uint8)
    p = write_pyramidal_tiff(tmp_path / "l.tif", img, num_levels=2, tile=32, compression="deflate")
    r = TiffSlideReader(p)
    np.testing.assert_array_equal(read_rgb(r, (0, 0), 0, (140, 100)), img)
    np.testing.assert_array_equal(read_rgb(r, (37, 21), 0, (50, 30)), img[21:51, 37:87])
    assert r.mpp is None


def test_openslide_agrees_with_tiffslide(tiff_slide):
    pytest.importorskip("openslide")
    path, _ = tiff_slide
    a, b = TiffSlideReader(path), OpenSlideReader(path)
    assert a.level_dimensions == b.level_dimensions and a.mpp == pytest.approx(b.mpp)
    for level in range(3):
        np.testing.assert_array_equal(read_rgb(a, (32, 16), level, (50, 40)), read_rgb(b, (32, 16), level, (50, 40)))


def test_reader_pickles_and_reopens(tiff_slide):
    path, _ = tiff_slide
    r = TiffSlideReader(path)
    before = read_rgb(r, (0, 0), 1, (64, 64))
    r2 = pickle.loads(pickle.dumps(r))
    np.testing.assert_array_equal(read_rgb(r2, (0, 0), 1, (64, 64)), before)


def test_resolve_level_by_mpp(tiff_slide):
    r = TiffSlideReader(tiff_slide[0])
    assert resolve_level(r).level == 0
    assert resolve_level(r, mpp=0.5).level == 1 and resolve_level(r, mpp=0.5).scale == 1.0
    assert resolve_level(r, mpp=1.0).level == 2
    res = resolve_level(r, mpp=0.8)  # between levels 1 (0.5) and 2 (1.0): read level 1, shrink by 0.5/0.8
    assert res.level == 1 and res.scale == pytest.approx(0.625) and res.factor == pytest.approx(3.2)
    assert resolve_level(r, mpp=0.26).level == 0  # within the 10 % tolerance of level 0
    with pytest.raises(WSOLValueError, match="not both"):
        resolve_level(r, level=1, mpp=0.5)


def test_bad_input_named_errors(tiff_slide, tmp_path):
    r = TiffSlideReader(tiff_slide[0])
    with pytest.raises(MissingLevelError, match=r"`level`=3.*levels 0..2"):
        r.read_region((0, 0), 3, (4, 4))
    with pytest.raises(MissingLevelError, match="level"):
        resolve_level(r, level=5)
    with pytest.raises(MissingLevelError, match="finer than level 0"):
        resolve_level(r, mpp=0.1)
    nompp = InMemorySlide.from_array(np.zeros((16, 16, 3), np.uint8), 2)
    with pytest.raises(UnknownMPPError, match="mpp"):
        resolve_level(nompp, mpp=0.5)
    with pytest.raises(FileNotFoundError):
        TiffSlideReader(tmp_path / "missing.tif")


def test_corrupt_tile_is_a_named_error(tmp_path):
    import tifffile

    img = np.random.default_rng(2).integers(0, 256, (128, 128, 3), np.uint8)
    p = write_pyramidal_tiff(tmp_path / "c.tif", img, num_levels=1, tile=64, compression="jpeg")
    with tifffile.TiffFile(p) as tf:
        page = tf.pages[0]
        offset, count = page.dataoffsets[3], page.databytecounts[3]  # the bottom-right tile
    raw = bytearray(p.read_bytes())
    raw[offset : offset + count] = bytes(count)  # zero the JPEG stream
    p.write_bytes(bytes(raw))
    r = TiffSlideReader(p)
    read_rgb(r, (0, 0), 0, (64, 64))  # an intact tile still reads
    with pytest.raises(CorruptTileError, match=r"c\.tif"):
        read_rgb(r, (64, 64), 0, (64, 64))


def test_unsupported_format_is_not_a_corrupt_tile(tmp_path, monkeypatch):
    import sys
    import types

    from wsolkit.wsi import CorruptTileError, OpenSlideReader, TiffSlideReader, UnsupportedSlideError

    p = tmp_path / "x.tif"
    p.write_text("plain text, not a slide")
    pytest.importorskip("tiffslide")
    with pytest.raises(UnsupportedSlideError, match="not a format tiffslide reads") as e:
        TiffSlideReader(p)
    assert not isinstance(e.value, CorruptTileError)

    class Unsupported(Exception):
        pass

    def opener(path):
        raise Unsupported("Unsupported or missing image file")

    fake = types.SimpleNamespace(OpenSlide=opener, OpenSlideUnsupportedFormatError=Unsupported)
    monkeypatch.setitem(sys.modules, "openslide", fake)
    with pytest.raises(UnsupportedSlideError, match="not a format OpenSlide reads"):
        OpenSlideReader(p)

    def broken(path):
        raise OSError("read error")

    monkeypatch.setitem(sys.modules, "openslide", types.SimpleNamespace(OpenSlide=broken,
                                                                        OpenSlideUnsupportedFormatError=Unsupported))
    with pytest.raises(CorruptTileError):
        OpenSlideReader(p)


def test_public_surface_and_moved_names():
    import warnings

    import wsolkit.data.camelyon as camelyon
    import wsolkit.wsi as wsi
    from wsolkit.wsi import readers

    assert all(hasattr(wsi, n) for n in wsi.__all__) and len(wsi.__all__) == len(set(wsi.__all__))
    for name in ("read_rgb", "TileGrid", "blend_window", "otsu_threshold", "colorize"):
        assert name not in wsi.__all__
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            getattr(wsi, name)
        assert any(issubclass(x.category, DeprecationWarning) and name in str(x.message) for x in w)
    # the slide readers are public from wsolkit.wsi only
    for name in ("SlideReader", "InMemorySlide", "TiffSlideReader", "OpenSlideReader"):
        assert name not in camelyon.__all__
        with pytest.warns(DeprecationWarning, match=f"use wsolkit.wsi.{name}"):
            assert getattr(camelyon, name) is getattr(readers, name)
    with pytest.raises(AttributeError):
        wsi.no_such_name


def _truncated_tiff(tmp_path):
    rng = np.random.default_rng(0)
    p = write_pyramidal_tiff(tmp_path / "t.tif", rng.integers(0, 255, (768, 1024, 3), np.uint8), num_levels=2,
                             tile=64, compression="jpeg")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return p


def test_failed_read_leaves_no_pending_zarr_task(tmp_path):
    import asyncio

    pytest.importorskip("tiffslide")
    zsync = pytest.importorskip("zarr.core.sync")
    r = TiffSlideReader(_truncated_tiff(tmp_path))
    with pytest.raises(CorruptTileError):
        r.read_region((0, 0), 0, (1024, 768))
    loop = zsync.loop[0]

    async def pending():
        return [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]

    assert asyncio.run_coroutine_threadsafe(pending(), loop).result(10) == []
    assert r.read_region((0, 0), 0, (64, 64)).shape == (64, 64, 4)  # the reader still reads intact tiles


@pytest.mark.slow
def test_truncated_tiff_gives_one_clear_error_without_a_stderr_flood(tmp_path):
    import os
    import subprocess
    import sys

    pytest.importorskip("tiffslide")
    p = _truncated_tiff(tmp_path)
    code = ("from wsolkit.wsi import TiffSlideReader, CorruptTileError\n"
            f"r = TiffSlideReader({str(p)!r})\n"
            "try:\n    r.read_region((0, 0), 0, (1024, 768))\n"
            "except CorruptTileError as e:\n    print('CorruptTileError')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    for _ in range(3):  # the flood depended on timing (pending tasks at exit): several runs
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
        assert out.stdout.strip() == "CorruptTileError"
        assert "Task" not in out.stderr and len(out.stderr.splitlines()) <= 3, out.stderr[:2000]
