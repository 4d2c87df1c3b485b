"""Data for the Explore page: a seeded sample of real digits and the PCA-cluster view of real vs
generated digits, with the shipped classifier (predicted classes of generated digits, classifier
features) or without it (true labels of the real digits only; pixel and PCA features)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from diffusion_core.evaluation.analysis import cluster_analysis, feature_sets, pca_projection, real_vs_generated
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

NO_CLASSIFIER = ("classifier features need the shipped MNIST classifier (checkpoints/classifier.safetensors "
                 "and .json); pixel and PCA features work without it")


def real_digits(data: Dataset, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n images drawn without replacement with `seed` (all of them when n ≥ the set's size):
    (N×28×28 pixels in [0, 1], N labels)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of real digits must be a positive integer; got {n!r}")
    idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
    return to_unit_numpy(data.images[idx]), data.labels[idx].numpy()


def cluster_view(
    real01: np.ndarray,
    generated01: np.ndarray | None,
    real_labels: np.ndarray,
    classifier: nn.Module | None = None,
    space: str = "pca",
    n_features: int = 50,
    n_components: int = 2,
    k: int = 10,
    seed: int = 0,
) -> dict:
    """analysis.real_vs_generated's dict (projection, labels, k-means / GMM clusters with silhouette and
    adjusted Rand index); without a classifier the generated digits have no predicted class
    ("generated_labels" is None) and the "classifier" space is refused."""
    if classifier is not None:
        return real_vs_generated(real01, generated01, classifier, real_labels, space, n_features, n_components, k,
                                 seed)
    if space == "classifier":
        raise ValueError(NO_CLASSIFIER)
    if n_components not in (2, 3):
        raise ValueError(f"n_components must be 2 or 3 (a 2-D or 3-D view); got {n_components!r}")
    feats = feature_sets(space, real01, generated01, n=784 if space == "pixels" else n_features, seed=seed)
    proj = pca_projection(feats.real, feats.generated, n_components, seed)
    labels = np.asarray(real_labels)
    clusters = cluster_analysis(proj.real, proj.generated, labels, None, k=k, seed=seed)
    return {"projection": proj, "real_labels": labels, "generated_labels": None, "clusters": clusters,
            "space": space, "n_features": feats.real.shape[1], "labels_are_predicted": False}


def cluster_summary(result: dict) -> list[dict]:
    """One row per clustering method of a cluster_view result: silhouette, agreement with the labels, and
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
