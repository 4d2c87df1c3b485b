"""RMSE and SSIM against known values and an independent SSIM computed with scipy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from diffusion_core.evaluation.restoration_metrics import restoration_scores, rmse, ssim


def rand(n=2, seed=0):
    return torch.rand((n, 28, 28), generator=torch.Generator().manual_seed(seed))


def reference_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al. with scipy's Gaussian filter (σ = 1.5, radius 5), keeping windows inside the image."""
    f = lambda v: ndimage.gaussian_filter(v, 1.5, truncate=3.5, mode="reflect")  # noqa: E731
    mu_a, mu_b = f(a), f(b)
    va, vb, cov = f(a * a) - mu_a**2, f(b * b) - mu_b**2, f(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a**2 + mu_b**2 + c1) * (va + vb + c2))
    return float(s[5:-5, 5:-5].mean())


def test_rmse_known_values():
    a, b = torch.full((1, 28, 28), 0.2), torch.full((1, 28, 28), 0.5)
    assert rmse(a, b).item() == pytest.approx(0.3)
    x = rand(3) * 0.9
    assert torch.allclose(rmse(x, x + 0.1), torch.full((3,), 0.1, dtype=torch.float64))
    y = rand(3, seed=1)
    want = np.sqrt(((x.numpy() - y.numpy()) ** 2).reshape(3, -1).mean(axis=1))
    assert np.allclose(rmse(x, y).numpy(), want)


def test_ssim_known_values():
    x = rand(2)
    assert torch.allclose(ssim(x, x), torch.ones(2, dtype=torch.float64))
    # constant images: no contrast or structure, so SSIM is the luminance term (2ab + C1)/(a² + b² + C1)
    a, b = torch.full((1, 28, 28), 0.2), torch.full((1, 28, 28), 0.5)
    want = (2 * 0.2 * 0.5 + 1e-4) / (0.2**2 + 0.5**2 + 1e-4)
    assert ssim(a, b).item() == pytest.approx(want, rel=1e-6)  # 0.2 in float32
    # a brightness shift keeps contrast and structure: the score drops only through luminance
    shifted = ssim(x * 0.8, x * 0.8 + 0.2)
    assert (shifted > 0.85).all() and (shifted < 1.0).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_ssim_matches_an_independent_implementation(seed):
    x = rand(1, seed)[0].double().numpy()
    y = np.clip(ndimage.gaussian_filter(x, 1.0) + 0.05 * rand(1, seed + 7)[0].double().numpy(), 0, 1)
    assert ssim(torch.from_numpy(y), torch.from_numpy(x)).item() == pytest.approx(reference_ssim(y, x), abs=1e-10)
    assert ssim(torch.from_numpy(x), torch.from_numpy(y)).item() == pytest.approx(reference_ssim(y, x), abs=1e-10)


def test_scores_accept_numpy_and_channel_dimension():
    x = rand(4)
    scores = restoration_scores(x.numpy(), x[:, None])
    assert scores == {"rmse": 0.0, "ssim": pytest.approx(1.0)}


def test_bad_inputs_give_clear_errors():
    x = rand(2)
    with pytest.raises(ValueError, match="same shape"):
        rmse(x, x[:1])
    with pytest.raises(ValueError, match=r"pixel values in \[0, 1\].*to_unit"):
        ssim(x - 0.5, x)
    with pytest.raises(ValueError, match="grey images"):
        rmse(torch.zeros(2, 3, 28, 28), torch.zeros(2, 3, 28, 28))
