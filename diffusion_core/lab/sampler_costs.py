"""What a sampler choice costs and buys, for the Reverse diffusion page: its steps on the noise schedule, the
benchmark's quality-against-NFE rows for the model (benchmarks/samplers_nfe.py), and a live measurement of one
choice on a few samples."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from diffusion_core.evaluation.classifier import load_classifier
from diffusion_core.evaluation.metrics import (
    classifier_outputs,
    fid_from_features,
    kernel_inception_distance,
    reference_stats,
)
from diffusion_core.io.checkpoints import LoadedCheckpoint
from diffusion_core.io.data import load_dataset
from diffusion_core.io.files import PROJECT_ROOT
from diffusion_core.io.images import to_unit_numpy
from diffusion_core.process import SamplerChoice
from diffusion_core.sampling import sample_checkpoint

BENCHMARK_ENV = "DIFFUSION_LAB_SAMPLER_BENCHMARK"
BENCHMARK_FILE = Path("benchmarks/results/samplers_nfe.json")
LIVE_MAX = 200  # images a live measurement may draw (more: run the benchmark)


def benchmark_path() -> Path:
    """$DIFFUSION_LAB_SAMPLER_BENCHMARK, else benchmarks/results/samplers_nfe.json in the project."""
    env = os.environ.get(BENCHMARK_ENV)
    return Path(env) if env else PROJECT_ROOT / BENCHMARK_FILE


def benchmark_rows(model_name: str, path: Path | None = None) -> dict | None:
    """The benchmark's result for this model ({"rows", "best", "n", …}), or None when it has none."""
    try:
        result = json.loads((path or benchmark_path()).read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return result if isinstance(result, dict) and result.get("model") == model_name and result.get("rows") else None


def steps_of(checkpoint: LoadedCheckpoint, choice: SamplerChoice) -> list[int]:
    """The timesteps the choice evaluates the network at (ValueError for a choice the sampler refuses)."""
    return checkpoint.process.sampler(choice.sampler).timesteps(checkpoint.process, choice)


def measure_choice(checkpoint: LoadedCheckpoint, choice: SamplerChoice, n: int = 100) -> dict:
    """FID and KID (± standard errors) of n samples of this choice against the MNIST test split — one live point
    for the quality-against-NFE chart. Few samples: FID is biased high, KID is not."""
    if not 20 <= n <= LIVE_MAX:
        raise ValueError(f"a live measurement draws 20 to {LIVE_MAX} samples; got {n} (run "
                         "benchmarks/samplers_nfe.py for more)")
    classifier = load_classifier(None)
    ref = reference_stats(classifier, to_unit_numpy(load_dataset("mnist", "test", download=False).images))
    feats, _ = classifier_outputs(classifier, to_unit_numpy(sample_checkpoint(checkpoint, choice, n).samples))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # n ≤ d: FID is biased, which the page says
        fid = fid_from_features(feats, ref)
    kid, kid_se = kernel_inception_distance(feats, ref.features, choice.seed)
    spec = checkpoint.process.sampler(choice.sampler)
    return {"sampler": choice.sampler, "spacing": choice.spacing or spec.spacing, "steps": len(steps_of(checkpoint,
            choice)), "nfe": checkpoint.process.network_calls(choice), "n": n, "fid": fid, "fid_se": None,
            "kid": kid, "kid_se": kid_se, "live": True}
