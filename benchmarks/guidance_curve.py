"""The fidelity–diversity curve over the guidance scale w (#16 item 5), the numbers behind Evaluate's Guidance tab
and lesson 5: for each w, n samples steered to the digits 0–9 in turn (DPM-Solver++(2M) SDE, 20 steps), then the
shipped classifier's confident share and mean confidence in the asked digit (fidelity), the spread of the
samples' features within each asked digit over real digits' (variety), the entropy of the predicted classes and
the classifier-FID against the MNIST test split, beside the FID of n real digits (the floor at that n).

    python benchmarks/guidance_curve.py                              # both kinds, n = 500
    python benchmarks/guidance_curve.py --n 100 --cfg 0 2 --cg 0 4   # a smoke run

Classifier-free guidance is the class-conditional model's own (--model, default-unet); classifier guidance steers
an unconditional model (--cg-model, uncond-unet: what the Evaluate page opens on) with the gradient of the shipped
noise-aware classifier. Writes benchmarks/results/guidance_curve.json.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.report import save_result  # noqa: E402
from diffusion_core.editing.guidance import guidance_curve, real_variety, w0_meaning  # noqa: E402
from diffusion_core.evaluation.classifier import load_classifier  # noqa: E402
from diffusion_core.evaluation.noisy_classifier import SHIPPED_NAME, cpu_name  # noqa: E402
from diffusion_core.io.checkpoints import load_checkpoint, resolve_checkpoint, shipped_dir  # noqa: E402
from diffusion_core.models.guidance import is_conditional  # noqa: E402
from diffusion_core.views.nfe_curves import real_floor  # noqa: E402
from diffusion_core.views.sampler_costs import mnist_test_reference  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "guidance_curve.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default-unet", help="the class-conditional model (classifier-free)")
    parser.add_argument("--cg-model", default="uncond-unet", help="the model classifier guidance steers")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--cfg", type=float, nargs="*", default=[0, 1, 2, 4],
                        help="classifier-free scales (none: skip; needs a class-conditional model)")
    parser.add_argument("--cg", type=float, nargs="*", default=[0, 2, 4, 8, 16],
                        help="classifier-guidance scales (none: skip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    classifier = load_classifier(None)
    reference, source = mnist_test_reference(classifier)
    spread = real_variety(classifier)  # real digits' variety within a class
    result = {"n": args.n, "seed": args.seed, "sampler": "dpm++2m-sde, 20 steps",
              "reference": f"MNIST test split ({source})", "machine": cpu_name(),
              "fid_floor": real_floor(classifier, reference, args.n, args.seed),
              "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "curves": {}}
    for kind, scales, name in (("classifier-free", args.cfg, args.model), ("classifier", args.cg, args.cg_model)):
        if not scales:
            continue
        started = time.perf_counter()
        checkpoint = load_checkpoint(resolve_checkpoint(name))
        noisy = load_classifier(shipped_dir() / SHIPPED_NAME) if kind == "classifier" else None
        rows = guidance_curve(checkpoint, kind, scales, args.n, classifier, reference, noisy, args.seed,
                              on_progress=lambda i, k, kind=kind: print(f"  {kind}: {i}/{k}", flush=True),
                              reference_spread=spread)
        result["curves"][kind] = {"model": name, "rows": rows, "wall_s": round(time.perf_counter() - started, 1),
                                  "w0": w0_meaning(kind, is_conditional(checkpoint.model))}
        print(f"{kind} guidance of {name}, n = {args.n} (real-data floor {result['fid_floor']:.1f}):")
        for r in rows:
            print(f"  w {r['w']:5.1f}  confident {r['confident']:6.1%}  variety {r['variety']:.2f}  "
                  f"entropy {r['entropy']:.2f} nats  FID {r['fid']:7.1f}", flush=True)
    save_result(args.out, result)


if __name__ == "__main__":
    main()
