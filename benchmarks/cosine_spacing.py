"""Where DPM-Solver++ spends its steps on a cosine-schedule model, and what it does to classifier-FID.

Compares the log-SNR grid from λ_T (the old spacing: the 0.999 β cap drives λ from −6.5 to −9.9 over the
last steps, so 8 of 20 steps land in t = 992..1000) with the grid that starts where λ reaches
samplers.base.LOG_SNR_MIN (the sampler's spacing), on the same model, seeds and n:

    python -m benchmarks.cosine_spacing CHECKPOINT [--n 500] [--steps 20]
"""

from __future__ import annotations

import argparse
import math
import warnings
from unittest import mock

import diffusion_core.samplers.base as base
from diffusion_core.evaluation.classifier import load_classifier
from diffusion_core.evaluation.metrics import evaluate_samples
from diffusion_core.io.checkpoints import load_checkpoint, resolve_checkpoint
from diffusion_core.io.images import to_unit_numpy
from diffusion_core.process.schedules import schedule_from_config
from diffusion_core.sampling import SamplerChoice, sample_in_chunks

from .quality import CHUNK, mnist_reference


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    ckpt = load_checkpoint(resolve_checkpoint(args.checkpoint))
    alpha_bars = schedule_from_config(ckpt.config["diffusion"]["schedule"]).alpha_bars.tolist()
    classifier = load_classifier(None)
    ref, source = mnist_reference(classifier)
    print(f"reference: MNIST test split ({source}); n = {args.n}, {args.steps} steps, seed {args.seed}")
    for name, lam_min in (("from log-SNR_T (old)", -math.inf),
                          (f"from log-SNR ≥ {base.LOG_SNR_MIN} (now)", base.LOG_SNR_MIN)):
        with mock.patch.object(base, "LOG_SNR_MIN", lam_min):
            ts = base.log_snr_spaced_timesteps(alpha_bars, args.steps)
            for sampler in ("dpm++2m", "dpm++2m-sde"):
                images = to_unit_numpy(sample_in_chunks(ckpt, SamplerChoice(sampler, args.steps, seed=args.seed),
                                                        args.n, CHUNK))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    m = evaluate_samples(images, classifier, ref)
                print(f"{name:<24} {sampler:<12} FID {m['fid']:7.1f}  confident {100 * m['confident_fraction']:5.1f}%  "
                      f"steps at t ≥ {len(alpha_bars) - 9}: {sum(t >= len(alpha_bars) - 9 for t in ts)}  t = {ts[:6]}…")


if __name__ == "__main__":
    main()
