"""Slide reads under DataLoader workers: each process reads through its own file handle.

A reader opened in the parent and inherited by forked workers shared one file descriptor (and its offset) with
them: interleaved seek/read returned other tiles' bytes (``CorruptTileError: two SOF markers`` or silently wrong
heatmaps). The heatmap must be bit-identical for every ``num_workers``, on JPEG- and deflate-tiled pyramids stored as
pages and as SubIFDs, over repeated runs.
"""

from __future__ import annotations

import multiprocessing as mp

import cv2
import numpy as np
import pytest

from wsolkit.wsi import TiffSlideReader, heatmap, write_pyramidal_tiff

from .conftest import _Pointwise, slide_image

pytest.importorskip("tiffslide")
tifffile = pytest.importorskip("tifffile")


def _write(path, img, layout, compression, levels=3, tile=32):
    if layout == "pages":
        return write_pyramidal_tiff(path, img, num_levels=levels, tile=tile,
                                    compression="jpeg" if compression == "jpeg" else "deflate")
    kw = dict(tile=(tile, tile), photometric="rgb", compression="jpeg" if compression == "jpeg" else "zlib",
              metadata=None)
    with tifffile.TiffWriter(path) as tw:
        tw.write(img, subifds=levels - 1, **kw)
        lv = img
        for _ in range(1, levels):
            lv = cv2.resize(lv, (lv.shape[1] // 2, lv.shape[0] // 2), interpolation=cv2.INTER_AREA)
            tw.write(lv, subfiletype=1, **kw)
    return path


def _child_reads_own_handle(reader, q):
    inherited = reader._handle
    own = reader._slide
    tile = reader.read_region((0, 0), 0, (16, 16))
    q.put((inherited is not None, own is not inherited, tile.tobytes()))


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="needs the fork start method")
def test_forked_process_opens_its_own_handle(tmp_path):
    p = _write(tmp_path / "s.tif", slide_image(128, 96), "subifds", "jpeg")
    reader = TiffSlideReader(p)
    parent = reader._slide
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    proc = ctx.Process(target=_child_reads_own_handle, args=(reader, q))
    proc.start()
    had_inherited, own, tile = q.get(timeout=60)
    proc.join(60)
    assert had_inherited and own
    assert reader._slide is parent  # the parent keeps its handle
    assert tile == reader.read_region((0, 0), 0, (16, 16)).tobytes()


def _maps(path, workers, repeats):
    out = []
    for nw in workers:
        for _ in range(repeats):
            reader = TiffSlideReader(path)
            reader.read_region((0, 0), 0, (8, 8))  # a handle opened in the parent before the workers start
            out.append((nw, np.asarray(heatmap(reader, _Pointwise(), tile=32, overlap=0, tissue=False,
                                               num_workers=nw, batch_size=2))))
    return out


def test_heatmap_identical_under_workers_subifd_jpeg(tmp_path):
    p = _write(tmp_path / "s.tif", slide_image(512, 384, seed=1), "subifds", "jpeg")
    ref = np.asarray(heatmap(TiffSlideReader(p), _Pointwise(), tile=32, overlap=0, tissue=False, num_workers=0,
                             batch_size=2))  # only the worker count differs from the runs below
    for nw, m in _maps(p, (2,), 2):
        assert np.array_equal(m, ref), nw


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["pages", "subifds"])
@pytest.mark.parametrize("compression", ["jpeg", "deflate"])
def test_heatmap_identical_under_workers(tmp_path, layout, compression):
    p = _write(tmp_path / "s.tif", slide_image(768, 512, seed=2), layout, compression)
    ref = np.asarray(heatmap(TiffSlideReader(p), _Pointwise(), tile=32, overlap=0, tissue=False, num_workers=0,
                             batch_size=2))  # only the worker count differs from the runs below
    for nw, m in _maps(p, (0, 1, 2, 4), 2):
        assert np.array_equal(m, ref), (layout, compression, nw)
