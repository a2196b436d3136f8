"""Table 8 / 9 presets, the survey's backbones (Choe et al.'s WSOL versions) and the transcribed tables."""

import itertools
import re
from pathlib import Path

import pytest
import torch

import wsolkit
from wsolkit._checks import WSOLValueError
from wsolkit.recipes import RECIPES, SEARCH_GRIDS, SurveyAugmentation, grid, recipe, survey_backbone
from wsolkit.survey_tables import TABLE1, TABLE6, TABLE7, survey_row, survey_value

PAPER = Path("/work/shared/papers/000_76e4c32a28f57845.txt")


def test_table8_values():
    g, c = recipe("glas"), recipe("camelyon")
    for r in (g, c):
        assert (r.momentum, r.nesterov, r.weight_decay, r.batch_size, r.resize, r.crop) == (0.9, True, 1e-4, 32, 225,
                                                                                           224)
        assert r.lr_grid == (0.01, 0.001, 0.1) and r.lr_gamma == 0.1 and r.jitter == (0.5, 0.5, 0.5, 0.05)
        assert "Table 8" in r.source
    assert (g.epochs, g.lr_step_epochs, g.bloc_per_class) == (1000, 250, 3)
    assert (c.epochs, c.lr_step_epochs, c.bloc_per_class) == (20, 5, 5)
    assert recipe("survey-glas") is RECIPES["survey-glas"]
    with pytest.raises(WSOLValueError, match="dataset"):
        recipe("cub")


def test_optimizer_and_step_schedule():
    r = recipe("camelyon")
    p = torch.nn.Parameter(torch.zeros(1))
    opt = r.optimizer([p], lr=0.1)
    d = opt.param_groups[0]
    assert (d["lr"], d["momentum"], d["nesterov"], d["weight_decay"]) == (0.1, 0.9, True, 1e-4)
    sched = r.scheduler(opt, steps_per_epoch=3)  # stepped per optimizer step: × 0.1 every 5 epochs = 15 steps
    lrs = []
    for _ in range(31):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[14] == pytest.approx(0.1) and lrs[15] == pytest.approx(0.01) and lrs[30] == pytest.approx(0.001)


def test_augmentation_moves_mask_with_image():
    torch.manual_seed(0)
    aug = SurveyAugmentation(crop=6, jitter=(0.0, 0.0, 0.0, 0.0))  # geometric part only
    image = torch.arange(49, dtype=torch.float32).reshape(1, 7, 7).expand(3, 7, 7) / 48
    mask = (torch.arange(49).reshape(7, 7) % 3 == 0).to(torch.uint8)
    seen = set()
    for _ in range(40):
        im, m = aug(image.clone(), mask.clone())
        assert im.shape == (3, 6, 6) and m.shape == (6, 6)
        idx = (im[0] * 48).round().long()  # which source pixel landed where
        assert torch.equal(m, (idx % 3 == 0).to(torch.uint8))
        seen.add((bool(idx[0, 0] > idx[0, -1]), bool(idx[0, 0] > idx[-1, 0])))
    assert seen == {(False, False), (True, False), (False, True), (True, True)}  # both flips happen


def test_table9_grids_enumerate_and_build():
    assert len(list(grid("lse", recipe("glas")))) == 3 * 10
    assert len(list(grid("has", recipe("glas")))) == 3 * 25
    assert len(list(grid("spg", recipe("glas")))) == 3 * 6 * 9 * 9
    assert list(grid("gradcam", recipe("glas"))) == [{"lr": 0.01}, {"lr": 0.001}, {"lr": 0.1}]
    bb = wsolkit.create_backbone("smallcnn", width=4, depth=2)
    for name, options in SEARCH_GRIDS.items():  # every grid value is an option the method accepts
        if not options or wsolkit.method_info(name)["needs"] == "classifier":
            continue
        for key, values in options.items():
            for v in (values[0], values[-1]):
                kw = {"backbone": bb}
                if name == "tscam":
                    continue
                wsolkit.create_method(name, 2, **kw, **{key: v})


def test_survey_backbone_names():
    assert survey_backbone("ResNet50") == "resnet50_wsol" and survey_backbone("DeiT-T") == "deit_tiny_patch16_224"
    assert survey_backbone("tv:resnet18") == "tv:resnet18"


@pytest.mark.slow
@pytest.mark.parametrize("name, channels, params", [("vgg16_wsol", 1024, 19.6e6), ("inceptionv3_wsol", 1024, 25.6e6),
                                                     ("resnet50_wsol", 2048, 23.9e6)])
def test_survey_backbones_table5(name, channels, params):
    """Table 5: ≈ parameters (with a 2-class GAP + FC head) and 28 × 28 top feature maps at 224 px."""
    m = wsolkit.create_method("gap", 2, backbone=name)
    n = sum(p.numel() for p in m.parameters())
    assert abs(n - params) / params < 0.02
    with torch.no_grad():
        f = m.backbone.eval()(torch.zeros(1, 3, 224, 224))
    assert f.shape == (1, channels, 28, 28)


def test_pretrained_goes_through_torchvision_weights(monkeypatch):
    import torchvision

    asked = []
    real = torchvision.models.resnet50

    def spy(weights=None, **kw):
        asked.append(weights)
        return real(weights=None, **kw)

    monkeypatch.setattr(torchvision.models, "resnet50", spy)
    bb = wsolkit.create_backbone("resnet50_wsol", pretrained=True)
    assert asked == ["DEFAULT"] and bb.reduction == 8
    assert [i["reduction"] for i in bb.feature_info] == [2, 4, 8, 8, 8]


def _paper_rows(first: int, last: int) -> dict[str, list[str]]:
    lines = PAPER.read_text().splitlines()[first:last]
    out = {}
    for line in lines:
        parts = [p.strip() for p in line.split("\t")]
        m = re.match(r"^(.*?) \(", parts[0])
        if m:
            out[m.group(1)] = [re.sub(r"^[tbs]:", "", p) for p in parts[1:] if p]
    return out


NAMES = {"GAP": "gap", "MAX-Pool": "max", "LSE": "lse", "CAM": "cam", "HaS": "has", "WILDCAT": "wildcat",
         "ACoL": "acol", "SPG": "spg", "Deep MIL": "deepmil", "PRM": "prm", "ADL": "adl", "CutMix": "cutmix",
         "TS-CAM": "tscam", "MAXMIN": "maxmin", "NEGEV": "negev", "GradCAM": "gradcam", "GradCAM++": "gradcam++",
         "Smooth-GradCAM++": "smoothgradcam++", "XGradCAM": "xgradcam", "LayerCAM": "layercam", "U-Net": "unet"}


@pytest.mark.skipif(not PAPER.is_file(), reason="the survey's text is not on this machine")
def test_tables_match_the_paper_text():
    text = PAPER.read_text().splitlines()
    t1 = next(i for i, s in enumerate(text) if s.startswith("Table 1: PxAP performance"))
    t6 = next(i for i, s in enumerate(text) if s.startswith("Table 6: Comparison of localization"))
    t7 = next(i for i, s in enumerate(text) if s.startswith("Table 7: Comparison of classification"))
    for (table, end, length), ours in (((1, t1, 25), TABLE1), ((6, t6, 28), TABLE6), ((7, t7, 28), TABLE7)):
        rows = _paper_rows(end - length, end)
        assert {NAMES[k] for k in rows} == set(ours["glas"]) == set(ours["camelyon"]), table
        for label, cells in rows.items():
            for ds, part in (("glas", cells[:4]), ("camelyon", cells[4:])):
                want = tuple(tuple(float(v) for v in c.split("/")) if "/" in c else float(c) for c in part)
                assert ours[ds][NAMES[label]] == want, (table, label, ds)


def test_survey_values():
    assert survey_value(1, "glas", "negev", "resnet50") == 82.0
    assert survey_value(1, "camelyon", "tscam", "deit-b") == 21.6  # TS-CAM's Inception column is DeiT-B
    assert survey_value(6, "camelyon", "lse", "vgg16") == (63.1, 25.7)
    assert survey_value(6, "glas", "negev", "vgg16") is None  # not in Table 6
    row = survey_row("glas", "gap", "resnet50_wsol")
    assert row["pxap"] == 56.2 and row["pxap_bloc"] == 60.3  # the paper's own Table 1 / Table 6 disagreement
    assert (row["tp_star"], row["tn_star"]) == (30.6, 78.7)
    with pytest.raises(WSOLValueError, match="column"):
        survey_value(1, "glas", "gap", "smallcnn")
    assert list(itertools.islice(TABLE1["glas"], 3)) == ["gap", "max", "lse"]
