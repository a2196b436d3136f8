"""Scalar meters with Lightning itself: ``self.log(name, metric)`` and ``self.log_dict(MetricCollection)`` give the
one-shot result of the whole validation set, in one process and in a 2-process CPU DDP run (gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("lightning")

from wsolkit.metrics import LocalizationMeter, localization_metrics  # noqa: E402

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import _lightning_module as lm  # noqa: E402


def _expected() -> dict[str, float]:
    cams, masks, labels = lm.data()
    r = localization_metrics(cams, masks, labels=labels)
    return {"val_pxap": r["pxap"], "c_pxap": r["pxap"], "c_peak_iou": r["max_miou"], "c_f1_pos": r["f1_pos"]}


def _check(got: dict[str, float]) -> None:
    exp = _expected()
    assert 5.0 < exp["val_pxap"] < 95.0  # a value that a wrong split or a missed batch would change
    for k, v in exp.items():
        assert got[k] == pytest.approx(v, abs=1e-4), k


def test_self_log_and_log_dict_one_process():
    torch.manual_seed(0)
    _check(lm.validate(devices=1, batch_size=5))  # 12 images in uneven batches


def test_a_dict_meter_cannot_be_logged_the_scalars_can():
    """Why the scalar meters exist: Lightning refuses a ``Metric`` whose ``compute()`` is a dict."""
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    class DictLog(lm.Module):
        def __init__(self):
            super().__init__()
            self.meter = LocalizationMeter()

        def validation_step(self, batch, batch_idx):
            self.meter.update(*batch)
            self.log("val_loc", self.meter)

    loader = DataLoader(TensorDataset(*lm.data(4)), batch_size=2)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False)
    with pytest.raises(ValueError, match="tensor"):
        trainer.validate(DictLog(), loader, verbose=False)
    cams, masks, labels = lm.data(4)
    scalar = lm.PxAP()
    scalar.update(cams, masks, labels)
    out = scalar.compute()
    assert isinstance(out, torch.Tensor) and out.ndim == 0 and out.dtype == torch.float32
    assert float(out) == pytest.approx(localization_metrics(cams, masks, labels=labels)["pxap"], abs=1e-4)


@pytest.mark.slow
def test_self_log_and_log_dict_two_process_ddp(tmp_path):
    out = tmp_path / "ddp.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [p for p in (os.environ.get("PYTHONPATH"), str(HERE)) if p]))
    proc = subprocess.run([sys.executable, str(HERE / "_lightning_module.py"), str(out)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(out.read_text())
    assert got["world_size"] == 2
    _check(got)  # each rank saw 6 of the 12 images; the logged values are those of all 12
