"""The survey's published results (Rony et al. 2023, MELBA 2:96-150), transcribed cell by cell from its text.

Tables, test sets, B-LOC selection unless said (values in percent, as printed; rows in the tables' order):

- :data:`TABLE1` — Table 1, "PxAP performance over GlaS and CAMELYON16 test sets. Model selection: B-LOC.",
  columns VGG, Inception, ResNet, Mean.
- :data:`TABLE2` / :data:`TABLE3` — Tables 2 and 3, "Confusion matrix performance over GlaS / CAMELYON16 test set":
  TP*, FN*, FP*, TN* for VGG, Inception, ResNet (12 values).
- :data:`TABLE6` — Table 6, PxAP "B-LOC/B-CL" pairs (NEGEV absent: its classifier is frozen).
- :data:`TABLE7` — Table 7, classification accuracy CL "B-LOC/B-CL" pairs (NEGEV absent).

TS-CAM's cells are DeiT models (Sec. 3.3.3): the VGG column is DeiT-Ti ("t:"), Inception DeiT-B ("b:"), ResNet
DeiT-S ("s:") — :data:`TSCAM_COLUMN`. The paper's own tables disagree in one cell: GAP / GlaS / ResNet is 56.2 in
Table 1 and 60.3 (B-LOC) in Table 6; both are kept as printed. :func:`survey_value` reads one cell.
"""

from __future__ import annotations

from wsolkit._checks import WSOLValueError, check_choice

__all__ = ["TABLE1", "TABLE2", "TABLE3", "TABLE6", "TABLE7", "COLUMNS", "TSCAM_COLUMN", "survey_value", "survey_row",
           "DATASETS", "CONFUSION_KEYS"]

#: column keys of Tables 1, 6, 7 (the survey's backbones, then the mean over them)
COLUMNS = ("vgg16", "inceptionv3", "resnet50", "mean")
#: the DeiT model behind TS-CAM's cell in each CNN column
TSCAM_COLUMN = {"vgg16": "deit-t", "inceptionv3": "deit-b", "resnet50": "deit-s"}
DATASETS = ("glas", "camelyon")
CONFUSION_KEYS = ("tp_star", "fn_star", "fp_star", "tn_star")
_DEIT_ALIASES = {"deit-t": ("deitt", "deittiny"), "deit-s": ("deits", "deitsmall"), "deit-b": ("deitb", "deitbase")}

#: Table 1: PxAP (B-LOC); per dataset, method -> (VGG, Inception, ResNet, Mean)
TABLE1: dict[str, dict[str, tuple]] = {
    "glas": {
        "gap": (58.5, 57.5, 56.2, 57.4),
        "max": (58.5, 57.1, 46.2, 53.9),
        "lse": (63.9, 62.8, 59.1, 61.9),
        "cam": (68.5, 50.5, 64.4, 61.1),
        "has": (65.5, 65.4, 63.5, 64.8),
        "wildcat": (56.1, 54.9, 60.1, 57.0),
        "acol": (63.7, 58.2, 54.2, 58.7),
        "spg": (63.6, 58.3, 51.4, 57.7),
        "deepmil": (66.6, 61.8, 64.7, 64.3),
        "prm": (59.8, 53.1, 62.3, 58.4),
        "adl": (65.0, 60.6, 54.1, 59.9),
        "cutmix": (59.9, 50.4, 56.7, 55.6),
        "tscam": (54.5, 57.8, 55.1, 52.8),
        "maxmin": (75.0, 49.1, 81.2, 68.4),
        "negev": (81.3, 70.1, 82.0, 77.8),
        "gradcam": (75.7, 56.9, 70.0, 67.5),
        "gradcam++": (76.1, 65.7, 70.7, 70.8),
        "smoothgradcam++": (71.3, 67.6, 75.5, 71.4),
        "xgradcam": (73.7, 66.4, 62.6, 67.5),
        "layercam": (67.8, 66.1, 70.9, 68.2),
        "unet": (96.8, 95.4, 96.4, 96.2),
    },
    "camelyon": {
        "gap": (37.5, 24.6, 43.7, 35.2),
        "max": (42.1, 40.9, 20.2, 34.4),
        "lse": (63.1, 29.0, 42.1, 44.7),
        "cam": (25.4, 48.7, 27.5, 33.8),
        "has": (25.4, 47.1, 29.7, 34.0),
        "wildcat": (44.4, 31.4, 31.0, 35.6),
        "acol": (31.3, 39.3, 31.3, 33.9),
        "spg": (45.4, 24.5, 22.6, 30.8),
        "deepmil": (53.8, 51.1, 57.9, 54.2),
        "prm": (46.0, 41.7, 23.2, 36.9),
        "adl": (19.0, 46.0, 46.0, 37.0),
        "cutmix": (56.4, 44.9, 20.7, 40.6),
        "tscam": (46.3, 21.6, 42.2, 36.7),
        "maxmin": (50.4, 80.8, 77.7, 69.6),
        "negev": (70.3, 53.8, 52.6, 58.9),
        "gradcam": (40.2, 34.4, 29.1, 34.5),
        "gradcam++": (41.3, 43.9, 25.8, 37.0),
        "smoothgradcam++": (35.1, 31.6, 25.1, 30.6),
        "xgradcam": (40.2, 33.0, 24.4, 32.5),
        "layercam": (34.1, 25.0, 29.1, 29.4),
        "unet": (83.0, 82.2, 83.6, 82.9),
    },
}
#: Table 6: PxAP (B-LOC, B-CL) pairs per column
TABLE6: dict[str, dict[str, tuple]] = {
    "glas": {
        "gap": ((58.5, 53.5), (57.5, 61.0), (60.3, 56.2), (57.4, 56.9)),
        "max": ((58.5, 58.5), (57.1, 56.2), (46.2, 59.6), (53.9, 58.1)),
        "lse": ((63.9, 62.2), (62.8, 61.3), (59.1, 58.1), (61.9, 60.5)),
        "cam": ((68.5, 60.3), (50.5, 53.3), (64.4, 63.4), (61.1, 58.2)),
        "has": ((65.5, 61.4), (65.4, 63.6), (63.5, 59.9), (64.8, 61.6)),
        "wildcat": ((56.1, 69.1), (54.9, 48.4), (60.1, 56.5), (57.0, 58.0)),
        "acol": ((63.7, 57.2), (58.2, 54.8), (54.2, 53.0), (58.7, 55.0)),
        "spg": ((63.6, 55.7), (58.3, 59.5), (51.4, 61.3), (57.7, 58.8)),
        "deepmil": ((66.6, 63.7), (61.8, 57.4), (64.7, 57.9), (64.3, 59.6)),
        "prm": ((59.8, 57.4), (53.1, 52.1), (62.3, 58.8), (58.4, 56.1)),
        "adl": ((65.0, 62.5), (60.6, 49.5), (54.1, 61.8), (59.9, 57.9)),
        "cutmix": ((59.9, 55.2), (50.4, 49.9), (56.7, 52.5), (55.6, 52.5)),
        "tscam": ((54.5, 54.5), (57.8, 58.4), (55.1, 54.7), (52.8, 55.8)),
        "maxmin": ((75.0, 63.8), (49.1, 61.0), (81.2, 82.3), (68.4, 69.0)),
        "gradcam": ((75.7, 65.8), (56.9, 52.6), (70.0, 67.2), (67.5, 61.8)),
        "gradcam++": ((76.1, 67.3), (65.7, 53.1), (70.7, 69.0), (70.8, 63.1)),
        "smoothgradcam++": ((71.3, 67.9), (67.6, 67.5), (75.5, 66.3), (71.4, 67.2)),
        "xgradcam": ((73.7, 65.3), (66.4, 60.2), (62.6, 67.1), (67.5, 64.2)),
        "layercam": ((67.8, 67.0), (66.1, 65.9), (70.9, 70.9), (68.2, 67.9)),
        "unet": (96.8, 95.4, 96.4, 96.2),
    },
    "camelyon": {
        "gap": ((37.5, 37.5), (24.6, 15.8), (43.7, 39.9), (35.2, 31.0)),
        "max": ((42.1, 28.3), (40.9, 35.1), (20.2, 19.4), (34.4, 27.6)),
        "lse": ((63.1, 25.7), (29.0, 27.9), (42.1, 32.0), (44.7, 28.5)),
        "cam": ((25.4, 25.4), (48.7, 39.4), (27.5, 14.8), (33.8, 26.5)),
        "has": ((25.4, 16.0), (47.1, 47.8), (29.7, 17.7), (34.0, 27.1)),
        "wildcat": ((44.4, 44.4), (31.4, 35.7), (31.0, 16.8), (35.6, 32.3)),
        "acol": ((31.3, 18.1), (39.3, 42.2), (31.3, 32.0), (33.9, 30.7)),
        "spg": ((45.4, 45.4), (24.5, 14.9), (22.6, 15.5), (30.8, 25.2)),
        "deepmil": ((53.8, 49.8), (51.1, 47.9), (57.9, 56.9), (54.2, 51.5)),
        "prm": ((46.0, 46.0), (41.7, 21.6), (23.2, 16.0), (36.9, 27.8)),
        "adl": ((19.0, 19.0), (46.0, 29.8), (46.0, 16.0), (37.0, 21.6)),
        "cutmix": ((56.4, 25.4), (44.9, 27.6), (20.7, 14.7), (40.6, 22.5)),
        "tscam": ((46.3, 17.5), (21.6, 34.1), (42.2, 42.2), (36.7, 31.2)),
        "maxmin": ((50.4, 46.6), (80.8, 78.1), (77.7, 74.9), (69.6, 66.5)),
        "gradcam": ((40.2, 22.7), (34.4, 34.2), (29.1, 29.1), (34.5, 28.6)),
        "gradcam++": ((41.3, 26.6), (43.9, 42.5), (25.8, 26.8), (37.0, 31.9)),
        "smoothgradcam++": ((35.1, 24.2), (31.6, 31.6), (25.1, 25.3), (30.6, 27.0)),
        "xgradcam": ((40.2, 22.7), (33.0, 18.8), (24.4, 21.1), (32.5, 20.8)),
        "layercam": ((34.1, 21.8), (25.0, 20.1), (29.1, 29.1), (29.4, 23.6)),
        "unet": (83.0, 82.2, 83.6, 82.9),
    },
}
#: Table 2: GlaS TP*, FN*, FP*, TN* for VGG, Inception, ResNet
TABLE2: dict[str, dict[str, tuple]] = {
    "glas": {
        "gap": (34.5, 65.4, 20.5, 79.4, 50.0, 49.9, 51.1, 48.8, 30.6, 69.3, 21.2, 78.7),
        "max": (38.7, 61.2, 31.5, 68.4, 41.2, 58.7, 36.3, 63.6, 50.1, 49.8, 55.7, 44.2),
        "lse": (52.0, 47.9, 41.4, 58.5, 70.9, 29.0, 63.7, 36.2, 51.0, 48.9, 44.9, 55.0),
        "cam": (34.5, 65.4, 20.5, 79.4, 50.0, 49.9, 51.1, 48.8, 30.6, 69.3, 21.2, 78.7),
        "has": (42.3, 57.6, 31.4, 68.5, 26.4, 73.5, 16.1, 83.8, 36.0, 63.9, 27.5, 72.4),
        "wildcat": (37.6, 62.3, 33.2, 66.7, 42.3, 57.6, 35.6, 64.3, 74.3, 25.6, 68.8, 31.1),
        "acol": (28.3, 71.6, 11.1, 88.8, 6.6, 93.3, 4.6, 95.3, 16.1, 83.8, 6.4, 93.5),
        "spg": (62.2, 37.7, 50.5, 49.4, 58.8, 41.1, 51.9, 48.0, 47.1, 52.8, 47.0, 52.9),
        "deepmil": (14.7, 85.2, 7.3, 92.6, 8.9, 91.0, 4.3, 95.6, 10.2, 89.7, 4.0, 95.9),
        "prm": (41.8, 58.1, 34.7, 65.2, 61.1, 38.8, 59.7, 40.2, 37.3, 62.6, 29.9, 70.0),
        "adl": (41.3, 58.6, 30.2, 69.7, 47.3, 52.6, 38.5, 61.4, 34.4, 65.5, 31.4, 68.5),
        "cutmix": (41.3, 58.6, 33.6, 66.3, 38.9, 61.0, 39.4, 60.5, 31.3, 68.6, 28.1, 71.8),
        "tscam": (23.1, 76.8, 20.4, 79.5, 25.2, 74.7, 20.4, 79.5, 30.3, 69.6, 26.5, 73.4),
        "maxmin": (57.4, 42.5, 41.8, 58.1, 43.0, 56.9, 44.3, 55.6, 56.0, 43.9, 38.6, 61.3),
        "negev": (52.3, 47.6, 42.5, 57.4, 54.7, 45.2, 48.9, 51.0, 52.2, 47.7, 45.6, 54.3),
        "gradcam": (28.3, 71.6, 11.1, 88.8, 6.6, 93.3, 4.6, 95.3, 16.1, 83.8, 6.4, 93.5),
        "gradcam++": (30.6, 69.3, 13.4, 86.5, 12.5, 87.4, 5.1, 94.8, 19.0, 80.9, 8.6, 91.3),
        "smoothgradcam++": (31.3, 68.6, 17.0, 82.9, 15.6, 84.3, 5.7, 94.2, 24.8, 75.1, 10.0, 89.9),
        "xgradcam": (31.5, 68.4, 14.9, 85.0, 13.0, 86.9, 4.1, 95.8, 11.8, 88.1, 5.7, 94.2),
        "layercam": (35.4, 64.5, 21.6, 78.3, 11.0, 88.9, 3.5, 96.4, 18.2, 81.7, 8.1, 91.8),
        "unet": (89.8, 10.1, 11.6, 88.3, 86.9, 13.0, 14.6, 85.3, 87.0, 12.9, 12.4, 87.5),
    },
}
#: Table 3: CAMELYON16 TP*, FN*, FP*, TN* for VGG, Inception, ResNet
TABLE3: dict[str, dict[str, tuple]] = {
    "camelyon": {
        "gap": (54.0, 45.9, 52.6, 47.3, 95.8, 4.1, 38.0, 61.9, 63.3, 36.6, 52.6, 47.3),
        "max": (94.5, 5.4, 95.8, 4.1, 70.8, 29.1, 56.5, 43.4, 75.7, 24.2, 85.0, 14.9),
        "lse": (80.9, 19.0, 53.5, 46.4, 52.2, 47.7, 48.8, 51.1, 87.4, 12.5, 76.2, 23.7),
        "cam": (54.0, 45.9, 52.6, 47.3, 95.8, 4.1, 38.0, 61.9, 63.3, 36.6, 52.6, 47.3),
        "has": (54.0, 45.9, 52.6, 47.3, 90.5, 9.4, 36.1, 63.8, 53.8, 46.1, 48.6, 51.3),
        "wildcat": (84.0, 15.9, 48.5, 51.4, 40.1, 59.8, 16.2, 83.7, 37.4, 62.5, 21.4, 78.5),
        "acol": (13.4, 86.5, 4.6, 95.3, 14.1, 85.8, 7.2, 92.7, 7.0, 92.9, 3.8, 96.1),
        "spg": (79.6, 20.3, 55.0, 44.9, 47.7, 52.2, 46.9, 53.0, 47.1, 52.8, 48.1, 51.8),
        "deepmil": (28.5, 71.4, 9.7, 90.2, 54.4, 45.5, 25.3, 74.6, 25.2, 74.7, 7.6, 92.3),
        "prm": (94.4, 5.5, 36.5, 63.4, 63.5, 36.4, 40.6, 59.3, 00.0, 100.0, 00.0, 100.0),
        "adl": (51.8, 48.1, 56.5, 43.4, 82.5, 17.4, 41.7, 58.2, 94.5, 5.4, 35.9, 64.0),
        "cutmix": (79.3, 20.6, 52.5, 47.4, 73.7, 26.2, 49.4, 50.5, 1.5, 98.4, 22.0, 77.9),
        "tscam": (92.8, 7.1, 38.5, 61.4, 31.5, 68.4, 34.1, 65.8, 87.0, 12.9, 38.5, 61.4),
        "maxmin": (47.1, 52.8, 47.1, 52.8, 78.9, 21.0, 29.6, 70.3, 62.1, 37.8, 14.5, 85.4),
        "negev": (21.1, 78.8, 4.2, 95.7, 22.1, 77.8, 5.9, 94.0, 9.1, 90.8, 3.9, 96.0),
        "gradcam": (13.4, 86.5, 4.6, 95.3, 14.1, 85.8, 7.2, 92.7, 7.0, 92.9, 3.8, 96.1),
        "gradcam++": (70.6, 29.3, 43.6, 56.3, 16.1, 83.8, 5.3, 94.6, 4.6, 95.3, 2.9, 97.0),
        "smoothgradcam++": (33.7, 66.2, 22.5, 77.4, 14.7, 85.2, 8.6, 91.3, 34.0, 65.9, 31.8, 68.1),
        "xgradcam": (13.4, 86.5, 4.6, 95.3, 26.4, 73.5, 16.0, 83.9, 15.1, 84.8, 15.4, 84.5),
        "layercam": (13.2, 86.7, 6.2, 93.7, 25.7, 74.2, 23.8, 76.1, 5.9, 94.0, 3.7, 96.2),
        "unet": (58.9, 41.0, 7.1, 92.8, 54.6, 45.3, 5.4, 94.5, 58.7, 41.2, 8.1, 91.8),
    },
}
#: Table 7: classification accuracy CL (B-LOC, B-CL) pairs per column
TABLE7: dict[str, dict[str, tuple]] = {
    "glas": {
        "gap": ((46.2, 98.7), (93.7, 96.2), (87.5, 95.0), (75.8, 96.6)),
        "max": ((97.5, 97.5), (86.2, 93.7), (46.2, 58.7), (76.6, 83.3)),
        "lse": ((92.5, 93.7), (92.5, 91.2), (100, 96.2), (95.0, 93.7)),
        "cam": ((100, 100), (53.7, 88.7), (97.5, 98.7), (83.7, 95.8)),
        "has": ((100, 97.5), (86.2, 97.5), (93.7, 100), (93.3, 98.3)),
        "wildcat": ((55.0, 100), (86.2, 95.0), (96.2, 100), (79.1, 98.3)),
        "acol": ((100, 92.5), (95.0, 96.2), (46.2, 53.7), (80.4, 80.8)),
        "spg": ((53.7, 83.7), (53.7, 93.7), (72.5, 97.5), (59.9, 91.6)),
        "deepmil": ((96.2, 100), (81.2, 92.5), (98.7, 95.0), (92.0, 95.8)),
        "prm": ((96.2, 100), (53.7, 90.0), (96.2, 92.5), (82.0, 94.1)),
        "adl": ((100, 100), (77.5, 93.7), (93.7, 95.0), (90.4, 96.2)),
        "cutmix": ((100, 88.7), (86.2, 95.0), (100, 96.2), (95.4, 93.3)),
        "tscam": ((100, 100), (92.5, 95.0), (90.0, 90.0), (94.1, 95.0)),
        "maxmin": ((83.7, 100), (50.0, 96.2), (95.0, 100), (76.2, 98.7)),
        "gradcam": ((97.5, 100), (85.0, 93.7), (98.7, 95.0), (93.7, 96.2)),
        "gradcam++": ((97.5, 100), (87.5, 100), (53.7, 53.7), (79.5, 84.5)),
        "smoothgradcam++": ((100, 100), (97.5, 98.7), (97.5, 97.5), (98.3, 98.7)),
        "xgradcam": ((100, 100), (91.2, 91.2), (88.7, 96.2), (93.3, 95.8)),
        "layercam": ((100, 100), (90.0, 97.5), (53.7, 53.7), (81.2, 83.7)),
    },
    "camelyon": {
        "gap": ((50.0, 50.0), (50.0, 86.3), (68.1, 69.2), (56.0, 68.5)),
        "max": ((50.0, 50.0), (82.0, 86.7), (71.4, 72.9), (67.8, 69.8)),
        "lse": ((67.8, 86.7), (50.0, 77.8), (61.0, 86.2), (59.6, 83.5)),
        "cam": ((62.2, 62.2), (51.3, 84.7), (53.5, 71.0), (55.6, 72.6)),
        "has": ((62.2, 87.5), (50.0, 50.0), (51.0, 82.3), (54.4, 73.2)),
        "wildcat": ((50.0, 50.0), (50.0, 50.0), (50.0, 77.0), (50.0, 59.0)),
        "acol": ((50.0, 86.3), (50.0, 86.4), (50.0, 50.0), (50.0, 74.2)),
        "spg": ((65.1, 65.1), (50.0, 50.0), (49.4, 88.5), (54.8, 67.8)),
        "deepmil": ((86.6, 87.0), (71.3, 88.0), (88.1, 87.8), (82.0, 87.6)),
        "prm": ((50.0, 50.0), (75.5, 88.6), (50.0, 50.8), (58.5, 63.1)),
        "adl": ((50.0, 50.0), (50.0, 50.1), (56.6, 84.1), (52.2, 61.4)),
        "cutmix": ((66.8, 62.2), (80.8, 88.2), (53.0, 70.3), (66.8, 73.5)),
        "tscam": ((50.0, 54.4), (48.3, 88.1), (50.0, 50.0), (49.4, 64.1)),
        "maxmin": ((50.0, 50.0), (92.4, 90.3), (89.2, 91.3), (77.2, 77.2)),
        "gradcam": ((40.2, 86.6), (34.4, 88.7), (29.1, 82.3), (34.5, 85.8)),
        "gradcam++": ((50.0, 62.2), (88.9, 89.3), (78.6, 85.3), (72.5, 78.9)),
        "smoothgradcam++": ((50.0, 62.2), (88.5, 88.5), (51.0, 82.3), (63.1, 77.6)),
        "xgradcam": ((82.1, 86.6), (88.9, 81.1), (82.3, 71.0), (84.4, 79.5)),
        "layercam": ((85.8, 86.6), (47.4, 62.9), (82.1, 82.1), (71.7, 77.2)),
    },
}


def _column(dataset: str, backbone: str) -> str:
    check_choice(dataset, "dataset", list(DATASETS))
    b = backbone.lower().replace("_", "").replace("-", "")
    for col in COLUMNS:
        if b in (col, col.replace("v3", ""), col + "wsol"):
            return col
    for col, deit in TSCAM_COLUMN.items():
        if any(b == alias or b.startswith(alias + "patch") for alias in _DEIT_ALIASES[deit]):
            return col
    raise WSOLValueError(f"`backbone`={backbone!r} is not a column of the survey's tables: one of {list(COLUMNS)} "
                         f"or {sorted(TSCAM_COLUMN.values())} (TS-CAM)")


def survey_value(table: int, dataset: str, method: str, backbone: str) -> float | tuple | None:
    """One cell: ``survey_value(1, "glas", "gap", "vgg16")`` → 58.5; ``None`` when the table has no such row.

    ``table`` is 1 (PxAP), 6 (PxAP B-LOC/B-CL pair), 7 (accuracy B-LOC/B-CL pair) or 2 / 3 (the four confusion
    values ``(TP*, FN*, FP*, TN*)`` of the column; GlaS for 2, CAMELYON16 for 3). ``backbone`` is a survey column
    (``vgg16``, ``inceptionv3``, ``resnet50``, ``mean``; ``*_wsol`` accepted) or, for TS-CAM, a DeiT name.

    Example:
        >>> survey_value(1, "camelyon", "maxmin", "inceptionv3")
        80.8
        >>> survey_value(6, "glas", "tscam", "deit-t"), survey_value(2, "glas", "gap", "vgg16")
        ((54.5, 54.5), (34.5, 65.4, 20.5, 79.4))
    """
    col = _column(dataset, backbone)
    if table in (1, 6, 7):
        row = {1: TABLE1, 6: TABLE6, 7: TABLE7}[table][dataset].get(method)
        return None if row is None else row[COLUMNS.index(col)]
    if table in (2, 3):
        if (table == 2) != (dataset == "glas"):
            raise WSOLValueError(f"Table {table} is about {'GlaS' if table == 2 else 'CAMELYON16'}, got {dataset!r}")
        if col == "mean":
            raise WSOLValueError("Tables 2 and 3 have no mean column")
        row = (TABLE2 if table == 2 else TABLE3)[dataset].get(method)
        i = COLUMNS.index(col)
        return None if row is None else tuple(row[4 * i : 4 * i + 4])
    raise WSOLValueError(f"`table` must be 1, 2, 3, 6 or 7, got {table!r}")


def survey_row(dataset: str, method: str, backbone: str) -> dict[str, float | None]:
    """Everything the survey prints for one cell, under the keys the ``reproduce`` command writes.

    Keys: ``pxap`` (Table 1), ``pxap_bloc`` / ``pxap_bcl`` (Table 6), ``accuracy_bloc`` / ``accuracy_bcl``
    (Table 7), ``tp_star`` … ``tn_star`` (Table 2 or 3); ``None`` where the survey has no value.
    """
    out: dict[str, float | None] = {"pxap": survey_value(1, dataset, method, backbone)}
    for table, key in ((6, "pxap"), (7, "accuracy")):
        pair = survey_value(table, dataset, method, backbone)
        out[f"{key}_bloc"], out[f"{key}_bcl"] = pair if isinstance(pair, tuple) else (pair, None)
    conf = None if _column(dataset, backbone) == "mean" else survey_value(2 if dataset == "glas" else 3, dataset,
                                                                            method, backbone)
    out.update(zip(CONFUSION_KEYS, conf if conf is not None else (None,) * 4))
    return out
