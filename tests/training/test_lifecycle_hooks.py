"""A method's life cycle through ``fit``: hooks, warnings for loops that skip them, checkpoints that rebuild the method,
and the inputs ``fit`` refuses."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

import wsolkit
from wsolkit import LifecycleWarning
from wsolkit.data import Preprocessing, preprocessing
from wsolkit.losses import ELB
from wsolkit.training import (
    CheckpointMismatchError,
    fit,
    fit_tensors,
    load_checkpoint,
    load_method,
    save_checkpoint,
)


def _data(n=16, size=32, k=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size, size, generator=g)
    y = torch.arange(n) % k
    m = torch.zeros(n, size, size, dtype=torch.uint8)
    m[:, 8:24, 8:24] = 1
    x[y == 1, 0, 8:24, 8:24] += 1.0
    return x, y, m


def _gap(k=2):
    torch.manual_seed(0)
    return wsolkit.create_method("gap", k, backbone="smallcnn", backbone_options={"width": 4})


def _fcam(name="fcam"):
    clf = _gap().eval()
    return wsolkit.create_method(name, classifier=clf, crf=None, size=ELB(t0=1.0, factor=1.5, t_max=100.0))


def _maxmin(**kw):
    torch.manual_seed(0)
    return wsolkit.create_method("maxmin", 2, backbone="smallcnn", backbone_options={"width": 4}, u=1, **kw)


@pytest.mark.parametrize("name", ["fcam", "negev"])
def test_fit_steps_the_decoders_barrier_once_per_epoch(name):
    x, y, _ = _data(8)
    m = _fcam(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LifecycleWarning)
        fit(m, DataLoader(TensorDataset(x, y), batch_size=4), epochs=3, progress=False)
    assert m.objective.size.t == pytest.approx(1.0 * 1.5**3)


def test_fit_steps_the_maxmin_size_prior_once_per_epoch():
    x, y, _ = _data(8)
    m = _maxmin(detach_mask=False, size_prior=ELB(t0=2.0, factor=1.25, t_max=100.0))
    fit(m, DataLoader(TensorDataset(x, y), batch_size=4), epochs=2, progress=False)
    assert m.size_prior.t == pytest.approx(2.0 * 1.25**2)


def test_a_loop_without_on_epoch_end_is_warned_and_with_it_is_not():
    x, y, _ = _data(8)
    m = _fcam()
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.01)

    def epoch(hook: bool, e: int):
        m.train()
        for i in range(0, 8, 4):
            opt.zero_grad()
            for step in m.training_steps(x[i : i + 4], y[i : i + 4]):
                step.total.backward()
            opt.step()
        if hook:
            m.on_epoch_end(e)

    with warnings.catch_warnings():
        warnings.simplefilter("error", LifecycleWarning)
        for e in range(2):
            epoch(True, e)
    assert m.objective.size.t == pytest.approx(1.5**2)
    epoch(False, 2)
    with pytest.warns(LifecycleWarning, match="on_epoch_end"):
        epoch(False, 3)  # a new epoch starts with the previous one's batches pending
    # a method without a schedule never warns
    gap = _gap()
    with warnings.catch_warnings():
        warnings.simplefilter("error", LifecycleWarning)
        for _ in range(2):
            gap.train()
            for step in gap.training_steps(x, y):
                step.total.backward()


def test_maxmin_used_without_on_fit_end_is_warned():
    x, y, _ = _data(8)
    m = _maxmin()
    for step in m.training_steps(x, y):
        step.total.backward()
    with pytest.warns(LifecycleWarning, match="on_fit_end"):
        m.eval()
    m.train()
    for step in m.training_steps(x, y):
        step.total.backward()
    with warnings.catch_warnings():
        warnings.simplefilter("error", LifecycleWarning)
        m.on_fit_end(DataLoader(TensorDataset(x, y), batch_size=4))
        m.eval()


def test_on_fit_end_over_a_loader_equals_recalibrate_statistics_over_the_images():
    x, y, _ = _data(12)
    a, b = _maxmin(), _maxmin()
    for m in (a, b):
        for step in m.training_steps(x, y):
            step.total.backward()
    b.load_state_dict(a.state_dict())
    a.recalibrate_statistics(x, batch_size=4)
    b.on_fit_end(DataLoader(TensorDataset(x, y), batch_size=4))
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k


def test_maxmin_best_checkpoint_is_the_method_in_memory(tmp_path):
    """What ``wsolkit predict`` loads (best.pt, last.pt) is what fit leaves in memory: recalibrated statistics."""
    x, y, masks = _data(16)
    m = _maxmin()
    train = DataLoader(TensorDataset(x, y), batch_size=8)
    val = DataLoader(TensorDataset(x, y, masks), batch_size=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LifecycleWarning)
        res = fit(m, train, epochs=3, val_loader=val, checkpoint_dir=tmp_path, progress=False, lr=3e-3)
    best_epoch = res["selector"].best("b-loc")["epoch"]
    m.eval()
    best = load_method(tmp_path / "best.pt")
    with torch.no_grad():
        ref = m(x)
        out = best(x)
    assert torch.equal(ref.logits, out.logits) and torch.equal(ref.cams, out.cams)
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == best_epoch + 1
    # the statistics are the recalibrated ones: recalibrating again over the same batches changes nothing
    again = load_method(tmp_path / "best.pt")
    again.on_fit_end(train)
    for (k, v), w in zip(again.state_dict().items(), best.state_dict().values()):
        torch.testing.assert_close(v, w, msg=k)
    # last.pt holds the last epoch's weights after on_fit_end too
    last = load_method(tmp_path / "last.pt")
    last_again = load_method(tmp_path / "last.pt")
    last_again.on_fit_end(train)
    for (k, v), w in zip(last_again.state_dict().items(), last.state_dict().values()):
        torch.testing.assert_close(v, w, msg=k)


def test_checkpoints_rebuild_backbone_modules_and_ask_for_hand_made_ones(tmp_path):
    x = torch.rand(2, 3, 32, 32)
    # a backbone module from create_backbone is recorded by name and options
    m = wsolkit.create_method("wildcat", 2, backbone=wsolkit.create_backbone("smallcnn", output_stride=8, width=4))
    p = save_checkpoint(tmp_path / "a.pt", m)
    assert load_checkpoint(p)["backbone"] == {"name": "smallcnn", "output_stride": 8, "options": {"width": 4}}
    with torch.no_grad():
        assert torch.equal(load_method(p)(x).logits, m.eval()(x).logits)
    # a hand-made module: the error says what to pass, and passing it works
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    conv.out_channels = 4
    m = wsolkit.create_method("gap", 2, backbone=conv).eval()
    p = save_checkpoint(tmp_path / "b.pt", m)
    with pytest.raises(wsolkit._checks.WSOLValueError, match=r"load_method\(checkpoint, backbone=<your Conv2d"):
        load_method(p)
    other = nn.Conv2d(3, 4, 3, padding=1)
    other.out_channels = 4
    with torch.no_grad():
        assert torch.equal(load_method(p, backbone=other)(x).logits, m(x).logits)


def test_a_checkpoint_naming_another_method_is_a_mismatch_error(tmp_path):
    m = _gap()
    with pytest.raises(CheckpointMismatchError, match="built as 'gap'"):
        save_checkpoint(tmp_path / "x.pt", m, method_name="wildcat")
    ckpt = load_checkpoint(save_checkpoint(tmp_path / "m.pt", m))
    ckpt["method"] = "maxmin"
    with pytest.raises(CheckpointMismatchError, match="do not fit 'maxmin'.*missing keys"):
        load_method(ckpt)


def test_checkpoints_carry_preprocessing_classes_and_version(tmp_path):
    x, y, _ = _data(8)

    class Named(TensorDataset):
        classes = ["benign", "malignant"]

    prep = Preprocessing(mean=(0.1, 0.2, 0.3), std=(0.5, 0.6, 0.7), size=(32, 32), source="a test")
    m = _gap()
    fit(m, DataLoader(Named(x, y), batch_size=4), epochs=1, checkpoint_dir=tmp_path, preprocessing=prep,
        progress=False)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["classes"] == ["benign", "malignant"] and ckpt["wsolkit_version"] == wsolkit.__version__
    assert ckpt["preprocessing"]["mean"] == [0.1, 0.2, 0.3]
    rebuilt = load_method(tmp_path / "last.pt")
    assert preprocessing(rebuilt) == prep and rebuilt.classes == ["benign", "malignant"]


def test_fit_refuses_empty_loaders_and_labels_beyond_the_classes():
    m = _gap()
    with pytest.raises(wsolkit._checks.WSOLValueError, match="empty"):
        fit(m, DataLoader(TensorDataset(torch.rand(0, 3, 8, 8), torch.zeros(0, dtype=torch.long))), epochs=1)

    class NoLen:
        def __iter__(self):
            return iter(())

    with pytest.raises(wsolkit._checks.WSOLValueError, match="no batch"):
        fit(m, NoLen(), epochs=1)
    x, _, _ = _data(6)
    three = DataLoader(TensorDataset(x, torch.tensor([0, 1, 2, 0, 1, 2])), batch_size=3)  # 3 class folders
    with pytest.raises(wsolkit._checks.WSOLValueError, match=r"num_classes=2.*\[0, 2\]"):
        fit(m, three, epochs=1)


def test_the_tensor_form_of_fit_is_deprecated_and_fit_tensors_replaces_it():
    x, y, _ = _data(8)
    with pytest.warns(DeprecationWarning, match="fit_tensors"):
        losses = fit(_gap(), x, y, epochs=2, batch_size=4, seed=0)
    assert losses == fit_tensors(_gap(), x, y, epochs=2, batch_size=4, seed=0)
    with pytest.warns(DeprecationWarning, match="recalibrate"):
        fit(_gap(), DataLoader(TensorDataset(x, y), batch_size=4), epochs=1, recalibrate=True, progress=False)


def test_progress_bars_are_kept_and_off_when_not_on_a_terminal(capsys):
    x, y, _ = _data(8)
    fit(_gap(), DataLoader(TensorDataset(x, y), batch_size=4), epochs=1)  # stderr is captured: not a terminal
    assert "epoch" not in capsys.readouterr().err
    fit(_gap(), DataLoader(TensorDataset(x, y), batch_size=4), epochs=2, progress=True)
    err = capsys.readouterr().err
    assert "epoch 1/2" in err and "epoch 2/2" in err and "2/2 [" in err
