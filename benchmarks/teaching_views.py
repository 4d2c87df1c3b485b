"""How long each teaching view takes to update, with the shipped models, against the 2 s budget of an interactive
action — and against one bare network call of the default model on 16 digits measured in the same run (so a
slower or busier machine shows up in the reference too).

    python benchmarks/teaching_views.py            # median of 3 after 1 warm-up; about 2 minutes on 2 cores

Each row is the library call the page makes for that view (pages are thin), timed as
benchmarks.measure.interleaved_medians does. Writes benchmarks/results/teaching_views.json.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks.measure import interleaved_medians  # noqa: E402
from diffusion_core.editing.guidance import guided_samples  # noqa: E402
from diffusion_core.editing.inpainting import compare, preset_mask  # noqa: E402
from diffusion_core.editing.inversion import interpolation_paths, noise_ends, round_trips  # noqa: E402
from diffusion_core.editing.sdedit import sdedit_strip  # noqa: E402
from diffusion_core.evaluation.classifier import load_classifier  # noqa: E402
from diffusion_core.evaluation.likelihood import variational_bound  # noqa: E402
from diffusion_core.evaluation.noise_levels import heldout_loss_by_t  # noqa: E402
from diffusion_core.evaluation.noisy_classifier import SHIPPED_NAME as NOISY_NAME  # noqa: E402
from diffusion_core.figures import neighbours_figure, score_field_figure, weighting_figure  # noqa: E402
from diffusion_core.io.checkpoints import (  # noqa: E402
    load_checkpoint,
    resolve_checkpoint,
    shipped_dir,  # noqa: E402
)
from diffusion_core.io.data import load_dataset  # noqa: E402
from diffusion_core.io.files import atomic_write_json  # noqa: E402
from diffusion_core.process import SamplerChoice  # noqa: E402
from diffusion_core.process.targets import PREDICTIONS, WEIGHTINGS, weighting_curves  # noqa: E402
from diffusion_core.samplers.base import model_call  # noqa: E402
from diffusion_core.sampling import checkpoint_frames  # noqa: E402
from diffusion_core.views.compare import ab_runs  # noqa: E402
from diffusion_core.views.memorisation import memorisation_view, training_vectors  # noqa: E402
from diffusion_core.views.points import build_points_view, field_panels, particle_paths  # noqa: E402
from diffusion_core.views.reverse import record_trajectory  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "teaching_views.json"
BUDGET_S = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    unet = load_checkpoint(resolve_checkpoint("default-unet"))
    train, test = load_dataset("mnist", "train", download=False), load_dataset("mnist", "test", download=False)
    classifier = load_classifier(None)
    vectors = training_vectors(train, classifier)
    points = build_points_view("8 Gaussians on a ring", 2000, 0, None)
    z16 = torch.randn((16, 1, 28, 28), generator=torch.Generator().manual_seed(0))
    grid = torch.linspace(-12, 12, 241)
    choices = [(p, w) for w in WEIGHTINGS for p in PREDICTIONS]
    views = {
        "reference: one default-unet call on 16 digits": lambda: model_call(unet.model, z16, 500, 1000),
        "Schedules · loss weighting chart": lambda: weighting_figure(
            grid.numpy(), {k: v.numpy() for k, v in weighting_curves(choices, grid).items()}),
        "2-D lab · score field at a new t (learned, exact, error)": lambda: score_field_figure(
            **_field_args(points, 250)),
        "2-D lab · particle paths, ODE and SDE (300 points, 40 steps)": lambda: particle_paths(
            points.model.process, points.model.model, 300, 0),
        "Reverse diffusion · a 20-step run with spectra (16 digits)": lambda: record_trajectory(
            checkpoint_frames(unet, SamplerChoice("dpm++2m-sde", 20), 16)).spectra(),
        "Evaluate · memorisation, default-unet, 32 samples": lambda: memorisation_view(
            unet, train, test, classifier, 32, 0, vectors=vectors),
        "Evaluate · memorisation, ideal denoiser, 32 samples": lambda: memorisation_view(
            None, train, test, classifier, 32, 0, vectors=vectors),
        "Evaluate · held-out loss by t (256 digits × 20 t)": lambda: heldout_loss_by_t(
            unet.process, unet.model, test.images[:256], test.labels[:256], 20),
        "Evaluate · likelihood bound (64 digits × 50 t)": lambda: variational_bound(
            unet.process, unet.model, test.images[:64], 50),
    }
    noisy = load_classifier(shipped_dir() / NOISY_NAME)
    x1 = test.images[:1]
    views.update({
        "Edit · SDEdit strip, 6 strengths (dpm++2m-sde 20)": lambda: sdedit_strip(
            unet, x1, [0.2, 0.4, 0.5, 0.6, 0.8, 1.0], SamplerChoice("dpm++2m-sde", 20, digit=-1)),
        "Edit · interpolation, lerp and slerp, 9 points (DDIM 50)": lambda: interpolation_paths(
            unet, noise_ends((0, 1)), 9, 50),
        "Edit · classifier guidance, 8 samples (20 steps)": lambda: guided_samples(unet, "classifier", 4.0, 8, 3, 0,
                                                                                   noisy),
        "Compare · A and B, 4 images (20 and 10 steps)": lambda: ab_runs(
            unet, SamplerChoice("dpm++2m-sde", 20), unet, SamplerChoice("dpm++2m-sde", 10), 4),
    })
    once = {
        "Edit · round trips at 10, 20, 50, 100 steps (a spinner)": lambda: round_trips(unet, x1, [10, 20, 50, 100]),
        "Edit · inpainting, replacement and RePaint, 3 seeds × 40 steps (a spinner)": lambda: compare(
            unet, x1, preset_mask("left half"), 3, 40),
        "2-D lab · training at the defaults, 2,000 steps (a progress bar)": lambda: build_points_view(
            "8 Gaussians on a ring", 2000, 0, None),
        "Evaluate · first memorisation: embedding the training digits (cached after)": lambda: training_vectors(
            train, classifier),
        "Evaluate · memorisation figure": lambda: neighbours_figure(*_neighbour_args(unet, train, test, classifier,
                                                                                      vectors)),
    }
    times = interleaved_medians(views, args.repeats) | interleaved_medians(once, 1, warmup=0)
    ref = times["reference: one default-unet call on 16 digits"]
    rows = [{"view": k, "seconds": s, "over_reference": s / ref, "within_2s": s <= BUDGET_S} for k, s in times.items()]
    for r in rows:
        print(f"{r['seconds']:7.2f} s  {r['over_reference']:7.1f}× ref  {'ok ' if r['within_2s'] else 'SLOW'}  "
              f"{r['view']}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, {"rows": rows, "budget_s": BUDGET_S, "threads": torch.get_num_threads(),
                                 "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
                                 "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")})
    print(f"wrote {args.out}")


def _field_args(points, t: int) -> dict:
    panels = field_panels(points, t)
    return {"grid_points": panels["grid"], "fields": panels["fields"], "data": points.data, "t": t,
            "error": panels["error"]}


def _neighbour_args(unet, train, test, classifier, vectors) -> tuple:
    view = memorisation_view(unet, train, test, classifier, 32, 0, vectors=vectors)
    return view.generated, view.train, view.neighbours


if __name__ == "__main__":
    main()
