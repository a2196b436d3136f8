"""A whole-slide CAM heatmap end to end: write a pyramidal TIFF and its XML annotation, train a small method on
patches, stitch its heatmap over the slide, score it against the annotation and export it.

Run: ``python examples/wsi_heatmap.py --quick`` (well under a minute on a CPU) or without ``--quick`` for a bigger
slide and a longer training. Outputs go to ``--out`` (default: a temporary folder).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

import wsolkit
from wsolkit.data.camelyon import synthetic_slide
from wsolkit.wsi import (
    heatmap,
    read_annotations,
    save_heatmap_tiff,
    save_overlay_png,
    slide_metrics,
    write_pyramidal_tiff,
)


def write_xml(path: Path, mask: np.ndarray) -> None:
    """The tumour mask's outer contours as a CAMELYON16 / ASAP XML file (group ``_0``)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    parts = ["<ASAP_Annotations><Annotations>"]
    for k, c in enumerate(contours):
        pts = "".join(f'<Coordinate Order="{i}" X="{x}" Y="{y}"/>' for i, (x, y) in enumerate(c[:, 0].tolist()))
        parts.append(f'<Annotation Name="t{k}" Type="Polygon" PartOfGroup="_0"><Coordinates>{pts}</Coordinates>'
                     "</Annotation>")
    parts.append("</Annotations></ASAP_Annotations>")
    path.write_text("".join(parts))


def patches(image: np.ndarray, mask: np.ndarray, size: int, n: int, rng: np.random.Generator):
    """Random patches labelled metastatic when more than 20 % of their pixels are tumour."""
    xs = rng.integers(0, image.shape[1] - size, n)
    ys = rng.integers(0, image.shape[0] - size, n)
    x = np.stack([image[y : y + size, x0 : x0 + size] for x0, y in zip(xs, ys)])
    y = np.array([mask[y : y + size, x0 : x0 + size].mean() > 0.2 for x0, y in zip(xs, ys)], np.int64)
    return torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255, torch.from_numpy(y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small slide, short training (CI)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    start = time.time()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    out = Path(args.out or tempfile.mkdtemp(prefix="wsolkit_wsi_"))
    size, steps = ((768, 512), 30) if args.quick else ((2048, 1536), 300)

    # 1. a slide on disk: tiled JPEG pyramid with mpp, and its annotation as an XML file
    image_r, mask_r = synthetic_slide(*size, metastatic=True, seed=3, num_levels=1)
    image = image_r.read_region((0, 0), 0, size)[:, :, :3]
    mask = mask_r.read_region((0, 0), 0, size)[:, :, 0] > 0
    slide_path = write_pyramidal_tiff(out / "slide.tif", image, num_levels=3, tile=256, mpp=0.25)
    write_xml(out / "slide.xml", mask)

    # 2. a method trained with the shared loop on patches (any method returning WSOLOutput works)
    method = wsolkit.create_method("gap", 2, backbone="smallcnn")
    opt = torch.optim.Adam(method.parameters(), lr=3e-3)
    method.train()
    for _ in range(steps):
        x, y = patches(image, mask, 64, 16, rng)
        opt.zero_grad()
        for step in method.training_steps(x, y):
            step.total.backward()
        opt.step()

    # 3. the heatmap of the whole slide at 0.5 mpp (level 1), tiles read by a DataLoader worker
    hm = heatmap(slide_path, method, mpp=0.5, tile=128, overlap=32, downsample=2, num_workers=1, target=1)
    ann = read_annotations(out / "slide.xml")
    scores = slide_metrics(hm, ann, slide_dims=size)
    baseline = slide_metrics(np.ones(hm.shape, np.float32), ann.rasterize((0, 0, hm.shape[1], hm.shape[0]),
                                                                          hm.factor))
    save_overlay_png(out / "overlay.png", hm, open_slide_reader(slide_path))
    save_heatmap_tiff(out / "heatmap.tif", hm, mpp=hm.mpp)
    print(f"heatmap {hm.shape} from {len(hm.tiles)} tiles; PxAP {scores['pxap']:.1f} "
          f"(all-ones baseline {baseline['pxap']:.1f}); outputs in {out} ({time.time() - start:.1f} s)")


def open_slide_reader(path: Path):
    from wsolkit.wsi import open_slide

    return open_slide(path)


if __name__ == "__main__":
    main()
