"""Slide scoring streamed band by band equals the metric on the full arrays; sharded runs over 2 gloo processes
equal the 1-process run; the ``wsolkit slide`` command and the checkpoint format."""

from __future__ import annotations

import csv
import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

import wsolkit
from wsolkit.metrics import LocalizationMeter, localization_histogram, localization_metrics
from wsolkit.training import load_method, save_checkpoint
from wsolkit.wsi import (
    AnnotationOutsideSlideError,
    Annotations,
    SlideJob,
    TiffSlideReader,
    heatmap,
    read_annotations,
    run_slides,
    slide_metrics,
    write_pyramidal_tiff,
)

XML = ('<ASAP_Annotations><Annotations><Annotation Type="Polygon" PartOfGroup="_0"><Coordinates>'
       '<Coordinate Order="0" X="60" Y="70"/><Coordinate Order="1" X="150" Y="60"/>'
       '<Coordinate Order="2" X="140" Y="160"/><Coordinate Order="3" X="70" Y="150"/>'
       "</Coordinates></Annotation></Annotations></ASAP_Annotations>")


def test_slide_pxap_equals_full_array_metric(tiff_slide, tmp_path, Pointwise):
    (tmp_path / "a.xml").write_text(XML)
    ann = read_annotations(tmp_path / "a.xml")
    hm = heatmap(TiffSlideReader(tiff_slide[0]), Pointwise(), level=1, tile=32, overlap=8, downsample=2,
                 num_workers=0)
    got = slide_metrics(hm, ann, band=7, slide_dims=(320, 224))
    full_map = torch.from_numpy(np.asarray(hm))[None]
    full_mask = torch.from_numpy(ann.rasterize((0, 0, hm.shape[1], hm.shape[0]), hm.factor))[None]
    assert 0 < int(full_mask.sum()) < full_mask.numel()
    fg, bg = localization_histogram(full_map, full_mask, 1000)
    want = localization_metrics(fg, bg)
    for k in ("pxap", "tp*", "fn*", "fp*", "tn*", "dice_fg", "iou_fg", "miou"):
        assert got[k] == want[k], k
    # and the rasterised mask matches the heatmap's pixel grid: pixel (i, j) covers level-0 [4j, 4j+4) x [4i, 4i+4)
    assert hm.factor == 4.0
    with pytest.raises(AnnotationOutsideSlideError):
        slide_metrics(hm, ann, slide_dims=(100, 100))
    with pytest.raises(TypeError, match="normalize=False"):
        from wsolkit.wsi.scoring import slide_meter
        slide_meter(hm, ann, meter=LocalizationMeter(normalize=True))


def _make_slides(root, n=3):
    from conftest import slide_image  # noqa: PLC0415

    jobs = []
    for i in range(n):
        p = write_pyramidal_tiff(root / f"s{i}.tif", slide_image(192 + 32 * i, 160, seed=i), num_levels=2, tile=32,
                                 mpp=0.5)
        (root / f"s{i}.xml").write_text(XML.replace('X="150"', f'X="{120 + 10 * i}"'))
        jobs.append(SlideJob(f"s{i}", str(p), str(root / f"s{i}.xml")))
    return jobs


def _worker(rank, world, port, root, out, threads):
    import torch.distributed as dist

    torch.set_num_threads(threads)  # same reduction order in the convolutions as the parent

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        m = wsolkit.create_method("gap", 2, backbone="smallcnn")
        jobs = [SlideJob(f"s{i}", os.path.join(root, f"s{i}.tif"), os.path.join(root, f"s{i}.xml")) for i in range(3)]
        res = run_slides(jobs, m, out, tile=32, overlap=8, num_workers=0, exports=("npy",))
        if rank == 0:
            with open(os.path.join(out, "result.json"), "w") as f:
                json.dump({"dataset": res["dataset"], "slides": res["slides"]}, f)
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    sys_path = os.path.dirname(__file__)
    import sys

    sys.path.insert(0, sys_path)
    _make_slides(tmp_path)
    one, two = tmp_path / "one", tmp_path / "two"
    torch.manual_seed(0)
    m = wsolkit.create_method("gap", 2, backbone="smallcnn")
    jobs = [SlideJob(f"s{i}", str(tmp_path / f"s{i}.tif"), str(tmp_path / f"s{i}.xml")) for i in range(3)]
    res1 = run_slides(jobs, m, one, tile=32, overlap=8, num_workers=0, exports=("npy",))
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), str(two), torch.get_num_threads()), nprocs=2, join=True)
    res2 = json.loads((two / "result.json").read_text())
    assert res2["dataset"] == res1["dataset"] and res1["dataset"]["pxap"] > 0
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert drop(res2["slides"]) == drop(res1["slides"])
    for i in range(3):
        np.testing.assert_array_equal(np.load(one / f"s{i}.npy"), np.load(two / f"s{i}.npy"))
    assert [r["slide"] for r in csv.DictReader(open(two / "slides.csv"))] == ["s0", "s1", "s2"]
    # the dataset meter is the merge of the slides' meters
    total = LocalizationMeter(normalize=False)
    for i in range(3):
        hm = np.load(one / f"s{i}.npy")
        mask = read_annotations(tmp_path / f"s{i}.xml").rasterize((0, 0, hm.shape[1], hm.shape[0]))
        total.update(torch.from_numpy(hm)[None], torch.from_numpy(mask)[None])
    assert total.compute()["pxap"] == res1["dataset"]["pxap"]


def test_checkpoint_and_slide_command(tmp_path, capsys):
    import sys

    sys.path.insert(0, os.path.dirname(__file__))
    from wsolkit.cli import main

    jobs = _make_slides(tmp_path, n=2)
    torch.manual_seed(1)
    m = wsolkit.create_method("gap", 2, backbone="smallcnn")
    ckpt = save_checkpoint(tmp_path / "m.pt", m)
    m2 = load_method(ckpt)
    for a, b in zip(m.state_dict().values(), m2.state_dict().values()):
        torch.testing.assert_close(a, b)
    out = tmp_path / "out"
    code = main(["slide", "--method", "gap", "--checkpoint", str(ckpt), "--slides", str(tmp_path), "--annotations",
                 str(tmp_path), "--out", str(out), "--tile", "32", "--overlap", "8", "--workers", "0", "--level", "0"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "slide 1/2" in printed and "dataset: pxap=" in printed
    for j in jobs:
        assert (out / f"{j.name}_overlay.png").is_file() and TiffSlideReader(out / f"{j.name}_heatmap.tif")
        want = heatmap(j.path, m, level=0, tile=32, overlap=8, num_workers=0)
        np.testing.assert_array_equal(np.load(out / f"{j.name}.npy"), np.asarray(want))
    assert (out / "pxap.png").is_file() and json.loads((out / "summary.json").read_text())["slides"] == 2
    assert main(["slide", "--method", "max", "--checkpoint", str(ckpt), "--slides", str(tmp_path), "--out",
                 str(out)]) == 2
    assert "differs" in capsys.readouterr().err
    torch.save({"weights": 1}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not a wsolkit checkpoint"):
        load_method(tmp_path / "bad.pt")
    assert Annotations([]).rasterize((0, 0, 3, 3)).sum() == 0
