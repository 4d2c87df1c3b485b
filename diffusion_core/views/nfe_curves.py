"""Quality against network calls across process families — diffusion, flow matching, reflow, a one-step
distillation — on one chart (the Evaluate page; benchmarks/flow_vs_diffusion.py writes the file it reads).

At each budget of network calls a model is measured with every few-step sampler of its own that spends exactly
that budget (CANDIDATES; two-call samplers only at odd budgets) and keeps the best by FID: each family at its best.
A row also holds KID, the share of confident digits and how many digits appear, and FID over the floor (n real
training digits against the same MNIST test reference), so rows at different n compare.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from diffusion_core.evaluation.classifier import load_classifier
from diffusion_core.evaluation.metrics import ReferenceStats, fid_scale
from diffusion_core.io.checkpoints import LoadedCheckpoint, checkpoint_name
from diffusion_core.io.data import load_dataset
from diffusion_core.io.files import PROJECT_ROOT
from diffusion_core.io.images import to_unit_numpy
from diffusion_core.io.runs import read_json_or_empty
from diffusion_core.process import SamplerChoice
from diffusion_core.samplers import sampler_spec
from diffusion_core.views.sampler_costs import measure, mnist_test_reference, steps_for

NFE_BUDGETS = (1, 2, 4, 8, 20)
CANDIDATES = ("flow-euler", "flow-heun", "ddim", "dpm++2m", "dpm++2m-sde")  # each model uses those it has
RESULTS_ENV = "DIFFUSION_LAB_FLOW_BENCHMARK"
RESULTS_FILE = Path("benchmarks/results/flow_vs_diffusion.json")


def results_path() -> Path:
    """$DIFFUSION_LAB_FLOW_BENCHMARK, else benchmarks/results/flow_vs_diffusion.json in the project."""
    env = os.environ.get(RESULTS_ENV)
    return Path(env) if env else PROJECT_ROOT / RESULTS_FILE


def read_results(path: Path | None = None) -> dict | None:
    """The benchmark's file ({"rows", "n", "machine", …}), or None when it has not been written."""
    result = read_json_or_empty(path or results_path())
    return result if result.get("rows") else None


def budget_choices(checkpoint: LoadedCheckpoint, budget: int, seed: int = 0) -> list[SamplerChoice]:
    """The model's CANDIDATES samplers at the steps that spend exactly `budget` network calls."""
    process = checkpoint.process
    choices = []
    for name in CANDIDATES:
        if name not in process.samplers:
            continue
        steps, spec = steps_for(name, budget), sampler_spec(name)
        if steps == 1 and spec.nfe(2) != 2:
            continue  # a two-call sampler's single step is Euler's
        if spec.nfe(steps) == budget and steps <= process.T:
            choices.append(SamplerChoice(name, steps, seed=seed))
    return choices


def real_floor(classifier, ref: ReferenceStats, n: int, seed: int = 0) -> float:
    """FID of n real training digits against the reference: the best a model can score at n."""
    real = load_dataset("mnist", "train", download=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(fid_scale(classifier, ref, to_unit_numpy(real.images), n, seed)["floor"])


def nfe_curve(checkpoint: LoadedCheckpoint, n: int, budgets: Sequence[int] = NFE_BUDGETS, seed: int = 0,
              name: str | None = None, on_row: Callable[[dict], None] | None = None) -> list[dict]:
    """One row per budget: the model's best sampler there (see the module's docstring), with every sampler tried."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 20:
        raise ValueError(f"n must be a whole number of samples ≥ 20; got {n!r}")
    classifier = load_classifier(None)
    ref, _ = mnist_test_reference(classifier)
    floor = real_floor(classifier, ref, n, seed)
    rows = []
    for budget in budgets:
        tried = [measure(checkpoint, c, n, classifier, ref) for c in budget_choices(checkpoint, budget, seed)]
        if not tried:
            continue
        best = min(tried, key=lambda r: r["fid"])
        rows.append({"model": name or checkpoint_name(checkpoint.path), "family": checkpoint.process.family,
                     **best, "fid_floor": floor, "fid_over_floor": best["fid"] / floor,
                     "tried": {r["sampler"]: round(r["fid"], 2) for r in tried}})
        if on_row is not None:
            on_row(rows[-1])
    return rows


def table(rows: Sequence[dict]) -> str:
    """The rows as a Markdown table: one line per model, one column per budget (FID/floor · confident share ·
    digits present: a one-class grid can be all confident)."""
    budgets = sorted({r["nfe"] for r in rows})
    models = list(dict.fromkeys(r["model"] for r in rows))
    lines = ["| model | " + " | ".join(f"{b} call{'s' * (b > 1)}" for b in budgets) + " |",
             "|---|" + "---|" * len(budgets)]
    for m in models:
        cells = {r["nfe"]: r for r in rows if r["model"] == m}
        lines.append(f"| {m} | " + " | ".join(
            f"{cells[b]['fid_over_floor']:.2f}× · {cells[b]['confident']:.0%} · {cells[b]['digits']} "
            f"digit{'s' * (cells[b]['digits'] > 1)} ({cells[b]['sampler']})"
            if b in cells else "—" for b in budgets) + " |")
    return "\n".join(lines)

