"""Image grids and files: data space (x/255 − 0.5) ↔ [0, 1] pixels ↔ PNG / .npy."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from diffusion_core.io.data import to_unit
from diffusion_core.io.files import atomic_write_bytes


def to_unit_numpy(x: torch.Tensor) -> np.ndarray:
    """N×1×H×W data-space tensor → N×H×W float32 array in [0, 1]."""
    return to_unit(x.detach().float().cpu()).squeeze(1).numpy().astype(np.float32)


def make_grid(images: np.ndarray, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """N×H×W array in [0, 1] → one (rows·(H+pad)+pad)×(cols·(W+pad)+pad) array."""
    n, h, w = images.shape
    cols = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad), dtype=np.float32) * 0.5
    for i in range(n):
        r, c = divmod(i, cols)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = images[i]
    return grid


def png_bytes(array01: np.ndarray, scale: int = 1) -> bytes:
    img = Image.fromarray((np.clip(array01, 0, 1) * 255).round().astype(np.uint8), mode="L")
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def save_samples(images01: np.ndarray, stem: str | Path, nrow: int | None = None) -> tuple[Path, Path]:
    """Write `<stem>.npy` (N×28×28 in [0, 1]) and `<stem>.png` (a grid), atomically."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.save(buf, images01.astype(np.float32), allow_pickle=False)
    npy, png = stem.with_suffix(".npy"), stem.with_suffix(".png")
    atomic_write_bytes(npy, buf.getvalue())
    atomic_write_bytes(png, png_bytes(make_grid(images01, nrow), scale=2))
    return npy, png
