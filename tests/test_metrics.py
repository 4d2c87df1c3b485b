"""Classifier-FID and the sample metrics against closed forms, known inputs and degradations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from diffusion_core.evaluation.classifier import load_classifier
from diffusion_core.evaluation.metrics import (
    FIDError,
    ReferenceStats,
    as_unit_images,
    class_entropy,
    class_histogram,
    classifier_fid,
    classifier_outputs,
    confident_fraction,
    evaluate_samples,
    fid_from_features,
    fid_scale,
    frechet_distance,
    gaussian_stats,
    inception_score,
    kernel_inception_distance,
    mean_confidence,
    mmd2_unbiased,
    reference_stats,
)
from diffusion_core.io.data import load_dataset, to_unit


def _spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(a)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


# ------------------------------------------------------------------ Fréchet distance, closed forms


def test_frechet_diagonal_gaussians_match_the_closed_form():
    # For diagonal Σ₁ = diag(a), Σ₂ = diag(b): d² = ‖μ₁ − μ₂‖² + Σ_i (√a_i − √b_i)²
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=12), rng.normal(size=12)
    a, b = rng.uniform(0.1, 3, 12), rng.uniform(0.1, 3, 12)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-9)


def test_frechet_full_covariances_match_an_eigen_decomposition():
    # Tr (Σ₁Σ₂)^½ = Tr (Σ₁^½ Σ₂ Σ₁^½)^½, computed here with symmetric eigen-decompositions only
    rng = np.random.default_rng(1)
    d = 16
    s1, s2 = _spd(rng, d), _spd(rng, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    r = _sqrt_psd(s1)
    inner = np.linalg.eigvalsh(r @ s2 @ r)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(np.clip(inner, 0, None)))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


def test_fid_of_large_gaussian_samples_approaches_the_population_value():
    rng = np.random.default_rng(2)
    mu1, mu2 = np.zeros(4), np.array([1.0, 0.0, -1.0, 0.5])
    a, b = np.array([1.0, 2.0, 0.5, 1.0]), np.array([4.0, 1.0, 0.5, 0.25])
    x = rng.normal(size=(200_000, 4)) * np.sqrt(a) + mu1
    y = rng.normal(size=(200_000, 4)) * np.sqrt(b) + mu2
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)  # = 2.25 + 1.5 − ... ≈ 3.33
    assert fid_from_features(x, y) == pytest.approx(expected, abs=0.05)


def test_frechet_of_identical_statistics_is_zero_and_symmetric():
    rng = np.random.default_rng(3)
    s1, s2 = _spd(rng, 8), _spd(rng, 8)
    mu = rng.normal(size=8)
    assert frechet_distance(mu, s1, mu, s1) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(mu, s1, mu + 1, s2) == pytest.approx(frechet_distance(mu + 1, s2, mu, s1), rel=1e-8)


def test_frechet_safeguards_for_singular_and_indefinite_covariances():
    # a zero covariance (e.g. identical black images): (Σ₁Σ₂)^½ = 0, so d² = ‖Δμ‖² + Tr Σ₂
    s2 = np.diag([1.0, 4.0])
    assert frechet_distance(np.zeros(2), np.zeros((2, 2)), np.ones(2), s2) == pytest.approx(2 + 5, rel=1e-6)
    # rank-deficient sample covariances (fewer samples than dimensions) still give a finite value
    rng = np.random.default_rng(4)
    with pytest.warns(RuntimeWarning, match="unreliable"):
        value = fid_from_features(rng.normal(size=(5, 20)), rng.normal(size=(6, 20)))
    assert math.isfinite(value) and value > 0
    # a "covariance" with a negative eigenvalue has no real square root: refused, not silently wrong
    with pytest.raises(FIDError, match="imaginary"):
        frechet_distance(np.zeros(2), np.diag([-1.0, 1.0]), np.zeros(2), np.eye(2))


def test_frechet_input_errors_name_the_problem():
    with pytest.raises(ValueError, match="same d"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="N ≥ 2"):
        gaussian_stats(np.zeros((1, 4)))


# -------------------------------------------------------------------- confidence and classes


def test_entropy_and_histogram_on_known_inputs():
    assert class_entropy(np.full(10, 7)) == pytest.approx(math.log(10))
    assert class_entropy(np.array([0, 0, 5, 0])) == 0.0
    assert class_entropy(np.array([3, 3, 0, 0])) == pytest.approx(math.log(2))
    assert class_entropy(np.array([1, 3])) == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))
    probs = np.array([[0.1, 0.9, 0.0], [0.2, 0.3, 0.5], [0.6, 0.4, 0.0], [0.0, 1.0, 0.0]])
    assert class_histogram(probs, 3).tolist() == [1, 2, 1]
    assert class_histogram(np.array([2, 2, 0]), 4).tolist() == [1, 0, 2, 0]
    with pytest.raises(ValueError, match="labels in 0..3"):
        class_histogram(np.array([4]), 4)
    with pytest.raises(ValueError, match="positive total"):
        class_entropy(np.zeros(3))


def test_confidence_and_inception_score_on_known_inputs():
    probs = np.array([[0.95, 0.05], [0.5, 0.5], [0.1, 0.9], [0.0, 1.0]])
    assert mean_confidence(probs) == pytest.approx((0.95 + 0.5 + 0.9 + 1.0) / 4)
    assert confident_fraction(probs) == pytest.approx(2 / 4)  # 0.9 itself is not > 0.9
    assert confident_fraction(probs, threshold=0.85) == pytest.approx(3 / 4)
    # confident and evenly spread over K classes: IS = K; all one class, or all unsure: IS = 1
    assert inception_score(np.eye(10)[np.arange(100) % 10]) == pytest.approx(10.0, rel=1e-6)
    assert inception_score(np.eye(10)[np.zeros(50, int)]) == pytest.approx(1.0, rel=1e-6)
    assert inception_score(np.full((20, 10), 0.1)) == pytest.approx(1.0, rel=1e-9)
    # two equally likely classes, each predicted with certainty: exp(ln 2) = 2
    assert inception_score(np.array([[1.0, 0.0], [0.0, 1.0]])) == pytest.approx(2.0, rel=1e-6)


def test_images_must_be_unit_pixels():
    with pytest.raises(ValueError, match="to_unit_numpy"):
        as_unit_images(np.full((2, 28, 28), -0.5))
    with pytest.raises(ValueError, match="N×28×28"):
        as_unit_images(np.zeros((2, 32, 32)))
    with pytest.raises(ValueError, match="NaN"):
        as_unit_images(np.full((1, 28, 28), np.nan))
    assert as_unit_images(np.zeros((3, 1, 28, 28))).shape == (3, 1, 28, 28)


# ------------------------------------------------------------------- with the shipped classifier


@pytest.fixture(scope="module")
def classifier():
    return load_classifier()


@pytest.fixture(scope="module")
def digits():
    train = load_dataset("mnist", "train", download=False)
    test = load_dataset("mnist", "test", download=False)
    return to_unit(train.images).squeeze(1).numpy(), to_unit(test.images).squeeze(1).numpy()


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur with a fixed 9-tap kernel (σ = 0: identity)."""
    if sigma == 0:
        return x
    k = torch.exp(-0.5 * (torch.arange(-4, 5, dtype=torch.float32) / sigma) ** 2)
    k = k / k.sum()
    t = torch.as_tensor(x).unsqueeze(1)
    t = F.conv2d(F.pad(t, (4, 4, 0, 0)), k.view(1, 1, 1, 9))
    t = F.conv2d(F.pad(t, (0, 0, 4, 4)), k.view(1, 1, 9, 1))
    return t.squeeze(1).numpy()


@pytest.fixture(scope="module")
def reference(classifier, digits):
    """Features of 3,000 training digits, and their statistics as the FID reference."""
    feats, _ = classifier_outputs(classifier, digits[0][:3000])
    mu, sigma = gaussian_stats(feats)
    return feats, ReferenceStats(mu, sigma, len(feats), feats)


def test_fid_of_real_against_real_is_small_and_grows_under_noise_and_blur(classifier, digits, reference):
    _, test = digits
    feats, ref = reference
    assert fid_from_features(feats, ref) == pytest.approx(0.0, abs=1e-6)  # identical sets
    split = fid_from_features(feats[:1500], feats[1500:])  # two disjoint sets of 1,500 real digits
    held_out = classifier_fid(classifier, test, ref)  # 500 unseen digits
    noise = classifier_fid(classifier, np.clip(np.random.default_rng(0).normal(0.5, 1, (500, 28, 28)), 0, 1), ref)
    assert split < held_out < 0.01 * noise  # more samples, smaller bias; both tiny against noise

    x = test[:300]
    eps = np.random.default_rng(1).normal(size=x.shape).astype(np.float32)
    noisy = [classifier_fid(classifier, np.clip(x + s * eps, 0, 1), ref) for s in (0.0, 0.15, 0.4, 0.8)]
    assert all(a < b for a, b in zip(noisy, noisy[1:], strict=False)), noisy
    blurred = [classifier_fid(classifier, _blur(x, s), ref) for s in (0.0, 1.0, 2.0, 3.0)]
    assert all(a < b for a, b in zip(blurred, blurred[1:], strict=False)), blurred


def test_evaluate_samples_on_real_and_degenerate_sets(classifier, digits, reference):
    _, test = digits
    ref = reference[1]
    real = evaluate_samples(test, classifier, ref)
    assert real["n"] == len(test) and real["n_reference"] == 3000 and real["feature_dim"] == 128
    assert real["classes_present"] == 10 and real["class_entropy"] > 2.25
    assert real["confident_fraction"] > 0.9 and real["mean_confidence"] > 0.9
    assert real["inception_score"] > 8.0
    _, probs = classifier_outputs(classifier, test)
    assert real["class_histogram"] == np.bincount(probs.argmax(1), minlength=10).tolist()
    black = evaluate_samples(np.zeros((200, 28, 28)), classifier, ref)
    assert black["classes_present"] == 1 and black["class_entropy"] == 0.0
    assert black["inception_score"] == pytest.approx(1.0, abs=1e-6)
    assert black["fid"] > 10 * real["fid"]
    assert abs(real["kid"]) < 3 * real["kid_se"] + 1e-3 < black["kid"] - 5 * black["kid_se"]  # real held-out: ~0


def test_fid_scale_orders_floor_below_ceilings(classifier, digits):
    train, test = digits
    assert reference_stats(classifier, test).n == len(test)
    scale = fid_scale(classifier, test, train, n=300, seed=0)
    assert scale["n"] == 300 and scale["n_reference"] == len(test)
    assert 0 < scale["floor"] < 0.1 * min(scale["ceiling_noise"], scale["ceiling_black"])
    assert scale == fid_scale(classifier, test, train, n=300, seed=0)  # seeded
    with pytest.raises(ValueError, match="held-out"):
        fid_scale(classifier, test, test[:100], n=200)


def test_unbiased_mmd2_is_the_formula():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 5)), rng.normal(size=(6, 5)) + 0.3
    k = lambda a, b: (a @ b / 5 + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(7) for j in range(7) if i != j) / (7 * 6)
    yy = sum(k(y[i], y[j]) for i in range(6) for j in range(6) if i != j) / (6 * 5)
    xy = sum(k(a, b) for a in x for b in y) / (7 * 6)
    assert mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-10)


def test_kid_is_unbiased_where_fid_is_biased_at_small_n():
    """Two samples of one distribution: KID averages to 0 within its standard error; FID at n = 100 with d = 16
    is clearly above 0. A shifted distribution gives a KID many standard errors above 0."""
    rng = np.random.default_rng(1)
    kids, fids = [], []
    for _ in range(20):
        a, b = rng.normal(size=(100, 16)), rng.normal(size=(100, 16))
        kids.append(kernel_inception_distance(a, b, seed=0)[0])
        fids.append(fid_from_features(a, b))
    assert abs(np.mean(kids)) < 2 * np.std(kids) / np.sqrt(len(kids))
    assert np.mean(fids) > 10 * np.std(fids) / np.sqrt(len(fids))
    kid, se = kernel_inception_distance(rng.normal(size=(200, 16)) + 0.5, rng.normal(size=(200, 16)))
    assert kid > 5 * se > 0
    with pytest.raises(ValueError, match="KID needs at least 4 images on each side"):
        kernel_inception_distance(rng.normal(size=(3, 16)), rng.normal(size=(50, 16)))
