"""Cold generation (#14 item 3): where the mixture start sits and how rich it is, for a cold blur checkpoint.

    python benchmarks/cold_generation.py blur                              # the app's start (SHIPPED_FIT)
    python benchmarks/cold_generation.py blur --t 200 150 --components 30 --pca-dims 48   # the card's other rows
    python benchmarks/cold_generation.py runs/blur-unet/model.safetensors --t 250

For each t: a Gaussian mixture (--components in --pca-dims principal dimensions, --noise start noise) fitted to
D(x, t) of --images training digits, n draws walked back to t = 0 by the improved sampler (≤ 50 steps); FID against
the MNIST test split with the floor at n, the confident share, the digits present, the class entropy and the
novelty (median nearest-training distance of the samples over that of held-out test digits; 1 = as new as real
digits, near 0 = copies), in pixels and in classifier features.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from diffusion_core.evaluation.classifier import load_classifier  # noqa: E402
from diffusion_core.evaluation.memorisation import novelty  # noqa: E402
from diffusion_core.evaluation.metrics import evaluate_samples, fid_scale  # noqa: E402
from diffusion_core.io.checkpoints import load_checkpoint, resolve_checkpoint  # noqa: E402
from diffusion_core.io.data import load_dataset  # noqa: E402
from diffusion_core.io.images import to_unit_numpy  # noqa: E402
from diffusion_core.process import SamplerChoice, Start  # noqa: E402
from diffusion_core.process.cold import SHIPPED_FIT, fit_mixture_start  # noqa: E402
from diffusion_core.samplers import run_to_end  # noqa: E402
from diffusion_core.views.sampler_costs import mnist_test_reference  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--t", type=int, nargs="+", default=[250], help="where each mixture is fitted and runs start")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--images", type=int, default=SHIPPED_FIT.images, help="training digits the mixture is fitted to")
    ap.add_argument("--components", type=int, default=SHIPPED_FIT.components)
    ap.add_argument("--pca-dims", type=int, default=SHIPPED_FIT.pca_dim)
    ap.add_argument("--noise", type=float, default=0.01)
    args = ap.parse_args(argv)
    ckpt = load_checkpoint(resolve_checkpoint(args.checkpoint))
    degradation = ckpt.process.degradation
    classifier = load_classifier(None)
    ref, _ = mnist_test_reference(classifier)
    data = load_dataset("mnist", "train", download=False)
    floor = fid_scale(classifier, ref, to_unit_numpy(data.images), args.n, 0)["floor"]
    idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:args.images]
    train01 = to_unit_numpy(data.images)
    held01 = to_unit_numpy(load_dataset("mnist", "test", download=False).images)[:args.n]
    for t in args.t:
        started = time.perf_counter()
        mixture = fit_mixture_start(degradation, data.images[idx], n_components=args.components,
                                    pca_dim=args.pca_dims, noise_std=args.noise, t=t)
        choice = SamplerChoice("improved", min(50, t), seed=0, start=Start(fitted=mixture))
        samples = to_unit_numpy(run_to_end(ckpt.process.frames(ckpt.model, choice, args.n)).samples)
        m = evaluate_samples(samples, classifier, ref)
        # a rich mixture could just hand back training digits: nearest-training distances against held-out ones'
        copying = {space: novelty(samples, train01, held01, space, classifier) for space in ("pixel", "feature")}
        print(f"t = {t} (σ {float(degradation.strength_curve()[1][t]):.2f}), {args.components} components in "
              f"{args.pca_dims} dims, start noise {args.noise:g}: FID {m['fid']:.1f} = {m['fid'] / floor:.1f}× the "
              f"floor {floor:.1f}; confident {m['confident_fraction']:.1%}; {m['classes_present']} digits, entropy "
              f"{m['class_entropy']:.2f}; novelty {copying['pixel']['score']:.2f} pixel / "
              f"{copying['feature']['score']:.2f} feature ({time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
