"""Your own data, end to end: folders in, a B-LOC-selected method, maps, metrics and overlays out.

    python examples/own_data.py --quick            # ~30 s on a laptop CPU, in CI
    python examples/own_data.py --method wildcat   # any trainable method of wsolkit.list_methods()

The folders are written from the synthetic benchmark in the layout a user has: ``images/<class>/<name>.png`` and
``masks/<name>.png`` stored as 0/255 with a ``dataset.json`` declaring it. Replace them with yours.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from torch.utils.data import DataLoader

import wsolkit
from wsolkit.cli import main as wsolkit_cli
from wsolkit.data import ImageFolderDataset, SyntheticHistology, default_augmentation, preprocessing
from wsolkit.training import fit


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--method", default="gap")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=None, help="working folder (default: a temporary one)")
    p.add_argument("--workers", type=int, default=0)
    args = p.parse_args()
    n_train, size, epochs = (192, 64, 6) if args.quick else (400, 96, 12)
    out = Path(args.out or tempfile.mkdtemp(prefix="wsolkit-own-data-"))

    # 1. folders (yours go here): train without masks, 3 masked validation images per class (B-LOC), a test set
    train_images, _ = SyntheticHistology("glas", "train", n=n_train, size=size).to_folder(out / "train")
    val_images, val_masks = SyntheticHistology("glas", "valid", n=6, size=size).to_folder(out / "valid")
    test_images, test_masks = SyntheticHistology("glas", "test", n=32, size=size).to_folder(out / "test")

    # 2. a method from the registry; its preprocessing is read from the model, never hard-coded
    options = {"backbone": "smallcnn", "backbone_options": {"width": 16, "depth": 2}}
    method = wsolkit.create_method(args.method, 2, **options)
    prep = preprocessing(method)
    train = ImageFolderDataset(train_images, transform=default_augmentation(), preprocess=prep)
    val = ImageFolderDataset(val_images, val_masks, preprocess=prep)
    loader_kw = {"num_workers": args.workers, "persistent_workers": args.workers > 0}

    # 3. train; after each epoch: PxAP on the masked validation images, keep the best (B-LOC), checkpoint, CSV
    result = fit(method, DataLoader(train, batch_size=32, shuffle=True, **loader_kw), lr=3e-3, epochs=epochs,
                 val_loader=DataLoader(val, batch_size=6), select="b-loc", checkpoint_dir=out / "run",
                 metrics_csv=out / "run" / "metrics.csv", method_name=args.method, method_options=options)
    best = result["selector"].best("b-loc")
    print(f"B-LOC epoch {best['epoch']}: validation PxAP {best['loc']:.1f}, accuracy {best['cls']:.1f}%")

    # 4. maps for the test folder (the layout `wsolkit evaluate` reads), then the metrics, as a user would run them
    pred = out / "pred"
    wsolkit_cli(["predict", "--checkpoint", str(out / "run" / "best.pt"), "--images", str(test_images),
                 "--masks", str(test_masks), "--out", str(pred), "--target", "label", "--overlays", "--no-progress"])
    code = wsolkit_cli(["evaluate", "--cams", str(pred / "cams"), "--masks", str(pred / "masks"), "--labels",
                        str(pred / "labels.csv"), "--out", str(pred / "metrics.json"), "--no-progress"])
    if code != 0:
        raise SystemExit(code)
    pxap = json.loads((pred / "metrics.json").read_text())["localization"]["pxap"]
    print(f"test PxAP {pxap:.1f}; overlays in {pred / 'overlays'}")


if __name__ == "__main__":
    main()
