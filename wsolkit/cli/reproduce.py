"""``wsolkit reproduce``: one cell of the survey's Table 1 (method × backbone × dataset) under its protocol.

Rony et al. (2023): train with the Table 8 recipe (:mod:`wsolkit.recipes`; ``--search`` runs Table 8's learning
rates × Table 9's grid and keeps the configuration with the best B-LOC PxAP on ``valpx``), select the epoch by
B-LOC (PxAP on ``valpx``) and by B-CL (accuracy on ``valcl``), evaluate both selections on ``test`` and write the
row as the survey prints it — PxAP, TP*/FN*/FP*/TN*, accuracy, and Dice / IoU of the foreground at the threshold of
best mIoU on ``valpx`` for the selected epoch — next to the survey's figures (Tables 1, 2/3, 6, 7:
:mod:`wsolkit.survey_tables`) and the difference.

Data: ``--data`` is the root the split files name paths from, ``--splits`` the survey's
``folds/wsol-done-right-splits`` folder (``GLAS`` / ``CAMELYON512``, ``fold-K/{train,valcl,valpx,test}``), see
``docs/guides/reproduce.md``. Methods over a trained model (``cam``, the explainers) train the survey's CAM
classifier (GAP head on the backbone) and select it with their own maps; ``fcam`` / ``negev`` train their decoder
over the B-LOC classifier of the ``cam`` cell (trained first when absent), as the survey does.

Runs resume: each run keeps ``last.pt`` (weights, optimizer, scheduler, epoch) and the per-epoch selection in its
folder; a finished run or trial is skipped. Under ``torchrun --nproc_per_node=N`` every process trains on a
:class:`~torch.utils.data.DistributedSampler` shard (DDP; NCCL on CUDA, gloo on CPU), validation and test are
sharded and the meters reduce globally; process 0 writes the results.

Layout of ``--out``: ``<dataset>/fold-<K>/<method>/<backbone>/{trial-NNN/,result.json,row.md}`` and, with
``--all``, ``<dataset>/fold-<K>/table1.md``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

__all__ = ["register", "run", "localization_maps", "evaluate_split", "reproduce_cell", "format_row", "table_markdown"]

ROW_KEYS = ("pxap", "tp_star", "fn_star", "fp_star", "tn_star", "dice", "iou", "accuracy")


def register(sub: Any) -> argparse.ArgumentParser:
    """Add the ``reproduce`` sub-command."""
    p = sub.add_parser("reproduce", help="train and evaluate one cell of the survey's Table 1 (or all with --all)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True, choices=["glas", "camelyon"])
    p.add_argument("--data", required=True, help="data root the split files' paths are relative to")
    p.add_argument("--splits", required=True, help="the survey's folds/wsol-done-right-splits folder")
    p.add_argument("--method", default=None, help="a name of wsolkit.list_methods() (not with --all)")
    p.add_argument("--backbone", default=None, help="vgg16, inceptionv3, resnet50 (Choe et al.'s WSOL versions), "
                   "deit-t/s/b for TS-CAM, or any wsolkit backbone name")
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--all", action="store_true", help="every method of Table 1 × the three backbones")
    p.add_argument("--search", action="store_true", help="Table 8 learning rates × Table 9 grid")
    p.add_argument("--trials", type=int, default=None, help="with --search: this many configurations, drawn at random")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs (1000 GlaS, 20 CAMELYON16)")
    p.add_argument("--batch-size", type=int, default=None, help="override the recipe's batch size (32)")
    p.add_argument("--lr", type=float, default=None, help="learning rate without --search (default 0.01)")
    p.add_argument("--crop", type=int, default=None, help="override the 224 crop (resize = crop + 1)")
    p.add_argument("--no-pretrained", action="store_true", help="random initialisation instead of ImageNet weights")
    p.add_argument("--device", default=None, help="cpu, cuda (default: cuda when available)")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="reproduce", help="output folder")
    p.set_defaults(func=run)
    return p


# ------------------------------------------------------------------------------------------------ maps and metrics
def localization_maps(method: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits (B, K), maps (B, H, W))``: the protocol maps of class ``labels`` at the input size, in [0, 1].

    The one place the command computes maps: :func:`wsolkit.localize` with the labels as target.
    """
    from wsolkit.inference import localize

    loc = localize(method, x, target="label", labels=labels)
    return loc.logits.float(), loc.maps


def evaluate_split(method: nn.Module, loader: Any, device: torch.device,
                   threshold: float | None = None) -> dict[str, float]:
    """Accuracy on every image and pixel metrics on the images with foreground (survey protocol), global under DDP.

    Dice / IoU are taken at ``threshold`` (the validation threshold of best mIoU), else at this split's own.
    """
    from wsolkit.metrics import ClassificationMeter, LocalizationMeter

    loc, cls = LocalizationMeter(normalize=False).to(device), None
    for x, y, m in loader:
        x, y, m = x.to(device), y.to(device), m.to(device)
        logits, maps = localization_maps(method, x, y)
        if cls is None:
            cls = ClassificationMeter(logits.shape[1]).to(device)
        cls.update(logits, y)
        keep = (m == 1).flatten(1).any(1)
        loc.update(maps[keep], m[keep], validate_args=False)
    if cls is None:
        raise RuntimeError("evaluation loader is empty")
    r = loc.compute(threshold) if int(loc.n_images) or _distributed() else {}
    res = {"accuracy": float(cls.compute()["accuracy"]), "n_loc": int(r.get("n_images", 0)),
           "threshold": float(r["threshold"]) if r else float("nan")}
    for key, src in (("pxap", "pxap"), ("tp_star", "tp_star"), ("fn_star", "fn_star"), ("fp_star", "fp_star"),
                     ("tn_star", "tn_star"), ("dice", "dice_fg"), ("iou", "iou_fg")):
        res[key] = float(r[src]) if res["n_loc"] else float("nan")
    return res


# ------------------------------------------------------------------------------------------------ distributed
def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _setup(device: str | None) -> tuple[int, int, torch.device]:
    """``(rank, world, device)``; joins the process group when started by torchrun (``WORLD_SIZE`` > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if world > 1 and not _distributed():
        torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    rank = torch.distributed.get_rank() if _distributed() else 0
    return rank, (torch.distributed.get_world_size() if _distributed() else 1), dev


class _Shard(torch.utils.data.Sampler):
    """Indices ``rank::world`` (no padding, so the global meters count every image once)."""

    def __init__(self, n: int, rank: int, world: int):
        self.idx = list(range(rank, n, world))

    def __iter__(self):
        return iter(self.idx)

    def __len__(self) -> int:
        return len(self.idx)


# ------------------------------------------------------------------------------------------------ data and methods
def _datasets(a: argparse.Namespace, rec: Any, preprocess: Any) -> dict[str, Any]:
    from wsolkit.data.glas import glas_fold
    from wsolkit.data.wsolevaluation import camelyon_fold

    make = glas_fold if a.dataset == "glas" else camelyon_fold
    out = {"train": make(a.data, a.splits, a.fold, "train", size=rec.resize, transform=rec.train_transform(),
                         preprocess=preprocess)}
    for split in ("valcl", "valpx", "test"):
        out[split] = make(a.data, a.splits, a.fold, split, size=rec.crop, preprocess=preprocess)
    if not out["valpx"].has_masks or not out["test"].has_masks:
        from wsolkit._checks import WSOLValueError

        raise WSOLValueError("valpx and test must list masks in their localization.txt")
    return out


def _loaders(ds: dict[str, Any], batch: int, workers: int, rank: int, world: int, seed: int) -> dict[str, Any]:
    from torch.utils.data import DataLoader, DistributedSampler

    train_sampler = DistributedSampler(ds["train"], world, rank, shuffle=True, seed=seed) if world > 1 else None
    g = torch.Generator().manual_seed(seed)
    per_rank = math.ceil(len(ds["train"]) / world)
    # keep every image (as wsolevaluation's loaders do) unless the last batch would hold one image (batch norm)
    out = {"train": DataLoader(ds["train"], batch_size=batch, shuffle=train_sampler is None, sampler=train_sampler,
                               num_workers=workers, drop_last=per_rank % batch == 1, generator=g)}
    for split in ("valcl", "valpx", "test"):
        out[split] = DataLoader(ds[split], batch_size=batch, sampler=_Shard(len(ds[split]), rank, world),
                                num_workers=workers)
    return out


def _backbone_name(method: str, backbone: str) -> str:
    from wsolkit.recipes import TSCAM_BACKBONES, survey_backbone
    from wsolkit.survey_tables import TSCAM_COLUMN

    if method == "tscam":  # TS-CAM's cell of a CNN column is a DeiT (Sec. 3.3.3)
        key = survey_backbone(backbone)
        col = {v: k for k, v in {"vgg16": "vgg16_wsol", "inceptionv3": "inceptionv3_wsol",
                                 "resnet50": "resnet50_wsol"}.items()}.get(key)
        return TSCAM_BACKBONES[TSCAM_COLUMN[col]] if col else key
    return survey_backbone(backbone)


def _build(name: str, k: int, backbone: str, pretrained: bool, options: dict[str, Any]) -> tuple[nn.Module, nn.Module]:
    """``(method, trained module)``: ``cam`` and the explainers train the survey's CAM classifier (GAP head) they
    wrap; F-CAM / NEGEV train their decoder (their classifier is loaded and frozen)."""
    import wsolkit
    from wsolkit._checks import WSOLValueError
    from wsolkit.recipes import ADL_POSITIONS

    if name == "adl" and backbone in ADL_POSITIONS:
        options = {"positions": list(ADL_POSITIONS[backbone]), **options}
    try:
        if wsolkit.method_info(name)["needs"] == "backbone":
            m = wsolkit.create_method(name, k, backbone=backbone, pretrained=pretrained, **options)
            return m, m
        clf = wsolkit.create_method("gap", k, backbone=backbone, pretrained=pretrained)
        m = wsolkit.create_method(name, classifier=clf, **options)
        return m, (m if getattr(m, "trainable", False) else clf)
    except (OSError, RuntimeError) as exc:  # weights download / load failures
        raise WSOLValueError(f"cannot build {name!r} on {backbone!r} (pretrained={pretrained}): {exc}; "
                             f"without network access pass --no-pretrained") from None


# ------------------------------------------------------------------------------------------------ one run
def _save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    if isinstance(obj, (dict, list)) and path.suffix == ".json":
        tmp.write_text(json.dumps(obj, indent=1))
    else:
        torch.save(obj, tmp)
    os.replace(tmp, path)


def _train_run(run_dir: Path, a: argparse.Namespace, rec: Any, name: str, backbone: str, options: dict[str, Any],
               lr: float, env: tuple[int, int, torch.device], classifier_state: Any = None) -> dict[str, Any]:
    """Train one configuration with B-LOC / B-CL tracking; resumes from ``run_dir``; returns its selection."""
    from wsolkit.training import fit

    rank, world, device = env
    done = run_dir / "selection.json"
    if done.is_file() and json.loads(done.read_text()).get("finished") == rec.epochs:
        return json.loads(done.read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(a.seed)
    random.seed(a.seed)
    method, trained = _build(name, _num_classes(a), backbone, not a.no_pretrained, options)
    if classifier_state is not None:  # fcam / negev: the frozen B-LOC classifier of the cam cell
        method.classifier.load_state_dict(classifier_state)
    from wsolkit.data import preprocessing

    ds = _datasets(a, rec, preprocessing(method, warn=False))
    loaders = _loaders(ds, rec.batch_size, a.workers, rank, world, a.seed)
    trained.to(device)
    params = [p for p in trained.parameters() if p.requires_grad]
    opt = rec.optimizer(params, lr=lr)
    sched = rec.scheduler(opt, max(len(loaders["train"]), 1))
    ckpt = run_dir / f"rank{rank}"
    state_file = ckpt / "selection.json"
    sel = json.loads(state_file.read_text()) if state_file.is_file() else {"epochs": {}, "best": {}}
    module = trained
    if world > 1:
        module = nn.parallel.DistributedDataParallel(trained, device_ids=[device.index] if device.type == "cuda"
                                                     else None, find_unused_parameters=True)
    sampler = loaders["train"].sampler

    def select(epoch: int) -> None:  # after each epoch (and for an epoch whose selection a stop interrupted)
        vpx = evaluate_split(method, loaders["valpx"], device)
        vcl = evaluate_split(method, loaders["valcl"], device)
        sel["epochs"][str(epoch)] = {"valpx_pxap": vpx["pxap"], "valcl_accuracy": vcl["accuracy"],
                                     "valpx_threshold": vpx["threshold"]}
        for key, value in (("bloc", vpx["pxap"]), ("bcl", vcl["accuracy"])):
            best = sel["best"].get(key)
            if not math.isnan(value) and (best is None or value > best["value"]):
                sel["best"][key] = {"epoch": epoch, "value": value}
                if rank == 0:
                    _save(trained.state_dict(), run_dir / f"best_{key}.pt")
        ckpt.mkdir(parents=True, exist_ok=True)
        _save(sel, state_file)

    last = ckpt / "last.pt"
    resume = last if last.is_file() else None
    if resume is not None:
        done_epochs = int(torch.load(last, map_location="cpu", weights_only=True).get("epoch", 0))
        if done_epochs and str(done_epochs - 1) not in sel["epochs"]:
            from wsolkit.training import load_checkpoint

            trained.load_state_dict(load_checkpoint(last, device)["state_dict"])
            select(done_epochs - 1)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(done_epochs)

    def callback(record: dict[str, Any], _m: nn.Module) -> None:
        select(int(record["epoch"]))
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(int(record["epoch"]) + 1)

    fit(module, loaders["train"], opt, epochs=rec.epochs, scheduler=sched, device=device, checkpoint_dir=ckpt,
        resume=resume, callbacks=[callback], select=None, method_name="gap" if trained is not method else name,
        method_options=None if trained is not method else _plain(options), num_classes=_num_classes(a))
    sel.update(finished=rec.epochs, lr=lr, options=_plain(options), backbone=backbone)
    if rank == 0:
        _save(sel, done)
    if _distributed():
        torch.distributed.barrier()
    return json.loads(done.read_text()) if done.is_file() else sel


def _plain(options: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(options, default=list))


def _num_classes(a: argparse.Namespace) -> int:
    return 2  # both datasets of the survey are binary (benign / malignant, normal / tumor)


# ------------------------------------------------------------------------------------------------ one cell
def reproduce_cell(a: argparse.Namespace, method: str, backbone: str, env: tuple[int, int, torch.device]) -> dict:
    """Train (with the search when asked), evaluate both selections on test, write ``result.json`` / ``row.md``."""
    import wsolkit
    from wsolkit.recipes import grid, recipe
    from wsolkit.survey_tables import survey_row

    name = wsolkit.method_info(method)["name"]
    rec = recipe(a.dataset)
    changes = {k: v for k, v in (("epochs", a.epochs), ("batch_size", a.batch_size)) if v is not None}
    if a.crop is not None:
        changes.update(crop=a.crop, resize=a.crop + 1)
    rec = rec.replace(**changes)
    bb = _backbone_name(name, backbone)
    cell = Path(a.out) / a.dataset / f"fold-{a.fold}" / name / backbone
    if (cell / "result.json").is_file():  # a finished cell (e.g. the cam cell NEGEV builds on, under --all)
        done = json.loads((cell / "result.json").read_text())
        if (done.get("epochs"), done.get("search"), done.get("lr_asked")) == (rec.epochs, a.search, a.lr):
            return done
    classifier_state = None
    if name in ("fcam", "negev"):  # the survey's NEGEV: a frozen CAM classifier selected by B-LOC
        cam = reproduce_cell(a, "cam", backbone, env)
        classifier_state = torch.load(Path(cam["run"]) / "best_bloc.pt", map_location="cpu", weights_only=True)
    if a.search:
        configs = list(grid(name, rec))
        if a.trials is not None and a.trials < len(configs):
            configs = random.Random(a.seed).sample(configs, a.trials)
    else:
        configs = [{"lr": a.lr if a.lr is not None else rec.lr}]
    runs = []
    for i, cfg in enumerate(configs):
        cfg = dict(cfg)
        lr = cfg.pop("lr")
        d = cell / f"trial-{i:03d}"
        runs.append((d, _train_run(d, a, rec, name, bb, cfg, lr, env, classifier_state)))
    best_dir, best = max(runs, key=lambda r: r[1]["best"].get("bloc", {}).get("value", -1.0))
    method_, trained = _build(name, 2, bb, False, best["options"])
    if classifier_state is not None:
        method_.classifier.load_state_dict(classifier_state)
    from wsolkit.data import preprocessing

    rank, world, device = env
    ds = _datasets(a, rec, preprocessing(method_, warn=False))
    test = _loaders(ds, rec.batch_size, a.workers, rank, world, a.seed)["test"]
    trained.to(device)
    result: dict[str, Any] = {"dataset": a.dataset, "fold": a.fold, "method": name, "backbone": backbone,
                              "backbone_built": bb, "lr": best["lr"], "options": best["options"],
                              "epochs": rec.epochs, "pretrained": not a.no_pretrained, "trials": len(runs),
                              "search": a.search, "lr_asked": a.lr,
                              "run": str(best_dir), "survey": survey_row(a.dataset, name, backbone)
                              if _is_survey_column(backbone) else {}}
    for key in ("bloc", "bcl"):
        if key not in best["best"]:
            result[key] = None
            continue
        trained.load_state_dict(torch.load(best_dir / f"best_{key}.pt", map_location=device, weights_only=True))
        epoch = best["best"][key]["epoch"]
        tau = best["epochs"][str(epoch)]["valpx_threshold"]
        result[key] = {"epoch": epoch, **evaluate_split(method_, test, device, None if math.isnan(tau) else tau)}
    if rank == 0:
        _save(result, cell / "result.json")
        (cell / "row.md").write_text(format_row(result) + "\n")
        print(format_row(result), flush=True)
    return result


def _is_survey_column(backbone: str) -> bool:
    from wsolkit.survey_tables import _column

    try:
        _column("glas", backbone)
        return True
    except Exception:  # noqa: BLE001 - any other backbone has no survey figure
        return False


def _fmt(v: Any) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1f}"


def _diff(ours: Any, theirs: Any) -> str:
    if ours is None or theirs is None or (isinstance(ours, float) and math.isnan(ours)):
        return "—"
    return f"{ours - theirs:+.1f}"


def format_row(result: dict[str, Any]) -> str:
    """The row as the survey prints it, for both selections, beside the survey's figures and the difference."""
    s = result.get("survey") or {}
    head = (f"**{result['dataset']}** fold {result['fold']} · **{result['method']}** · {result['backbone']} "
            f"({result['backbone_built']}) · lr {result['lr']} {result['options'] or ''} · {result['epochs']} epochs"
            f"{'' if result['pretrained'] else ' · random init'}")
    lines = [head, "", "| selection | epoch | PxAP | survey | Δ | TP* | FN* | FP* | TN* | survey TP*/FN*/FP*/TN* | "
             "Dice | IoU | accuracy | survey | Δ |", "|" + " --- |" * 15]
    for key, label in (("bloc", "B-LOC"), ("bcl", "B-CL")):
        r = result.get(key)
        if r is None:
            continue
        px = s.get("pxap") if key == "bloc" else s.get("pxap_bcl")
        acc = s.get(f"accuracy_{key}")
        conf = "/".join(_fmt(s.get(k)) for k in ("tp_star", "fn_star", "fp_star", "tn_star")) if key == "bloc" \
            else "—"
        lines.append(f"| {label} | {r['epoch']} | {_fmt(r['pxap'])} | {_fmt(px)} | {_diff(r['pxap'], px)} | "
                     + " | ".join(_fmt(r[k]) for k in ("tp_star", "fn_star", "fp_star", "tn_star"))
                     + f" | {conf} | {_fmt(r['dice'])} | {_fmt(r['iou'])} | {_fmt(r['accuracy'])} | {_fmt(acc)} | "
                     f"{_diff(r['accuracy'], acc)} |")
    return "\n".join(lines)


def table_markdown(folder: str | os.PathLike) -> str:
    """Table 1 from every ``result.json`` under ``folder`` (B-LOC PxAP: ours / survey per backbone)."""
    results = [json.loads(p.read_text()) for p in sorted(Path(folder).glob("*/*/result.json"))]
    backbones = sorted({r["backbone"] for r in results})
    lines = ["| method | " + " | ".join(f"{b} (ours / survey)" for b in backbones) + " |",
             "|" + " --- |" * (len(backbones) + 1)]
    for m in sorted({r["method"] for r in results}):
        cells = []
        for b in backbones:
            r = next((r for r in results if r["method"] == m and r["backbone"] == b), None)
            ours = (r.get("bloc") or {}).get("pxap") if r else None
            theirs = (r.get("survey") or {}).get("pxap") if r else None
            cells.append(f"{_fmt(ours)} / {_fmt(theirs)}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run ``wsolkit reproduce``; returns the exit code (2 on bad input)."""
    import wsolkit
    from wsolkit._checks import WSOLTypeError, WSOLValueError
    from wsolkit.registry import UnknownNameError
    from wsolkit.survey_tables import TABLE1

    try:
        if args.all == (args.method is not None):
            raise WSOLValueError("pass either --method (with --backbone) or --all")
        if args.all:
            methods = [m for m in TABLE1[args.dataset] if m != "unet"]
            cells = list(itertools.product(methods, args.backbone.split(",") if args.backbone else
                                           ["vgg16", "inceptionv3", "resnet50"]))
        else:
            if args.backbone is None:
                raise WSOLValueError("--backbone is required with --method")
            wsolkit.method_info(args.method)
            cells = [(args.method, args.backbone)]
        if args.trials is not None and not args.search:
            raise WSOLValueError("--trials applies to --search")
        env = _setup(args.device)
        torch.manual_seed(args.seed)
        failed = []
        for method, backbone in cells:
            try:
                reproduce_cell(args, method, backbone, env)
            except (WSOLValueError, WSOLTypeError) as exc:
                if not args.all:
                    raise
                failed.append(f"{method}/{backbone}")  # --all: report the cell and go on with the others
                print(f"wsolkit reproduce: cell {method}/{backbone} failed: {exc}", file=sys.stderr)
        if args.all and env[0] == 0:
            folder = Path(args.out) / args.dataset / f"fold-{args.fold}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "table1.md").write_text(table_markdown(folder) + "\n")
            print(f"wrote {folder / 'table1.md'}" + (f"; failed cells: {', '.join(failed)}" if failed else ""))
        if failed:
            return 1
    except (WSOLValueError, WSOLTypeError, UnknownNameError) as exc:
        print(f"wsolkit reproduce: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if _distributed():
            torch.distributed.destroy_process_group()
    return 0
