"""One inference path: ``evaluate``, ``predict_maps``, ``wsolkit predict``, ``wsi.heatmap`` and ``wsolkit slide`` give
the maps of :func:`wsolkit.localize` for the same target, and a model sees the same input tensors in ``fit``,
``predict`` and ``wsi.heatmap``."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

import wsolkit
from wsolkit.cli import main
from wsolkit.data import ImageFolderDataset, PreprocessingWarning, preprocessing
from wsolkit.loading import load_model
from wsolkit.metrics import localization_histogram, pxap_from_histogram
from wsolkit.training import evaluate, fit, predict_maps
from wsolkit.wsi import InMemorySlide, heatmap, write_pyramidal_tiff

timm = pytest.importorskip("timm")
K, S = 3, 128  # test_resnet: 4 x 4 maps at 128 px


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A K-class timm classifier saved as a state_dict, its spec, and labelled images whose labels are never the
    prediction (so a map of the prediction cannot pass for the map of the label)."""
    root = tmp_path_factory.mktemp("onepath")
    torch.manual_seed(0)
    clf = timm.create_model("test_resnet", num_classes=K).eval()
    torch.save(clf.state_dict(), root / "clf.pt")
    spec = f"timm:test_resnet:{root / 'clf.pt'}"
    u8 = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (6, S, S, 3), dtype=np.uint8))
    images = u8.permute(0, 3, 1, 2).float() / 255
    method = load_model(spec, method="cam")
    pred = wsolkit.localize(method, preprocessing(method)(images)).target
    labels = (pred + 1) % K
    for i, (img, y) in enumerate(zip(u8.numpy(), labels.tolist())):
        (root / "images" / f"c{y}").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "images" / f"c{y}" / f"i{i}.png"), img[..., ::-1])
    masks = (torch.rand(6, S, S, generator=torch.Generator().manual_seed(1)) > 0.6).to(torch.uint8)
    return root, spec, images, labels, masks


def test_evaluate_and_predict_maps_are_localize(classifier):
    _, spec, images, labels, masks = classifier
    method = load_model(spec, method="cam")
    x = preprocessing(method)(images)
    for target in ("label", "pred"):
        loc = wsolkit.localize(method, x, target, labels=labels)
        fg, bg = localization_histogram(loc.maps, masks)
        res = evaluate(method, DataLoader(TensorDataset(x, labels, masks), batch_size=4), target=target)
        # the meter min-max normalises the raw maps itself (fused): the same up to rounding at bin edges
        assert res["pxap"] == pytest.approx(pxap_from_histogram(fg, bg), abs=1e-4)
        logits, maps = predict_maps(method, images, labels, target=target)
        torch.testing.assert_close(maps, loc.maps, rtol=0, atol=0)
        torch.testing.assert_close(logits, loc.logits, rtol=0, atol=0)
    # the default of evaluate is the label's map, and it is not the prediction's
    lab = evaluate(method, DataLoader(TensorDataset(x, labels, masks), batch_size=4))["pxap"]
    prd = evaluate(method, DataLoader(TensorDataset(x, labels, masks), batch_size=4), target="pred")["pxap"]
    assert lab != prd


@pytest.mark.parametrize("target", ["label", "pred", "1"])
def test_wsolkit_predict_writes_localize_maps(classifier, tmp_path, target):
    root, spec, _, _, _ = classifier
    out = tmp_path / "out"
    assert main(["predict", "--method", "cam", "--classifier", spec, "--images", str(root / "images"), "--out",
                 str(out), "--target", target, "--format", "npy", "--no-progress"]) == 0
    data = ImageFolderDataset(root / "images")
    method = load_model(spec, method="cam")
    x = preprocessing(method)(torch.stack([d[0] for d in data]))
    y = torch.as_tensor(data.labels)
    loc = wsolkit.localize(method, x, int(target) if target.isdigit() else target, labels=y)
    for k, stem in enumerate(data.stems):
        np.testing.assert_array_equal(np.load(out / "cams" / f"{stem}.npy"), loc.maps[k].numpy())


def test_slide_and_wsolkit_slide_stitch_localize_maps(classifier, tmp_path):
    _, spec, _, _, _ = classifier
    img = np.random.default_rng(2).integers(0, 256, (2 * S, 3 * S, 3), dtype=np.uint8)
    path = write_pyramidal_tiff(tmp_path / "slides" / "s.tif", img, num_levels=1, tile=64, compression="deflate")
    method = load_model(spec, method="cam")
    prep = preprocessing(method)
    want = np.zeros((2 * S, 3 * S))
    for y0 in (0, S):  # tiles without overlap: the stitched raw map is each tile's localize map
        for x0 in (0, S, 2 * S):
            tile = torch.from_numpy(img[y0 : y0 + S, x0 : x0 + S]).permute(2, 0, 1)[None].float() / 255
            want[y0 : y0 + S, x0 : x0 + S] = wsolkit.localize(method, prep(tile), 2, normalize=False).maps[0]
    hm = heatmap(path, method, level=0, tile=S, overlap=0, tissue=False, normalize=None, num_workers=0, target=2)
    assert want.max() > want.min()
    np.testing.assert_allclose(np.asarray(hm), want, rtol=1e-6, atol=1e-7)
    assert main(["slide", "--method", "cam", "--classifier", spec.rsplit(":", 1)[0], "--checkpoint",
                 spec.rsplit(":", 1)[1], "--slides", str(tmp_path / "slides"), "--out", str(tmp_path / "out"),
                 "--tile", str(S), "--overlap", "0", "--workers", "0", "--level", "0", "--no-tissue", "--target", "2",
                 "--exports", "npy"]) == 0
    norm = (want - want.min()) / (want.max() - want.min())
    np.testing.assert_allclose(np.load(tmp_path / "out" / "s.npy"), norm, atol=1e-6)


class _Plain(nn.Module):
    """A backbone that declares no preprocessing (no pretrained_cfg, not SmallCNN)."""

    out_channels = 8

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=4, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x))


def test_fit_predict_and_slides_feed_the_model_the_same_tensors():
    torch.manual_seed(0)
    method = wsolkit.create_method("gap", 2, backbone=_Plain())
    u8 = np.random.default_rng(3).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    images = torch.from_numpy(u8).permute(0, 3, 1, 2).float() / 255
    seen: list[torch.Tensor] = []
    handle = method.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PreprocessingWarning)  # the fallback is named, the same everywhere
            prep = preprocessing(method)
            loader = DataLoader(TensorDataset(prep(images), torch.tensor([0, 1])), batch_size=2)
            fit(method, loader, epochs=1, progress=False)
            in_fit = seen[0]
            seen.clear()
            predict_maps(method, images)
            in_predict = seen[0]
            seen.clear()
            for i in range(2):
                heatmap(InMemorySlide.from_array(u8[i], 1), method, tile=32, overlap=0, tissue=False, num_workers=0)
            in_slide = torch.cat(seen)
    finally:
        handle.remove()
    assert prep.source == wsolkit.data.IMAGENET.source
    torch.testing.assert_close(in_predict, in_fit, rtol=0, atol=0)
    torch.testing.assert_close(in_slide, in_fit, rtol=0, atol=0)
