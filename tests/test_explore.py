"""explore: seeded real digits, the PCA-cluster view without a classifier, the cluster summary."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score, silhouette_score

from diffusion_core.evaluation.analysis import real_vs_generated
from diffusion_core.io.data import Dataset
from diffusion_core.views.explore import cluster_summary, real_digits


def blobs(n_per: int = 15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three well separated classes of 28×28 images: a bright square in one of three places."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for c, (r, col) in enumerate([(2, 2), (2, 18), (18, 10)]):
        for _ in range(n_per):
            x = rng.uniform(0, 0.05, (28, 28))
            x[r:r + 8, col:col + 8] = 0.9
            images.append(x)
            labels.append(c)
    return np.clip(np.array(images), 0, 1), np.array(labels)


def test_real_digits_are_a_seeded_subset():
    images = torch.linspace(-0.5, 0.5, 10).reshape(10, 1, 1, 1).expand(10, 1, 28, 28).contiguous()
    data = Dataset(images=images, labels=torch.arange(10), name="mnist", source="test")
    x, y = real_digits(data, 4, seed=5)
    x2, y2 = real_digits(data, 4, seed=5)
    assert x.shape == (4, 28, 28) and np.array_equal(y, y2) and np.array_equal(x, x2)
    np.testing.assert_allclose(x[:, 0, 0], (images[y, 0, 0, 0] + 0.5).numpy(), atol=1e-6)  # image i has label i
    assert len(set(y.tolist())) == 4  # without replacement
    assert sorted(real_digits(data, 50)[1].tolist()) == list(range(10))  # more than there are: all of them
    with pytest.raises(ValueError, match="positive integer"):
        real_digits(data, 0)


def test_clusters_without_a_classifier_find_separated_classes():
    real, labels = blobs()
    gen = real[::3] + 0.01
    res = real_vs_generated(real, gen, None, labels, space="pca", n_features=5, n_components=2, k=3)
    assert res["generated_labels"] is None and res["projection"].generated.shape == (15, 2)
    assert res["space"] == "pca" and res["n_features"] == 5
    km = res["clusters"]["kmeans"]
    assert km.ari_real == pytest.approx(1.0)  # the three squares are the three clusters
    x = np.concatenate([res["projection"].real, res["projection"].generated])
    assert km.silhouette == pytest.approx(silhouette_score(x, km.labels))
    assert adjusted_rand_score(labels, km.labels[:45]) == pytest.approx(km.ari_real)
    rows = {r["method"]: r for r in cluster_summary(res)}
    assert rows["kmeans"]["clusters only generated"] == 0 and rows["kmeans"]["clusters only real"] == 0
    assert rows["kmeans"]["agreement with predicted classes of generated (ARI)"] is None

    only_real = cluster_summary(real_vs_generated(real, None, None, labels, n_features=5, k=3))
    assert only_real[0]["clusters only real"] is None  # nothing to compare with

    with pytest.raises(ValueError, match="classifier features need the shipped MNIST classifier"):
        real_vs_generated(real, gen, None, labels, space="classifier")
    with pytest.raises(ValueError, match="n_components must be 2 or 3"):
        real_vs_generated(real, gen, None, labels, n_components=4)


def test_a_cluster_of_generated_points_only_is_counted():
    real, labels = blobs()
    gen = np.zeros((10, 28, 28))
    gen[:, 10:18, 20:28] = 1.0  # a shape the data does not have
    rows = {r["method"]: r for r in cluster_summary(real_vs_generated(real, gen, None, labels, space="pixels", k=4))}
    assert rows["kmeans"]["clusters only generated"] == 1
