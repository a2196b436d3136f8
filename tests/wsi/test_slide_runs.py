"""``run_slides`` / ``wsolkit slide``: per-slide failures recorded, detections and the CAMELYON16 summary, contours,
blank slides, ``--slide-mpp``."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

import wsolkit
from wsolkit.metrics.froc import froc
from wsolkit.training import save_checkpoint
from wsolkit.wsi import (
    Annotations,
    InMemorySlide,
    SlideJob,
    heatmap,
    read_annotations,
    read_detections_csv,
    run_slides,
    write_pyramidal_tiff,
)
from wsolkit.wsi.tissue import NoTissueWarning, slide_tissue

from .conftest import slide_image

XML = ('<ASAP_Annotations><Annotations><Annotation Type="Polygon" PartOfGroup="_0"><Coordinates>'
       '<Coordinate Order="0" X="40" Y="50"/><Coordinate Order="1" X="{x}" Y="50"/>'
       '<Coordinate Order="2" X="{x}" Y="120"/><Coordinate Order="3" X="40" Y="120"/>'
       "</Coordinates></Annotation></Annotations></ASAP_Annotations>")


def _slides(root, n=2, mpp=0.5):
    jobs = []
    for i in range(n):
        p = write_pyramidal_tiff(root / f"s{i}.tif", slide_image(224, 160, seed=i), num_levels=2, tile=32, mpp=mpp)
        (root / f"s{i}.xml").write_text(XML.format(x=130 + 10 * i))
        jobs.append(SlideJob(f"s{i}", str(p), str(root / f"s{i}.xml")))
    return jobs


def _truncated(root):
    p = write_pyramidal_tiff(root / "bad.tif", slide_image(224, 160, seed=9), num_levels=2, tile=32, mpp=0.5)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 3])
    return p


def _model():
    torch.manual_seed(0)
    return wsolkit.create_method("gap", 2, backbone="smallcnn")


class _Dark(torch.nn.Module):
    """Class 1's map is minus the green channel (the purple nucleus-like region of the slides is darkest in green)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))

    def forward(self, x, labels=None):
        from wsolkit.output import WSOLOutput

        cams = torch.stack([x[:, 1], -x[:, 1]], 1) * self.w
        return WSOLOutput(cams.mean((2, 3)), cams, {})


# level 2 and 8 µm / px: dilation 1.2 px, ITCs below 8.6 px at that level (the slides are 224 x 160)
KW = dict(tile=32, overlap=8, num_workers=0, exports=("npy",), froc_level=2, froc_resolution=8.0)


def test_one_bad_slide_is_recorded_and_the_others_finish(tmp_path):
    jobs = _slides(tmp_path)
    jobs.insert(1, SlideJob("bad", str(_truncated(tmp_path)), None))
    res = run_slides(jobs, _model(), tmp_path / "out", **KW)
    assert res["failed"] == ["bad"]
    rows = list(csv.DictReader(open(tmp_path / "out" / "slides.csv")))
    assert [r["slide"] for r in rows] == ["s0", "bad", "s1"]
    assert rows[1]["status"] == "failed" and rows[1]["error"] and rows[0]["status"] == rows[2]["status"] == "ok"
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["failed"] == ["bad"] and summary["dataset"]["pxap"] > 0
    assert (tmp_path / "out" / "s0.npy").is_file() and (tmp_path / "out" / "s1.npy").is_file()


def test_slide_command_exit_code_says_some_failed(tmp_path, capsys):
    from wsolkit.cli import main

    _slides(tmp_path)
    _truncated(tmp_path)
    ckpt = save_checkpoint(tmp_path / "m.pt", _model())
    out = tmp_path / "out"
    code = main(["slide", "--checkpoint", str(ckpt), "--slides", str(tmp_path), "--annotations", str(tmp_path),
                 "--out", str(out), "--tile", "32", "--overlap", "8", "--workers", "0", "--exports", "npy",
                 "--contours"])
    err = capsys.readouterr().err
    assert code == 1 and "1 of 3 slides failed" in err and "bad" in err
    assert len(list(csv.DictReader(open(out / "slides.csv")))) == 3
    assert sorted(p.name for p in (out / "detections").iterdir()) == ["s0.csv", "s1.csv"]
    assert (out / "contours" / "s0.geojson").is_file() and (out / "contours" / "s0.xml").is_file()


def test_detections_and_camelyon16_summary_equal_the_metric_on_the_files(tmp_path):
    jobs = _slides(tmp_path, n=3)
    jobs[2] = SlideJob("s2", jobs[2].path, Annotations([], source="normal"))  # a normal slide
    out = tmp_path / "out"
    res = run_slides(jobs, _Dark(), out, contours=True, detect=0.8, **KW)
    c16 = res["camelyon16"]
    assert c16["slides"] == 3 and c16["tumour_slides"] == 2 and 0 <= c16["slide_auc"] <= 1
    dets = {j.name: read_detections_csv(out / "detections" / f"{j.name}.csv") for j in jobs}
    masks = {}
    for j in jobs[:2]:
        ann = read_annotations(j.annotation)
        masks[j.name] = ann.rasterize((0, 0, 224 // 4, 160 // 4), 4.0).astype(bool)
    want = froc(dets, masks, resolution=8.0, level=2)
    assert c16["froc"] == want.score and c16["lesions"] == want.num_tumors == 2
    assert want.score > 0.4  # the dark regions lie in the annotated lesions
    # contours read back as the thresholded heatmap
    hm = np.load(out / "s0.npy")
    back = read_annotations(out / "contours" / "s0.geojson").rasterize((0, 0, hm.shape[1], hm.shape[0]), 1.0)
    np.testing.assert_array_equal(back.astype(bool), hm >= 0.8)


def test_blank_slide_warns_and_gives_an_empty_heatmap(tmp_path):
    rng = np.random.default_rng(0)
    glass = np.clip(245 + rng.integers(-8, 9, (160, 224, 3)), 0, 255).astype(np.uint8)
    blank = InMemorySlide.from_array(glass, 3)
    assert not slide_tissue(blank).mask.any()
    with pytest.warns(NoTissueWarning, match="no tissue"):
        hm = heatmap(blank, _model(), tile=32, overlap=0, num_workers=0)
    assert len(hm.logits) == 0 and not np.asarray(hm).any()
    # a slide with tissue keeps it
    assert slide_tissue(InMemorySlide.from_array(slide_image(224, 160), 3)).mask.mean() > 0.2
    with pytest.warns(NoTissueWarning):
        res = run_slides([SlideJob("blank", blank, None)], _model(), tmp_path, **KW)
    assert res["slides"][0]["status"] == "no tissue" and res["slides"][0]["tiles"] == 0
    assert json.loads((tmp_path / "summary.json").read_text())["no_tissue"] == ["blank"]


def test_slide_mpp_for_a_slide_without_one(tmp_path):
    jobs = _slides(tmp_path, n=1, mpp=None)
    res = run_slides(jobs, _model(), tmp_path / "a", mpp=1.0, **KW)
    assert res["failed"] == ["s0"] and "UnknownMPPError" in res["slides"][0]["error"]
    res = run_slides(jobs, _model(), tmp_path / "b", mpp=1.0, slide_mpp=0.5, **KW)
    assert res["failed"] == [] and res["slides"][0]["width"] == 112  # level 1 of a 224-px slide at 0.5 µm


class _Recording(InMemorySlide):
    """Records the largest region read (pixels)."""

    largest = 0

    def read_region(self, location, level, size):
        type(self).largest = max(type(self).largest, int(size[0]) * int(size[1]))
        return super().read_region(location, level, size)


def test_tissue_and_overlay_bounded_without_a_small_level(tmp_path):
    from wsolkit.wsi import save_overlay_png
    from wsolkit.wsi.export import thumbnail

    img = np.full((3000, 4000, 3), 245, np.uint8)
    img[1000:2000, 1000:3000] = (226, 150, 196)
    s = _Recording([img])  # one level, far above max_size
    t = slide_tissue(s, max_size=512)
    assert max(t.mask.shape) == 512 and t.downsample == pytest.approx(4000 / 512)
    assert t.fraction(1000, 1000, 2000, 1000) > 0.95 and t.fraction(0, 0, 900, 900) == 0
    assert _Recording.largest <= 2**22 + 4000  # read in bands, never the whole level
    rgb, f = thumbnail(s, 256)
    assert max(rgb.shape[:2]) == 256 and f == pytest.approx(4000 / 256)
    hm = np.zeros((300, 400), np.float32)
    p = save_overlay_png(tmp_path / "o.png", hm, s, max_size=256)
    import cv2

    assert max(cv2.imread(str(p)).shape[:2]) == 256
