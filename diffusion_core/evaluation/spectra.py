"""Radially averaged power spectra of images: how much of an image's variance sits at each spatial frequency.

For an H×W image with 2-D DFT F(u, v), the power at radius k is the mean of |F(u, v)|²/(H·W) over the frequencies
with round(√(u² + v²)) = k (u, v in cycles per image, from −H/2 to H/2), averaged over the images; frequency k/H in
cycles per pixel. With this normalisation white noise of variance σ² has power σ² at every k (Parseval), so a
noisy z_t shows where its noise floor drowns the digit's own spectrum: fine detail (high k) first.
"""

from __future__ import annotations

import numpy as np
import torch


def _images(x: np.ndarray | torch.Tensor) -> np.ndarray:
    a = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)
    if a.ndim == 4:
        if a.shape[1] != 1:
            raise ValueError(f"spectra take one-channel images (N×1×H×W or N×H×W); got shape {a.shape}")
        a = a[:, 0]
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[1] != a.shape[2]:
        raise ValueError(f"spectra take square images N×H×W; got shape {a.shape}")
    return a


def radial_power_spectrum(images: np.ndarray | torch.Tensor, remove_mean: bool = True) -> np.ndarray:
    """Power at radius k = 0..H//2 (see the module docstring), averaged over the images; each image's mean is
    removed first unless remove_mean is False (then k = 0 holds it)."""
    a = _images(images)
    n, h, w = a.shape
    if remove_mean:
        a = a - a.mean(axis=(1, 2), keepdims=True)
    power = (np.abs(np.fft.fft2(a)) ** 2).mean(axis=0) / (h * w)
    u = np.fft.fftfreq(h) * h
    radius = np.rint(np.sqrt(u[:, None] ** 2 + u[None, :] ** 2)).astype(int)
    k = np.arange(h // 2 + 1)
    sums = np.bincount(radius.ravel(), weights=power.ravel(), minlength=k.size)[: k.size]
    counts = np.bincount(radius.ravel(), minlength=k.size)[: k.size]
    return sums / counts


def spectrum_frequencies(size: int = 28) -> np.ndarray:
    """The frequencies (cycles per pixel) of radial_power_spectrum's bins for size×size images."""
    return np.arange(size // 2 + 1) / size
