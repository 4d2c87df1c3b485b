"""Time to digits (#14): classifier-FID against training wall-clock for the Train page's quick recipe and the
report's recipe, side by side in one run on this machine, then each one's final model at n = 1000.

    python benchmarks/time_to_digits.py                       # quick and report, 10 minutes each
    python benchmarks/time_to_digits.py --minutes 1 --n 200   # a smoke run
    python benchmarks/time_to_digits.py --only quick --extra quick="--lr 1e-3"   # an ablation of one choice
    python benchmarks/time_to_digits.py --rescore             # the final models of the last run, measured again

Each contender is a real `python -m diffusion_core train --recipe NAME` job (runs/time-to-digits/<name>) that
measures FID on 256 samples every few epochs; a run still going when its budget of training wall-clock is spent is
stopped cleanly (its last complete epoch is kept). Then n samples of each final model (the app's quick sampler,
DPM-Solver++(2M) SDE, 20 and 50 steps; one seeded run, so no image twice) give the FID against the MNIST test
split, the floor (as many held-out real digits), the confident share and the digits present. Writes
benchmarks/results/time_to_digits.json.
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from diffusion_core.evaluation.classifier import load_classifier  # noqa: E402
from diffusion_core.evaluation.metrics import evaluate_samples, fid_scale  # noqa: E402
from diffusion_core.evaluation.noisy_classifier import cpu_name  # noqa: E402
from diffusion_core.io.checkpoints import load_checkpoint  # noqa: E402
from diffusion_core.io.data import load_dataset  # noqa: E402
from diffusion_core.io.files import PROJECT_ROOT, atomic_write_json, read_jsonl  # noqa: E402
from diffusion_core.io.images import to_unit_numpy  # noqa: E402
from diffusion_core.io.runs import read_json_or_empty  # noqa: E402
from diffusion_core.process import SamplerChoice  # noqa: E402
from diffusion_core.sampling import sample_in_chunks  # noqa: E402
from diffusion_core.training.recipes import RECIPES  # noqa: E402
from diffusion_core.views.sampler_costs import mnist_test_reference  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "time_to_digits.json"
CHUNK = 250


def train(name: str, recipe: str, extra: list[str], minutes: float, out: Path, fid_every: int) -> None:
    """Run the recipe until it finishes or has trained for `minutes` of wall-clock (then STOP)."""
    cmd = [sys.executable, "-m", "diffusion_core", "train", "--recipe", recipe, "--out", str(out), "--no-download",
           "--fid-every", str(fid_every), "--fid-samples", "256", "--quiet", *extra]
    print(f"[{name}] {shlex.join(cmd[1:])}", flush=True)
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while proc.poll() is None:
        time.sleep(2)
        status = read_json_or_empty(out / "status.json")
        rows = read_jsonl(out / "metrics.jsonl") if (out / "metrics.jsonl").is_file() else []
        # the next epoch would pass the budget: stop now (an epoch's time is the last one's)
        if rows and rows[-1]["wall_time_s"] + rows[-1]["epoch_time_s"] > minutes * 60 + 1e-9 \
                and status.get("epoch", 0) == rows[-1]["epoch"] and not (out / "STOP").exists():
            (out / "STOP").touch()
    if proc.returncode != 0:
        raise RuntimeError(f"[{name}] training failed: {proc.stderr.read()[-2000:]}")


def final_quality(weights: Path, n: int, classifier, ref, held: np.ndarray, steps: int) -> dict:
    """n samples (DPM-Solver++(2M) SDE, `steps` steps): FID, the floor as `evaluate --scale` draws it, the
    confident share, the digits present and the class entropy."""
    checkpoint = load_checkpoint(weights)
    images = to_unit_numpy(sample_in_chunks(checkpoint, SamplerChoice("dpm++2m-sde", steps, seed=0), n, CHUNK))
    m = evaluate_samples(images, classifier, ref)
    floor = fid_scale(classifier, ref, held, n, 0)["floor"]
    return {"fid": m["fid"], "fid_floor": floor, "fid_over_floor": m["fid"] / floor,
            "confident": m["confident_fraction"], "digits_present": m["classes_present"],
            "class_entropy": m["class_entropy"], "n": n, "steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="training wall-clock budget of each recipe")
    parser.add_argument("--n", type=int, default=1000, help="samples for the final FID")
    parser.add_argument("--only", nargs="+", choices=sorted(RECIPES), help="a subset of the recipes")
    parser.add_argument("--extra", action="append", default=[], metavar="RECIPE=FLAGS",
                        help="more train flags for one recipe (an ablation), e.g. quick=\"--lr 1e-3\"")
    parser.add_argument("--tag", default="", help="suffix of the run folders and result names (ablations)")
    parser.add_argument("--fid-every", type=int, default=10, help="epochs between FID measurements in training")
    parser.add_argument("--runs", type=Path, default=PROJECT_ROOT / "runs" / "time-to-digits")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--rescore", action="store_true",
                        help="measure the final models of the existing runs again, keeping their curves and times")
    args = parser.parse_args()
    extra = {k: shlex.split(v) for k, _, v in (e.partition("=") for e in args.extra)}
    classifier = load_classifier(None)
    ref, source = mnist_test_reference(classifier)
    held = to_unit_numpy(load_dataset("mnist", "train", download=False).images)
    result = read_json_or_empty(args.out) if args.out.is_file() else {}
    result.update({"minutes": args.minutes, "reference": f"MNIST test split ({source})", "machine": cpu_name(),
                   "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")})
    result.setdefault("runs", {})
    for recipe in args.only or RECIPES:
        name = recipe + (f"-{args.tag}" if args.tag else "")
        out = args.runs / name
        started = time.perf_counter()
        if args.rescore:
            if name not in result["runs"] or not (out / "model.safetensors").is_file():
                raise SystemExit(f"--rescore: no finished run {out} recorded in {args.out}")
            job_minutes = result["runs"][name]["job_minutes"]
        elif out.exists():
            raise SystemExit(f"{out} exists: remove it, pass another --tag, or --rescore it")
        else:
            train(name, recipe, extra.get(recipe, []), args.minutes, out, args.fid_every)
            job_minutes = (time.perf_counter() - started) / 60  # the whole job: start-up, epochs, FID checks
        rows = read_jsonl(out / "metrics.jsonl")
        status = read_json_or_empty(out / "status.json")
        final = {f"steps_{k}": final_quality(out / "model.safetensors", args.n, classifier, ref, held, k)
                 for k in (20, 50)}
        result["runs"][name] = {
            "recipe": recipe, "flags": RECIPES[recipe] | {"extra": extra.get(recipe, [])},
            "curve": [{"minutes": round(r["wall_time_s"] / 60, 2), "epoch": r["epoch"], "fid_256": r.get("fid"),
                       "floor_256": r.get("fid_floor")} for r in rows if r.get("fid") is not None],
            "epochs_done": rows[-1]["epoch"], "train_minutes": round(rows[-1]["wall_time_s"] / 60, 2),
            "job_minutes": round(job_minutes, 2),
            "total_minutes": round(job_minutes + (time.perf_counter() - started) / 60 if args.rescore else
                                   (time.perf_counter() - started) / 60, 2), "precision": status.get("precision"),
            "images_per_s": round(float(np.median([r["images_per_s"] for r in rows])), 1), "final": final}
        atomic_write_json(args.out, result)
    print(f"\nClassifier-FID (256 samples) against minutes of training, on {result['machine']}:")
    for name, run in result["runs"].items():
        print(f"  {name:22s} " + "  ".join(f"{p['minutes']:.1f}′ {p['fid_256']:.0f}" for p in run["curve"]))
    print(f"\nFinal models, n = {args.n} (DPM-Solver++(2M) SDE, 20 and 50 steps):")
    for (name, run), k in ((item, k) for item in result["runs"].items() for k in (20, 50)):
        f = run["final"][f"steps_{k}"]
        print(f"  {name:16s} {k} steps FID {f['fid']:7.1f} = {f['fid_over_floor']:5.2f}× floor {f['fid_floor']:.1f}  "
              f"confident {f['confident']:6.1%}  digits {f['digits_present']}  entropy {f['class_entropy']:.2f}  "
              f"{run['epochs_done']} epochs in {run['train_minutes']:.1f} min (job {run.get('job_minutes', 0):.1f}; "
              f"{run['images_per_s']} img/s, {run['precision']})")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
