"""Speed of wsolkit's explainers against grad-cam (pytorch-grad-cam) 1.5.x and torchcam 0.5 (the ``bench`` extra).

Gradient family and ``cam``: torchvision resnet18 (random weights), batch 8, 224 px, CPU; wsolkit's raw ``out.cams``
go through ``wsolkit.cams.postprocess`` (upsampled to the input size and min-max normalised; torchcam returns
normalised maps at the layer resolution: it does not upsample). Score-CAM:
exact output, one image, the same masked-input batch size for both libraries (grad-cam's default, 16); the
de-duplication gain (``dedup=True`` vs ``False``) is reported as the number of forwards saved.

Gradient family: minimum over ``--repeats`` interleaved rounds after a warm-up; Score-CAM: one run (timings on a shared
machine are noisy).

    python wsolkit/benchmarks/bench_explainers.py [--threads 2] [--score-size 224] [--skip-score]
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
import torchvision

import wsolkit
from wsolkit.cams import postprocess


def _interleaved_min(fns: dict, rounds: int) -> dict:
    """Minimum wall time of each function over ``rounds`` rounds that run every function once (after a warm-up).

    Interleaving exposes all libraries to the same load; the minimum is the least contention-sensitive figure.
    """
    for f in fns.values():
        f()
    best = {k: float("inf") for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            best[k] = min(best[k], time.perf_counter() - t)
    return best


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--score-size", type=int, default=224)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--skip-score", action="store_true")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=1000).eval()
    x = torch.randn(a.batch, 3, a.size, a.size)
    with torch.no_grad():
        classes = model(x).argmax(1)

    import pytorch_grad_cam as pgc
    import torchcam.methods as tcm
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    pgc_targets = [ClassifierOutputTarget(int(c)) for c in classes]
    fns: dict[tuple[str, str], object] = {}
    size = (a.size, a.size)
    for ours, peer_pgc, peer_tc in [
        ("gradcam", pgc.GradCAM, tcm.GradCAM),
        ("gradcam++", pgc.GradCAMPlusPlus, tcm.GradCAMpp),
        ("xgradcam", pgc.XGradCAM, tcm.XGradCAM),
        ("layercam", pgc.LayerCAM, tcm.LayerCAM),
    ]:
        cam = wsolkit.create_method(ours, classifier=model, target_layers="layer4")
        g = peer_pgc(model=model, target_layers=[model.layer4])
        fns[(ours, "wsolkit")] = lambda cam=cam: postprocess(cam(x, classes).cams, None, size)
        fns[(ours, "grad-cam")] = lambda g=g: g(input_tensor=x, targets=pgc_targets)

        def run_tc(cls=peer_tc):
            with cls(model, target_layer="layer4", input_shape=(3, a.size, a.size)) as ext:
                out = model(x)
                return ext(classes.tolist(), out)

        fns[(ours, "torchcam")] = run_tc
    own = wsolkit.create_method("cam", classifier=model)

    def run_own():
        with torch.no_grad():
            return postprocess(own(x, classes).cams, None, size)

    def run_tc_cam():
        with tcm.CAM(model, target_layer="layer4", fc_layer="fc", input_shape=(3, a.size, a.size)) as ext:
            with torch.no_grad():
                out = model(x)
            return ext(classes.tolist(), out)

    fns[("cam", "wsolkit")] = run_own
    fns[("cam", "torchcam")] = run_tc_cam
    best = _interleaved_min(fns, a.repeats)
    print(f"resnet18, batch {a.batch}, {a.size} px, {a.threads} threads "
          f"(seconds per call, min over {a.repeats} interleaved rounds)")
    print(f"{'method':24s} {'wsolkit':>8s} {'grad-cam':>9s} {'torchcam':>9s} {'gc/ours':>8s} {'ours/tc':>8s}")
    for name in dict.fromkeys(k[0] for k in fns):
        t_o, t_t = best[(name, "wsolkit")], best[(name, "torchcam")]
        t_g = best.get((name, "grad-cam"))  # grad-cam has no CAM
        gc, ratio = ("-", "-") if t_g is None else (f"{t_g:.3f}", f"{t_g / t_o:.2f}")
        print(f"{name:24s} {t_o:8.3f} {gc:>9s} {t_t:9.3f} {ratio:>8s} {t_o / t_t:8.2f}")

    if a.skip_score:
        return
    xs = torch.randn(1, 3, a.score_size, a.score_size)
    with torch.no_grad():
        c = model(xs).argmax(1)
    ours = wsolkit.create_method("scorecam", classifier=model, target_layers="layer4", batch_size=16)
    t0 = time.perf_counter()
    ours(xs, c)
    t_ours = time.perf_counter() - t0
    n_dedup = ours.last_num_forwards
    plain = wsolkit.create_method("scorecam", classifier=model, target_layers="layer4", batch_size=16, dedup=False)
    t0 = time.perf_counter()
    plain(xs, c)
    t_plain = time.perf_counter() - t0
    n_plain = plain.last_num_forwards
    g = pgc.ScoreCAM(model=model, target_layers=[model.layer4])
    g.batch_size = 16
    t0 = time.perf_counter()
    g(input_tensor=xs, targets=[ClassifierOutputTarget(int(c))])
    t_pgc = time.perf_counter() - t0
    print(f"Score-CAM, resnet18, 1 image, {a.score_size} px, 16 masked inputs per forward (seconds, one run)")
    print(f"wsolkit {t_ours:.2f} (dedup: {n_dedup} forwards) | wsolkit dedup=False {t_plain:.2f} ({n_plain} forwards)"
          f" | grad-cam {t_pgc:.2f} | ours/grad-cam {t_ours / t_pgc:.2f}")


if __name__ == "__main__":
    main()
