"""MNIST IDX files written by tests, in the layout torchvision reads (<root>/MNIST/raw)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

PREFIX = {"train": "train", "test": "t10k"}


def idx_images(images: np.ndarray) -> bytes:
    """IDX3 (magic 0x803): N×28×28 unsigned bytes."""
    return struct.pack(">IIII", 0x00000803, len(images), 28, 28) + images.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray) -> bytes:
    """IDX1 (magic 0x801): N unsigned bytes."""
    return struct.pack(">II", 0x00000801, len(labels)) + labels.astype(np.uint8).tobytes()


def write_idx_split(folder: Path, split: str, images: np.ndarray, labels: np.ndarray, gz: bool = False) -> None:
    """The images and labels files of one split (uint8 pixels 0..255) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for kind, blob in (("images-idx3-ubyte", idx_images(images)), ("labels-idx1-ubyte", idx_labels(labels))):
        name = f"{PREFIX[split]}-{kind}"
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(blob))
        else:
            (folder / name).write_bytes(blob)
