"""A LightningModule logging wsolkit's scalar meters, shared by tests/metrics/test_lightning.py and its DDP script.

Run as a script (``python _lightning_module.py OUT.json``) it validates on 2 CPU processes (``strategy="ddp"``,
gloo) and rank 0 writes the logged metrics to ``OUT.json``.
"""

from __future__ import annotations

import json
import sys

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics import MetricCollection

from wsolkit.metrics import F1Pos, PeakIoU, PxAP


def data(n: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Raw class maps ``(n, 2, 8, 8)``, masks ``(n, 32, 32)`` (with ignored pixels) and labels."""
    g = torch.Generator().manual_seed(seed)
    cams = torch.randn(n, 2, 8, 8, generator=g)
    masks = (torch.rand(n, 32, 32, generator=g) > 0.6).to(torch.uint8)
    masks[:, :2] = 255
    labels = torch.randint(0, 2, (n,), generator=g)
    cams[torch.arange(n), labels, 2:6, 2:6] += 1.0  # some signal so the metrics are away from chance
    return cams, masks, labels


class Module(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.unused = nn.Linear(1, 1)  # DDP needs a parameter
        self.val_pxap = PxAP()
        self.val_loc = MetricCollection({"pxap": PxAP(), "peak_iou": PeakIoU(), "f1_pos": F1Pos()}, prefix="c_")

    def validation_step(self, batch, batch_idx):
        cams, masks, labels = batch
        self.val_pxap.update(cams, masks, labels)
        self.log("val_pxap", self.val_pxap)
        self.val_loc.update(cams, masks, labels)  # positional, as for one meter
        self.log_dict(self.val_loc)


def validate(devices: int = 1, strategy: str = "auto", batch_size: int = 3) -> dict[str, float]:
    cams, masks, labels = data()
    loader = DataLoader(TensorDataset(cams, masks, labels), batch_size=batch_size, shuffle=False)
    trainer = L.Trainer(accelerator="cpu", devices=devices, strategy=strategy, logger=False,
                        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    res = trainer.validate(Module(), loader, verbose=False)[0]
    res["world_size"] = trainer.world_size
    res["rank"] = trainer.global_rank
    return {k: float(v) for k, v in res.items()}


if __name__ == "__main__":
    torch.set_num_threads(1)
    out = validate(devices=2, strategy="ddp", batch_size=2)
    if out["rank"] == 0:
        with open(sys.argv[1], "w") as f:
            json.dump(out, f)
