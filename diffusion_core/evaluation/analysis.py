"""Density plots and PCA clusters of real versus generated digits (scikit-learn; seeded).

Features (N×d) come from one of three spaces:
- "pixels": flattened pixels, columns start..start+n−1. The report's density plot used the
  "first 20 features", i.e. start = 0; on MNIST these are the blank top row, so a start of 14·28
  (the middle row) shows more;
- "pca": the first n principal components of the pixels, with PCA fitted on the real images;
- "classifier": the n classifier features with the largest variance on the real images.

Images are pixels in [0, 1] (N×28×28 or N×1×28×28), as everywhere in metrics.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.mixture import GaussianMixture
from torch import nn

from diffusion_core.evaluation.metrics import as_unit_images, classifier_outputs

FEATURE_KINDS = ("pixels", "pca", "classifier")
CLUSTER_METHODS = ("kmeans", "gmm")
SILHOUETTE_MAX_POINTS = 2000  # silhouette is O(N²): a seeded subsample above this


@dataclass
class FeatureSet:
    real: np.ndarray  # N×n
    generated: np.ndarray | None  # M×n
    names: list[str]
    kind: str


def _flat(images) -> np.ndarray:
    return as_unit_images(images).reshape(-1, 28 * 28).numpy().astype(np.float64)


def feature_sets(
    kind: str,
    real_images: np.ndarray | torch.Tensor,
    generated_images: np.ndarray | torch.Tensor | None = None,
    n: int = 20,
    start: int = 0,
    classifier: nn.Module | None = None,
    seed: int = 0,
) -> FeatureSet:
    """The chosen n features of real (and generated) images; see the module docstring for the kinds."""
    if kind not in FEATURE_KINDS:
        raise ValueError(f"feature kind must be one of {', '.join(FEATURE_KINDS)}; got {kind!r}")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 784:
        raise ValueError(f"n (number of features) must be an integer between 1 and 784; got {n!r}")
    real = _flat(real_images)
    gen = _flat(generated_images) if generated_images is not None else None
    if kind == "pixels":
        if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start <= 784 - n:
            raise ValueError(f"start must be an integer between 0 and {784 - n} for n={n} pixels; got {start!r}")
        cols = list(range(start, start + n))
        names = [f"pixel {c} (row {c // 28}, col {c % 28})" for c in cols]
        return FeatureSet(real[:, cols], None if gen is None else gen[:, cols], names, kind)
    if kind == "pca":
        if n > min(real.shape):
            raise ValueError(f"n must be at most {min(real.shape)} principal components for {len(real)} real images")
        pca = PCA(n_components=n, svd_solver="full").fit(real)
        names = [f"PC{i + 1} ({100 * r:.1f}% var.)" for i, r in enumerate(pca.explained_variance_ratio_)]
        return FeatureSet(pca.transform(real), None if gen is None else pca.transform(gen), names, kind)
    if classifier is None:
        raise ValueError('feature kind "classifier" needs a classifier (metrics: load_classifier())')
    real_f, _ = classifier_outputs(classifier, real.reshape(-1, 28, 28))
    gen_f = None if gen is None else classifier_outputs(classifier, gen.reshape(-1, 28, 28))[0]
    if n > real_f.shape[1]:
        raise ValueError(f"n must be at most the classifier's {real_f.shape[1]} features; got {n}")
    cols = np.argsort(-real_f.var(axis=0), kind="stable")[:n]
    names = [f"feature {c}" for c in cols]
    return FeatureSet(real_f[:, cols], None if gen_f is None else gen_f[:, cols], names, kind)


# ------------------------------------------------------------------------------- densities


def kde(values: np.ndarray, grid: np.ndarray, bandwidth: float | None = None) -> np.ndarray:
    """Gaussian kernel density p(x) = (1/N) Σ_i N(x; v_i, h²) on `grid`; h from Silverman's rule
    h = 0.9·min(σ, IQR/1.34)·N^(−1/5), floored at 1% of the grid span so a constant feature is a spike."""
    v = np.asarray(values, dtype=np.float64).ravel()
    g = np.asarray(grid, dtype=np.float64)
    if v.size == 0:
        return np.zeros_like(g)
    if bandwidth is None:
        iqr = np.subtract(*np.percentile(v, [75, 25]))
        spread = min(v.std(), iqr / 1.34) if iqr > 0 else v.std()
        bandwidth = 0.9 * spread * v.size ** (-0.2)
    span = float(g.max() - g.min()) if g.size > 1 else 1.0
    h = max(float(bandwidth), 0.01 * span, 1e-12)
    u = (g[:, None] - v[None, :]) / h
    return np.exp(-0.5 * u * u).sum(axis=1) / (v.size * h * math.sqrt(2 * math.pi))


@dataclass
class FeatureDensity:
    name: str
    grid: np.ndarray
    real: np.ndarray
    generated: np.ndarray | None


def density_data(features: FeatureSet, points: int = 200) -> list[FeatureDensity]:
    """One KDE curve per feature for real (and generated) values on a common grid."""
    if isinstance(points, bool) or not isinstance(points, int) or not 10 <= points <= 5000:
        raise ValueError(f"points must be an integer between 10 and 5000; got {points!r}")
    out = []
    for j, name in enumerate(features.names):
        r = features.real[:, j]
        g = None if features.generated is None else features.generated[:, j]
        both = r if g is None else np.concatenate([r, g])
        lo, hi = float(both.min()), float(both.max())
        pad = 0.1 * (hi - lo) if hi > lo else 0.5
        grid = np.linspace(lo - pad, hi + pad, points)
        out.append(FeatureDensity(name, grid, kde(r, grid), None if g is None else kde(g, grid)))
    return out


# ------------------------------------------------------------------------------ PCA + clusters


@dataclass
class Projection:
    real: np.ndarray  # N×k coordinates
    generated: np.ndarray | None
    explained_variance_ratio: np.ndarray


def pca_projection(real: np.ndarray, generated: np.ndarray | None = None, n_components: int = 2,
                   seed: int = 0) -> Projection:
    """PCA fitted on the real features; generated features projected onto the same axes."""
    top = min(real.shape)
    if isinstance(n_components, bool) or not isinstance(n_components, int) or not 1 <= n_components <= top:
        raise ValueError(f"n_components must be an integer between 1 and {top} (2 or 3 for a plot); "
                         f"got {n_components!r}")
    pca = PCA(n_components=n_components, svd_solver="full").fit(real)
    return Projection(pca.transform(real), None if generated is None else pca.transform(generated),
                      pca.explained_variance_ratio_)


def cluster_labels(x: np.ndarray, method: str = "kmeans", k: int = 10, seed: int = 0) -> np.ndarray:
    """k-means or a full-covariance Gaussian mixture, seeded."""
    if method not in CLUSTER_METHODS:
        raise ValueError(f"cluster method must be one of {', '.join(CLUSTER_METHODS)}; got {method!r}")
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= len(x) - 1:
        raise ValueError(f"k (number of clusters) must be an integer between 2 and {len(x) - 1}; got {k!r}")
    if method == "kmeans":
        return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
    return GaussianMixture(n_components=k, covariance_type="full", random_state=seed, reg_covar=1e-5).fit_predict(x)


def silhouette(x: np.ndarray, labels: np.ndarray, seed: int = 0) -> float | None:
    """Mean silhouette in [−1, 1] (None when fewer than two clusters were used)."""
    if len(np.unique(labels)) < 2:
        return None
    size = SILHOUETTE_MAX_POINTS if len(x) > SILHOUETTE_MAX_POINTS else None
    return float(silhouette_score(x, labels, sample_size=size, random_state=seed))


@dataclass
class ClusterResult:
    method: str
    labels: np.ndarray  # cluster of every point (real first, then generated)
    silhouette: float | None
    ari_real: float | None  # adjusted Rand index of the real points' clusters against their labels
    ari_generated: float | None  # ... of the generated points against the classifier's predictions
    composition: list[dict] = field(default_factory=list)  # per cluster: n_real, n_generated


def cluster_analysis(
    real: np.ndarray,
    generated: np.ndarray | None = None,
    real_labels: np.ndarray | None = None,
    generated_labels: np.ndarray | None = None,
    k: int = 10,
    methods: tuple[str, ...] = CLUSTER_METHODS,
    seed: int = 0,
) -> dict[str, ClusterResult]:
    """Cluster real and generated points together; score separation (silhouette) and agreement with
    labels (adjusted Rand: 1 = the clusters are the classes, ≈0 = chance). A cluster holding only
    generated points is a mode the data does not have; one holding only real points a missed mode."""
    x = real if generated is None else np.concatenate([real, generated])
    n_real = len(real)
    out = {}
    for method in methods:
        labels = cluster_labels(x, method, k, seed)
        ari_r = None if real_labels is None else float(adjusted_rand_score(np.asarray(real_labels), labels[:n_real]))
        ari_g = None
        if generated is not None and generated_labels is not None:
            ari_g = float(adjusted_rand_score(np.asarray(generated_labels), labels[n_real:]))
        comp = [{"cluster": c, "n_real": int((labels[:n_real] == c).sum()),
                 "n_generated": int((labels[n_real:] == c).sum())} for c in range(k)]
        out[method] = ClusterResult(method, labels, silhouette(x, labels, seed), ari_r, ari_g, comp)
    return out


NO_CLASSIFIER = ("classifier features need the shipped MNIST classifier (checkpoints/classifier.safetensors "
                 "and .json); pixel and PCA features work without it")


def real_vs_generated(
    real_images: np.ndarray | torch.Tensor,
    generated_images: np.ndarray | torch.Tensor | None,
    classifier: nn.Module | None,
    real_labels: np.ndarray | None = None,
    space: str = "pca",
    n_features: int = 50,
    n_components: int = 2,
    k: int = 10,
    seed: int = 0,
) -> dict:
    """The PCA-cluster view: features of both sets (space "pca" = the first `n_features` PCs of the
    pixels, "classifier" = classifier features, "pixels" = all 784), a 2-D/3-D PCA projection, the
    classifier's predicted labels and k-means / GMM clusters fitted in the projection. Without a classifier the
    real labels must be given, the generated digits have no predicted class and the "classifier" space is refused."""
    if space not in FEATURE_KINDS:
        raise ValueError(f"space must be one of {', '.join(FEATURE_KINDS)}; got {space!r}")
    if classifier is None and (space == "classifier" or real_labels is None):
        raise ValueError(NO_CLASSIFIER if space == "classifier" else "without a classifier the real labels are needed")
    if n_components not in (2, 3):
        raise ValueError(f"n_components must be 2 or 3 (a 2-D or 3-D view); got {n_components!r}")
    n = 784 if space == "pixels" else n_features
    if space == "classifier":
        n = min(n, classifier.feature_dim)
    feats = feature_sets(space, real_images, generated_images, n=n, classifier=classifier, seed=seed)
    proj = pca_projection(feats.real, feats.generated, n_components, seed)
    gen_pred = None
    if generated_images is not None and classifier is not None:
        gen_pred = classifier_outputs(classifier, generated_images)[1].argmax(1)
    labels = np.asarray(real_labels) if real_labels is not None else \
        classifier_outputs(classifier, real_images)[1].argmax(1)
    clusters = cluster_analysis(proj.real, proj.generated, labels, gen_pred, k=k, seed=seed)
    return {"projection": proj, "real_labels": labels, "generated_labels": gen_pred, "clusters": clusters,
            "space": space, "n_features": feats.real.shape[1], "labels_are_predicted": real_labels is None}
