"""The CAMELYON16 patch protocol (survey App. B) end to end, on small synthetic slides built in memory.

With real slides, replace the synthetic slides by paths (needs ``pip install "wsolkit[wsi]"``):
``Slide("tumor_001", "tumor_001.tif", "tumor_001_mask.tif")`` and ``Slide("normal_001", "normal_001.tif")``.

Run: ``python examples/camelyon_patches.py --quick`` (a few seconds) or without ``--quick`` for bigger slides.
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import time

from wsolkit.data.camelyon import (
    CamelyonPatches,
    PatchProtocol,
    Slide,
    extract_patches,
    read_index,
    split_slides,
    synthetic_slide,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small slides (CI)")
    parser.add_argument("--out", default=None, help="output folder (default: a temporary folder)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.time()

    # 1. slides: tumour slides come with a level-0 annotation pyramid, normal slides without
    n_tumour, n_normal = (5, 5) if args.quick else (10, 10)
    width, height = (768, 512) if args.quick else (2048, 1536)
    patch = 32 if args.quick else 64
    slides = {}
    for i in range(n_tumour):
        image, annotation = synthetic_slide(width, height, metastatic=True, seed=i)
        slides[f"tumor_{i:03d}"] = Slide(f"tumor_{i:03d}", image, annotation)
    for i in range(n_normal):
        image, _ = synthetic_slide(width, height, metastatic=False, seed=100 + i)
        slides[f"normal_{i:03d}"] = Slide(f"normal_{i:03d}", image)

    # 2. WSI-level split, stratified by slide class
    names = list(slides)
    splits = split_slides(names, [slides[n].metastatic for n in names], {"train": 0.6, "valid": 0.2, "test": 0.2})

    # 3. the protocol: the paper's percentages (p_t 10%, p_0 20%, p_1 50%); p_n raised from 1% because these
    #    slides are tiny (1% of a few Category 1 patches rounds to zero Category 2 patches)
    protocol = PatchProtocol(patch_size=patch, p_n=0.25, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or tmp
        index = extract_patches({k: [slides[n] for n in v] for k, v in splits.items()}, out, protocol)
        rows = read_index(index)
        print(f"patch size {patch}, slides {width}x{height}; index: {len(rows)} rows")
        print(f"{'split':6s} {'slides (tumour/normal)':>22s} {'cat. 1':>7s} {'cat. 2':>7s} {'normal':>7s}")
        for k, members in splits.items():
            c = collections.Counter(r["category"] for r in rows if r["split"] == k)
            nt = sum(slides[n].metastatic for n in members)
            print(f"{k:6s} {f'{nt}/{len(members) - nt}':>22s} {c[1]:7d} {c[2]:7d} {c[0]:7d}")
        images, labels, masks = CamelyonPatches(out, "train").tensors()
        meta = labels == 1
        print(
            f"train tensors: images {tuple(images.shape)}, metastatic {int(meta.sum())}, "
            f"mean tumour fraction of metastatic patches {masks[meta].float().mean():.2f}"
        )
    print(f"done in {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
