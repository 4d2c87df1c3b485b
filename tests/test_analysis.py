"""Feature densities, PCA and clustering of real vs generated points."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import gaussian_kde

from diffusion_core.evaluation.analysis import (
    cluster_analysis,
    cluster_labels,
    density_data,
    feature_sets,
    kde,
    pca_projection,
    real_vs_generated,
)
from diffusion_core.evaluation.classifier import load_classifier
from diffusion_core.io.data import load_dataset, to_unit


def _blobs(n_per: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 5.0]])
    x = np.concatenate([c + rng.normal(scale=0.5, size=(n_per, 3)) for c in centres])
    return x, np.repeat(np.arange(3), n_per)


def test_pixel_features_are_the_chosen_columns():
    rng = np.random.default_rng(0)
    real, gen = rng.uniform(size=(7, 28, 28)), rng.uniform(size=(5, 28, 28))
    fs = feature_sets("pixels", real, gen, n=20, start=14 * 28)
    np.testing.assert_allclose(fs.real, real.reshape(7, -1)[:, 392:412], rtol=1e-6)
    np.testing.assert_allclose(fs.generated, gen.reshape(5, -1)[:, 392:412], rtol=1e-6)
    assert fs.names[0] == "pixel 392 (row 14, col 0)" and len(fs.names) == 20
    with pytest.raises(ValueError, match="start must be"):
        feature_sets("pixels", real, n=20, start=770)
    with pytest.raises(ValueError, match="feature kind"):
        feature_sets("wavelets", real)


def test_pca_features_project_generated_on_the_real_axes():
    rng = np.random.default_rng(1)
    real = (rng.uniform(size=(40, 28, 28)) * np.linspace(0, 1, 784).reshape(28, 28)).astype(np.float32)
    gen = rng.uniform(size=(10, 28, 28))
    fs = feature_sets("pca", real, gen, n=3)
    centred = real.reshape(40, -1) - real.reshape(40, -1).mean(0)
    # the first PC's variance is the largest eigenvalue of the covariance (an independent computation)
    top = np.linalg.eigvalsh(np.cov(centred, rowvar=False))[-1]
    assert fs.real[:, 0].var(ddof=1) == pytest.approx(top, rel=1e-6)
    assert fs.generated.shape == (10, 3) and fs.names[0].startswith("PC1")


def test_kde_matches_scipy_and_integrates_to_one():
    rng = np.random.default_rng(2)
    v = rng.normal(size=300)
    grid = np.linspace(-6, 6, 1201)
    h = 0.4
    ours = kde(v, grid, bandwidth=h)
    ref = gaussian_kde(v, bw_method=h / v.std(ddof=1))(grid)
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-12)
    assert np.trapezoid(kde(v, grid), grid) == pytest.approx(1.0, abs=1e-3)
    spike = kde(np.zeros(50), np.linspace(-1, 1, 201))  # a constant feature (a blank pixel)
    assert np.isfinite(spike).all() and spike.argmax() == 100


def test_density_data_uses_one_grid_for_real_and_generated():
    rng = np.random.default_rng(3)
    fs = feature_sets("pixels", rng.uniform(size=(30, 28, 28)), np.zeros((10, 28, 28)), n=2, start=0)
    d = density_data(fs, points=50)
    assert len(d) == 2 and d[0].grid.shape == (50,)
    assert d[0].grid.min() < 0 < 1 < d[0].grid.max() + 0.2  # covers both sets
    assert d[0].generated.argmax() == np.abs(d[0].grid).argmin()  # all generated values are 0
    with pytest.raises(ValueError, match="points must be"):
        density_data(fs, points=3)


def test_clusters_recover_separated_blobs_and_report_composition():
    x, y = _blobs()
    real, gen = x[::2], x[1::2]
    gen_labels = y[1::2]
    res = cluster_analysis(real, gen, y[::2], gen_labels, k=3, seed=0)
    for method in ("kmeans", "gmm"):
        r = res[method]
        assert r.ari_real == pytest.approx(1.0) and r.ari_generated == pytest.approx(1.0)
        assert r.silhouette > 0.8
        assert sorted(c["n_real"] for c in r.composition) == [30, 30, 30]
        assert sum(c["n_generated"] for c in r.composition) == 90
    # shuffled labels agree only by chance
    rng = np.random.default_rng(0)
    chance = cluster_analysis(x, real_labels=rng.permutation(y), k=3, methods=("kmeans",))
    assert abs(chance["kmeans"].ari_real) < 0.05
    np.testing.assert_array_equal(cluster_labels(x, "gmm", 3, seed=5), cluster_labels(x, "gmm", 3, seed=5))
    with pytest.raises(ValueError, match="k \\(number of clusters\\)"):
        cluster_labels(x, "kmeans", 1)
    with pytest.raises(ValueError, match="cluster method"):
        cluster_labels(x, "dbscan", 3)


def test_pca_projection_explained_variance_and_shapes():
    x, _ = _blobs()
    p = pca_projection(x[:100], x[100:], n_components=3)
    assert p.real.shape == (100, 3) and p.generated.shape == (80, 3)
    assert p.explained_variance_ratio.sum() == pytest.approx(1.0)  # 3-D data, 3 components
    with pytest.raises(ValueError, match="n_components"):
        pca_projection(x, n_components=4)


def test_real_vs_generated_on_digits_finds_class_structure():
    clf = load_classifier()
    test = load_dataset("mnist", "test", download=False)
    imgs, labels = to_unit(test.images).squeeze(1).numpy(), test.labels.numpy()
    res = real_vs_generated(imgs[:250], imgs[250:], clf, labels[:250], space="classifier", n_components=3, seed=0)
    assert res["projection"].real.shape == (250, 3) and res["projection"].generated.shape == (250, 3)
    km = res["clusters"]["kmeans"]
    assert km.ari_real > 0.3 and km.ari_generated > 0.3  # far above chance (≈0)
    assert res["labels_are_predicted"] is False
    assert res["n_features"] == min(50, clf.feature_dim)  # what the figure's title names
    with pytest.raises(ValueError, match="2 or 3"):
        real_vs_generated(imgs[:50], None, clf, n_components=5)
