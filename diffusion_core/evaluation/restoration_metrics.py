"""How close restorations are to the originals: RMSE and SSIM, per image, on pixels in [0, 1].

RMSE = √(mean (x − y)²).
SSIM (Wang et al. 2004) with an 11×11 Gaussian window (σ = 1.5), averaged over every window that
lies fully inside the image:
    SSIM = (2 μ_x μ_y + C1)(2 σ_xy + C2) / ((μ_x² + μ_y² + C1)(σ_x² + σ_y² + C2)),
    C1 = (0.01 L)², C2 = (0.03 L)², L = 1 (the data range).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

K1, K2 = 0.01, 0.03
WINDOW_SIZE, WINDOW_SIGMA = 11, 1.5


def _as_batch(images: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    """N×H×W / N×1×H×W / H×W → N×1×H×W float64, checked to lie in [0, 1]."""
    x = torch.as_tensor(np.asarray(images) if isinstance(images, np.ndarray) else images).detach().cpu().double()
    if x.dim() == 2:
        x = x[None, None]
    elif x.dim() == 3:
        x = x[:, None]
    if x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(f"{name} must be grey images shaped H×W, N×H×W or N×1×H×W; got {tuple(x.shape)}")
    if not torch.isfinite(x).all() or x.min() < -1e-6 or x.max() > 1 + 1e-6:
        raise ValueError(f"{name} must hold pixel values in [0, 1] (convert data space with data.to_unit); "
                         f"got values in [{float(x.min()):.3g}, {float(x.max()):.3g}]")
    return x


def _pair(x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = _as_batch(x, "restored images"), _as_batch(y, "original images")
    if a.shape != b.shape:
        raise ValueError(f"restored and original images must have the same shape; got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    return a, b


def rmse(restored: torch.Tensor | np.ndarray, original: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Per-image root-mean-square error (a tensor of N values)."""
    a, b = _pair(restored, original)
    return ((a - b) ** 2).mean(dim=(1, 2, 3)).sqrt()


def gaussian_window(size: int = WINDOW_SIZE, sigma: float = WINDOW_SIGMA) -> torch.Tensor:
    """size×size weights ∝ exp(−(i² + j²)/2σ²), summing to 1."""
    j = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(j**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(restored: torch.Tensor | np.ndarray, original: torch.Tensor | np.ndarray,
         window_size: int = WINDOW_SIZE, sigma: float = WINDOW_SIGMA) -> torch.Tensor:
    """Per-image SSIM (a tensor of N values; 1 for identical images)."""
    a, b = _pair(restored, original)
    if window_size > min(a.shape[-2:]) or window_size < 1 or window_size % 2 == 0:
        raise ValueError(f"window_size must be odd and at most the image side {min(a.shape[-2:])}; got {window_size}")
    w = gaussian_window(window_size, sigma)[None, None]
    mu_a, mu_b = F.conv2d(a, w), F.conv2d(b, w)
    var_a = F.conv2d(a * a, w) - mu_a**2
    var_b = F.conv2d(b * b, w) - mu_b**2
    cov = F.conv2d(a * b, w) - mu_a * mu_b
    c1, c2 = K1**2, K2**2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.mean(dim=(1, 2, 3))


def restoration_scores(restored: torch.Tensor | np.ndarray, original: torch.Tensor | np.ndarray) -> dict[str, float]:
    """Mean RMSE and SSIM over a batch."""
    return {"rmse": float(rmse(restored, original).mean()), "ssim": float(ssim(restored, original).mean())}
