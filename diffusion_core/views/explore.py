"""Data for the Explore page: a seeded sample of real digits and the PCA-cluster view of real vs
generated digits, with the shipped classifier (predicted classes of generated digits, classifier
features) or without it (true labels of the real digits only; pixel and PCA features)."""

from __future__ import annotations

import numpy as np
import torch

from diffusion_core.io.data import Dataset
from diffusion_core.io.images import to_unit_numpy
from diffusion_core.process import DiffusionProcess

EXPLORE_STEPS = 50  # samplers that would take every step take at most this many: a few hundred digits in seconds


def explore_sampler(process: DiffusionProcess) -> str:
    """The sampler Explore opens on: DPM-Solver++(2M) where the process has it, else its default."""
    return "dpm++2m" if "dpm++2m" in process.samplers else process.samplers[0]


def explore_steps(process: DiffusionProcess, sampler: str) -> int | None:
    """Explore's default steps for `sampler`: its own default, at most EXPLORE_STEPS where it would take every
    step; None where the step count is fixed (ancestral: T, direct: 1)."""
    spec = process.sampler(sampler)
    if spec.all_steps or spec.one_step:
        return None
    return min(spec.default_steps or EXPLORE_STEPS, process.T)

def real_digits(data: Dataset, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n images drawn without replacement with `seed` (all of them when n ≥ the set's size):
    (N×28×28 pixels in [0, 1], N labels)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of real digits must be a positive integer; got {n!r}")
    idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
    return to_unit_numpy(data.images[idx]), data.labels[idx].numpy()


def cluster_summary(result: dict) -> list[dict]:
    """One row per clustering method of an analysis.real_vs_generated result: silhouette, agreement with the labels, and
    how many clusters hold only generated points (shapes the data lacks) or only real ones (missed shapes)."""
    both = result["projection"].generated is not None
    rows = []
    for method, c in result["clusters"].items():
        rows.append({
            "method": method, "silhouette": c.silhouette, "agreement with real labels (ARI)": c.ari_real,
            "agreement with predicted classes of generated (ARI)": c.ari_generated,
            "clusters only generated": sum(1 for r in c.composition if r["n_generated"] and not r["n_real"])
            if both else None,
            "clusters only real": sum(1 for r in c.composition if r["n_real"] and not r["n_generated"])
            if both else None,
        })
    return rows
