"""Sample-quality metrics from our MNIST classifier (Inception needs downloaded weights).

All functions take images as pixels in [0, 1], shaped N×28×28 or N×1×28×28 (what `sample`
writes to .npy; data-space tensors convert with images.to_unit_numpy).

- classifier-FID: ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½) of penultimate-layer features;
- mean confidence E[max_k p(k|x)] and the fraction with max_k p(k|x) > 0.9;
- the predicted-class histogram and its entropy H = −Σ_k p_k ln p_k (nats, at most ln 10 ≈ 2.303);
- the Inception-Score analogue IS = exp(E_x KL(p(y|x) ‖ p(y))), between 1 and the number of classes.

FID depends on the sample count (it is biased upwards for small N, and unreliable for N ≤ d, the
feature dimension, 128 for the shipped classifier), so compare only numbers at the same N and read
them against `fid_scale` at that N: the floor (real held-out digits) and the ceilings (pure noise,
black images).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch
from torch import nn

CONFIDENCE_THRESHOLD = 0.9
IMAG_TOLERANCE = 1e-3  # largest |Im| allowed on the diagonal of (Σ₁Σ₂)^½ before we refuse
RESIDUAL_TOLERANCE = 1e-4  # ‖X² − A‖_F / ‖A‖_F above this counts as ill-conditioned


class FIDError(ValueError):
    """The Fréchet distance could not be computed reliably; the message says why."""


def as_unit_images(images: np.ndarray | torch.Tensor, name: str = "images") -> torch.Tensor:
    """Validate pixels in [0, 1] (N×28×28 or N×1×28×28) and return an N×1×28×28 float32 tensor."""
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    x = x.detach().float().cpu()
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28) or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty array shaped N×28×28 or N×1×28×28; got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contain NaN or Inf values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-4 or hi > 1 + 1e-4:
        raise ValueError(
            f"{name} must be pixels in [0, 1]; got values in [{lo:.3g}, {hi:.3g}]. Data-space images "
            "(x/255 − 0.5) convert with diffusion_core.io.images.to_unit_numpy; clip generated samples to [0, 1]."
        )
    return x.clamp(0.0, 1.0)


@torch.no_grad()
def classifier_outputs(
    classifier: nn.Module, images: np.ndarray | torch.Tensor, batch_size: int = 500
) -> tuple[np.ndarray, np.ndarray]:
    """(features N×d, class probabilities N×K) as float64 arrays, for images in [0, 1]."""
    x = as_unit_images(images) - 0.5  # the classifier reads data space, like the denoisers
    classifier.eval()
    device = next(classifier.parameters()).device
    feats, probs = [], []
    for i in range(0, len(x), batch_size):
        f = classifier.features(x[i:i + batch_size].to(device))
        feats.append(f.double().cpu())
        probs.append(torch.softmax(classifier.head(f).double(), dim=1).cpu())
    return torch.cat(feats).numpy(), torch.cat(probs).numpy()


# ------------------------------------------------------------------------------ Fréchet distance


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean μ and covariance Σ (unbiased, N−1) of N×d features."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must be an N×d array with N ≥ 2 (FID needs a covariance); got {f.shape}")
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def _sqrtm(a: np.ndarray) -> tuple[np.ndarray, float]:
    """scipy's matrix square root and its relative residual ‖X² − A‖_F / ‖A‖_F."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # singular-matrix warnings: judged by the residual instead
        x = scipy.linalg.sqrtm(a)
    norm = np.linalg.norm(a)
    if not np.all(np.isfinite(x)):
        return x, math.inf
    residual = float(np.linalg.norm(x @ x - a) / norm) if norm > 0 else float(np.linalg.norm(x))
    return x, residual


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """d² = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½) between N(μ₁, Σ₁) and N(μ₂, Σ₂).

    Safeguards: if (Σ₁Σ₂)^½ is not finite or ill-conditioned, retry with Σ + eps·I (with a warning);
    a small imaginary part from round-off is dropped; a large one raises FIDError."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"means must be length d and covariances d×d with the same d; got μ₁ {mu1.shape}, "
                         f"Σ₁ {s1.shape}, μ₂ {mu2.shape}, Σ₂ {s2.shape}")
    diff = mu1 - mu2
    covmean, residual = _sqrtm(s1 @ s2)
    if residual > RESIDUAL_TOLERANCE:
        warnings.warn(f"(Σ₁Σ₂)^½ is ill-conditioned (relative residual {residual:.2g}); adding {eps:g}·I to both "
                      "covariances", RuntimeWarning, stacklevel=2)
        offset = eps * np.eye(d)
        covmean, residual = _sqrtm((s1 + offset) @ (s2 + offset))
        if not np.all(np.isfinite(covmean)):
            raise FIDError("the matrix square root in FID is not finite even after adding eps·I to the "
                           "covariances; use more samples than feature dimensions")
    if np.iscomplexobj(covmean):
        imag = float(np.max(np.abs(np.diagonal(covmean).imag)))
        if imag > IMAG_TOLERANCE * max(1.0, float(np.abs(np.trace(covmean.real)))):
            raise FIDError(f"the matrix square root in FID has a large imaginary component ({imag:.3g}); the "
                           "covariances are too ill-conditioned: use more samples")
        covmean = covmean.real
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))
    return max(value, 0.0)  # round-off can give −1e-12 for identical statistics


@dataclass
class ReferenceStats:
    """μ, Σ of the reference set's classifier features (and the features, for KID), computed once and reused."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int
    features: np.ndarray | None = None


def reference_stats(classifier: nn.Module, images: np.ndarray | torch.Tensor) -> ReferenceStats:
    feats, _ = classifier_outputs(classifier, images)
    mu, sigma = gaussian_stats(feats)
    return ReferenceStats(mu=mu, sigma=sigma, n=len(feats), features=feats)


KID_MIN_BLOCK = 50  # images per block of the KID estimate (at most KID_MAX_BLOCKS disjoint blocks)
KID_MAX_BLOCKS = 10


def polynomial_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """k(x, y) = (x·y/d + 1)³, KID's kernel."""
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased estimate of MMD² between the distributions of rows of x and of y (polynomial kernel):
    mean k(x, x') over pairs x ≠ x' + mean k(y, y') over y ≠ y' − 2·mean k(x, y)."""
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError(f"KID needs at least 2 images on each side; got {m} and {n}")
    kxx, kyy = polynomial_kernel(x, x), polynomial_kernel(y, y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2.0 * polynomial_kernel(x, y).mean())


def kernel_inception_distance(features: np.ndarray, reference: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """KID (Bińkowski et al. 2018) with our classifier's features, standardised per dimension by the reference set:
    (estimate, standard error). Both sets are shuffled (seeded) and cut into k disjoint blocks of ≥ KID_MIN_BLOCK
    images (2 ≤ k ≤ KID_MAX_BLOCKS); each block pair gives an independent unbiased MMD², so their mean is
    unbiased — unlike FID, near 0 for two samples of one distribution even at small n — and its standard error is
    their std/√k (rough below 250 images, where k < 5)."""
    rng = np.random.default_rng(seed)
    x, y = np.asarray(features, np.float64), np.asarray(reference, np.float64)
    mu, sd = y.mean(axis=0), y.std(axis=0) + 1e-8  # standardised by the reference: the cubic kernel sees
    x, y = (x - mu) / sd, (y - mu) / sd  # x·y/d of order 1 (raw features have ‖f‖ ≈ 50, so k ≈ 10³ and noisy)
    k = int(np.clip(min(len(x), len(y)) // KID_MIN_BLOCK, 2, KID_MAX_BLOCKS))
    if min(len(x), len(y)) < 2 * k:
        raise ValueError(f"KID needs at least {2 * k} images on each side; got {len(x)} and {len(y)}")
    xs = np.array_split(x[rng.permutation(len(x))], k)
    ys = np.array_split(y[rng.permutation(len(y))], k)
    values = np.array([mmd2_unbiased(a, b) for a, b in zip(xs, ys, strict=True)])
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(k))


def fid_from_features(features1: np.ndarray, features2: np.ndarray | ReferenceStats) -> float:
    """FID between two N×d feature sets (or a set and reference statistics). With N ≤ d the sample
    covariance is rank-deficient and the value jumps upwards: a RuntimeWarning says so."""
    n, d = np.shape(features1)[0], np.shape(features1)[-1]
    if 2 <= n <= d:
        warnings.warn(f"FID from N={n} images with d={d} features is unreliable (rank-deficient covariance); "
                      f"use N > {d}, ideally N ≥ {2 * d}", RuntimeWarning, stacklevel=2)
    mu1, s1 = gaussian_stats(features1)
    if isinstance(features2, ReferenceStats):
        return frechet_distance(mu1, s1, features2.mu, features2.sigma)
    return frechet_distance(mu1, s1, *gaussian_stats(features2))


def classifier_fid(
    classifier: nn.Module, images: np.ndarray | torch.Tensor, reference: np.ndarray | torch.Tensor | ReferenceStats
) -> float:
    """Fréchet distance between classifier features of `images` and of `reference` (both in [0, 1])."""
    feats, _ = classifier_outputs(classifier, images)
    ref = reference if isinstance(reference, ReferenceStats) else reference_stats(classifier, reference)
    return fid_from_features(feats, ref)


# ------------------------------------------------------------------------- confidence and classes


def _probs(probs: np.ndarray) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"probabilities must be an N×K array with N ≥ 1; got shape {p.shape}")
    return p


def mean_confidence(probs: np.ndarray) -> float:
    """E_x[max_k p(k|x)]."""
    return float(_probs(probs).max(axis=1).mean())


def confident_fraction(probs: np.ndarray, threshold: float = CONFIDENCE_THRESHOLD) -> float:
    """Fraction of images whose top class has probability > threshold."""
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be in [0, 1); got {threshold}")
    return float((_probs(probs).max(axis=1) > threshold).mean())


def class_histogram(predictions: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """Counts of predicted classes, from N×K probabilities or N integer labels."""
    a = np.asarray(predictions)
    labels = a.argmax(axis=1) if a.ndim == 2 else a.astype(np.int64)
    if labels.ndim != 1 or (labels.size and (labels.min() < 0 or labels.max() >= num_classes)):
        raise ValueError(f"predictions must be N×{num_classes} probabilities or labels in 0..{num_classes - 1}")
    return np.bincount(labels, minlength=num_classes)


def class_entropy(histogram: np.ndarray) -> float:
    """H = −Σ_k p_k ln p_k in nats, p = histogram / total (0·ln 0 = 0)."""
    h = np.asarray(histogram, dtype=np.float64)
    if h.ndim != 1 or h.sum() <= 0 or (h < 0).any():
        raise ValueError("histogram must be a 1-D array of non-negative counts with a positive total")
    p = h[h > 0] / h.sum()
    return float(-(p * np.log(p)).sum()) + 0.0  # + 0.0 turns the −0.0 of a single class into 0.0


def within_class_spread(features: np.ndarray, labels: np.ndarray) -> float:
    """Variety inside the classes: the RMS distance of each feature vector to its class's mean (√ of the mean
    trace of the per-class covariances), over the classes with at least 2 members. 0 when every member of a
    class is the same image."""
    labels = np.asarray(labels)
    spreads = [np.mean(np.sum((f - f.mean(0)) ** 2, axis=1))
               for f in (np.asarray(features)[labels == c] for c in np.unique(labels)) if len(f) >= 2]
    if not spreads:
        raise ValueError("within-class spread needs a class with at least 2 members")
    return float(math.sqrt(np.mean(spreads)))


def inception_score(probs: np.ndarray) -> float:
    """IS analogue exp(E_x KL(p(y|x) ‖ p(y))), p(y) = E_x p(y|x): 1 (all alike or all unsure) to K."""
    p = np.clip(_probs(probs), 1e-12, 1.0)
    marginal = p.mean(axis=0, keepdims=True)
    kl = (p * (np.log(p) - np.log(marginal))).sum(axis=1)
    return float(np.exp(kl.mean()))


# ---------------------------------------------------------------------------------- summaries


def evaluate_samples(
    images: np.ndarray | torch.Tensor,
    classifier: nn.Module,
    reference_images: np.ndarray | torch.Tensor | ReferenceStats,
    threshold: float = CONFIDENCE_THRESHOLD,
) -> dict:
    """All metrics of a set of generated images (in [0, 1]) against reference images (or their stats)."""
    feats, probs = classifier_outputs(classifier, images)
    ref = reference_images if isinstance(reference_images, ReferenceStats) else reference_stats(
        classifier, reference_images)
    hist = class_histogram(probs, num_classes=probs.shape[1])
    return {
        "n": int(len(feats)),
        "n_reference": int(ref.n),
        "feature_dim": int(feats.shape[1]),
        "fid": fid_from_features(feats, ref) if len(feats) >= 2 else None,
        **_kid(feats, ref),
        "mean_confidence": mean_confidence(probs),
        "confidence_threshold": threshold,
        "confident_fraction": confident_fraction(probs, threshold),
        "class_histogram": hist.tolist(),
        "classes_present": int((hist > 0).sum()),
        "class_entropy": class_entropy(hist),
        "max_class_entropy": math.log(probs.shape[1]),
        "inception_score": inception_score(probs),
    }


def _kid(features: np.ndarray, ref: ReferenceStats) -> dict:
    """{"kid", "kid_se"} against the reference features, or None for each where too few images or no features."""
    if ref.features is None or min(len(features), len(ref.features)) < 4:
        return {"kid": None, "kid_se": None}
    kid, se = kernel_inception_distance(features, ref.features)
    return {"kid": kid, "kid_se": se}


def noise_images(n: int, seed: int = 0) -> np.ndarray:
    """Pure noise as a model would start from: z ~ N(0, I) in data space, shown as clip(z + 0.5, 0, 1)."""
    z = torch.randn((n, 28, 28), generator=torch.Generator().manual_seed(seed))
    return (z + 0.5).clamp(0, 1).numpy()


def fid_scale(
    classifier: nn.Module,
    reference_images: np.ndarray | torch.Tensor | ReferenceStats,
    heldout_images: np.ndarray | torch.Tensor,
    n: int,
    seed: int = 0,
) -> dict:
    """FID landmarks at sample count n against the same reference: the floor (n held-out real digits,
    drawn with `seed`) and the ceilings (n pure-noise images; n black images)."""
    held = as_unit_images(heldout_images, "heldout_images")
    if isinstance(n, bool) or not isinstance(n, int) or not 2 <= n <= len(held):
        raise ValueError(f"n must be an integer between 2 and the {len(held)} held-out images; got {n!r}. "
                         "Give more held-out images or a smaller n.")
    ref = reference_images if isinstance(reference_images, ReferenceStats) else reference_stats(
        classifier, reference_images)
    idx = torch.randperm(len(held), generator=torch.Generator().manual_seed(seed))[:n]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # black images have Σ = 0: the eps·I path is expected
        black = classifier_fid(classifier, np.zeros((n, 28, 28), np.float32), ref)
    return {
        "n": n,
        "n_reference": int(ref.n),
        "floor": classifier_fid(classifier, held[idx], ref),
        "ceiling_noise": classifier_fid(classifier, noise_images(n, seed), ref),
        "ceiling_black": black,
    }
