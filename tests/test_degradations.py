"""Cold-diffusion degradations: identity at t = 0, measured strength growing with t, the report's
blur formula, strength schedules, batching, and clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from diffusion_core.process.degradations import (
    DEGRADATION_KINDS,
    GaussianBlur,
    degradation_from_config,
    make_degradation,
    preview_strip,
    strength,
)

SMALL_T = {"blur": 50, "cumulative-blur": 20, "mask": 40, "pixelate": 30, "fade": 20, "noise-blur": 50}


def images(n=3, seed=0):
    """Random images in data space [−0.5, 0.5] (continuous values, so block counts are exact)."""
    return torch.rand((n, 1, 28, 28), generator=torch.Generator().manual_seed(seed)) - 0.5


def high_frequency_energy(x: torch.Tensor) -> torch.Tensor:
    """Σ|X(f)|² over spatial frequencies above a quarter of the band (per image)."""
    f = torch.fft.fftfreq(x.shape[-1])
    radius = torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    spec = torch.fft.fft2(x.double()).abs() ** 2
    return (spec * (radius > 0.125)).sum(dim=(-1, -2, -3))


def degrade(d, x, t, seed=0):
    noise = d.draw_noise(tuple(x.shape), torch.Generator().manual_seed(seed))
    return d(x, t, noise)


@pytest.mark.parametrize("kind", DEGRADATION_KINDS)
def test_t0_is_the_identity_and_deterministic(kind):
    d = make_degradation(kind, SMALL_T[kind])
    x = images()
    assert torch.equal(degrade(d, x, 0), x)
    t = d.T // 2
    assert torch.equal(degrade(d, x, t, seed=3), degrade(d, x, t, seed=3))
    assert not torch.allclose(degrade(d, x, d.T), x, atol=1e-3)


def _strength_measure(kind, d, x):
    """Per kind, a measured severity that must not decrease with t (one number per t)."""
    out = []
    for t in range(d.T + 1):
        if kind in ("blur", "cumulative-blur"):
            out.append(-high_frequency_energy(d(x, t)).sum().item())  # blur removes high frequencies
        elif kind == "noise-blur":
            clean = d(x, t, torch.zeros_like(x))
            out.append(-high_frequency_energy(clean).sum().item())
        elif kind == "mask":
            out.append((d(x, t) == -0.5).float().mean().item())  # x is never exactly −0.5 (fill = black)
        elif kind == "pixelate":
            out.append(-float(len(torch.unique(d(x[:1], t)))))  # r_t² block values remain
        else:  # fade: remaining contrast
            out.append(-d(x, t).std().item())
    return out


@pytest.mark.parametrize("kind", DEGRADATION_KINDS)
def test_measured_strength_grows_monotonically_with_t(kind):
    d = make_degradation(kind, SMALL_T[kind])
    x = images(2)
    m = _strength_measure(kind, d, x)
    assert all(b >= a - 1e-6 * abs(a) for a, b in zip(m, m[1:], strict=False)), m
    coarse = m[:: max(1, d.T // 5)]
    if kind != "blur":  # the report's blur barely acts while σ_t < 0.3 (first ~6% of t); checked below
        assert all(b > a for a, b in zip(coarse, coarse[1:], strict=False)), coarse
    assert m[-1] > m[0]


def test_masked_fraction_goes_from_none_to_all():
    d = make_degradation("mask", 40, fill=0.0)
    x = images(1)
    label, frac = d.strength_curve()
    assert frac[0] == 0.0 and frac[-1] == 1.0
    assert (d(x, 40) == -0.5).all()


def test_pixelate_keeps_exactly_r_t_squared_blocks():
    d = make_degradation("pixelate", 30, min_size=4)
    x = images(1)
    r = d.resolution(28)
    assert r[0] == 28 and r[-1] == 4 and r == sorted(r, reverse=True)
    for t in (0, 7, 15, 30):
        assert len(torch.unique(d(x, t))) == r[t] ** 2


def test_fade_contrast_follows_one_minus_s():
    d = make_degradation("fade", 20, schedule="cosine", target=0.1307)
    x = images(2)
    for t in (0, 5, 13, 20):
        s = 1 - math.cos(math.pi / 2 * t / 20)
        y = d(x, t)
        assert torch.allclose(y, (1 - s) * x + s * (0.1307 - 0.5), atol=1e-6)
    assert torch.allclose(d(x, 20), torch.full_like(x, 0.1307 - 0.5))


def test_noise_blur_adds_noise_that_grows_with_s_t():
    d = make_degradation("noise-blur", 50, noise_std=0.2)
    x = images(2)
    eps = d.draw_noise(tuple(x.shape), torch.Generator().manual_seed(0))
    blur = make_degradation("blur", 50)
    for t in (0, 10, 25, 50):
        assert torch.allclose(d(x, t, eps) - blur(x, t), 0.2 * (t / 50) * eps, atol=1e-5)
    with pytest.raises(ValueError, match="needs noise"):
        d(x, 10)


def test_report_blur_sigma_formula_and_defaults():
    d = make_degradation("blur")
    assert d.T == 500 and d.schedule == "linear"
    t = torch.arange(501, dtype=torch.float64)
    assert torch.allclose(d.sigmas, 0.02 + 0.01 * t, atol=1e-12)
    label, values = d.strength_curve()
    assert "σ" in label and values[500] == pytest.approx(5.02)
    # the report's blur keeps removing detail: strictly over t = 50, 100, …, 500
    x = images(2)
    hf = [high_frequency_energy(d(x, t)).sum().item() for t in range(50, 501, 50)]
    assert all(b < a for a, b in zip(hf, hf[1:], strict=False))


@pytest.mark.parametrize("t", [40, 250, 500])
def test_blur_matches_an_independent_gaussian_filter(t):
    """scipy's gaussian_filter with mirror padding and radius 27 is the same 55-tap kernel."""
    d = make_degradation("blur")
    x = images(1)
    sigma = 0.02 + 0.01 * t
    ref = ndimage.gaussian_filter(x[0, 0].double().numpy(), sigma, mode="mirror", truncate=27 / sigma)
    assert np.allclose(d(x, t)[0, 0].numpy(), ref, atol=1e-5)


def test_default_kernel_covers_the_whole_image():
    """Every output pixel depends on every input pixel (the blur's row operator has no zeros);
    a 5-tap kernel reaches only 2 pixels away."""
    A = make_degradation("blur").operator(28)[500]
    assert (A > 0).all()
    B = make_degradation("blur", kernel_size=5).operator(28)[500]
    assert B[27, 0] == 0 and (B[27, 25:] > 0).all()
    assert torch.allclose(A.sum(dim=1), torch.ones(28))  # reflect padding keeps brightness


def test_cumulative_blur_is_the_kernel_applied_t_times():
    d = make_degradation("cumulative-blur", 10, sigma=1.0, kernel_size=5)
    one = make_degradation("cumulative-blur", 1, sigma=1.0, kernel_size=5)
    x = images(1)
    y = x
    for _ in range(7):
        y = one(y, 1)
    assert torch.allclose(d(x, 7), y, atol=1e-6)
    assert d.applications == list(range(11))


def test_strength_schedules():
    u = torch.linspace(0, 1, 101, dtype=torch.float64)
    for name in ("linear", "cosine", "quadratic", "sqrt"):
        s = strength(name, u)
        assert s[0] == 0 and s[-1] == pytest.approx(1.0)
        assert (s[1:] > s[:-1]).all()
    assert float(strength("cosine", 0.5)) == pytest.approx(1 - math.cos(math.pi / 4))
    assert float(strength("quadratic", 0.5)) == pytest.approx(0.25)
    assert float(strength("sqrt", 0.25)) == pytest.approx(0.5)
    d = make_degradation("blur", 500, schedule="quadratic")
    assert float(d.sigmas[250]) == pytest.approx(0.02 + 5.0 * 0.25)


def test_per_image_timesteps_match_single_calls():
    d = make_degradation("noise-blur", 30)
    x = images(3)
    eps = d.draw_noise(tuple(x.shape), torch.Generator().manual_seed(1))
    t = torch.tensor([0, 12, 30])
    batched = d(x, t, eps)
    for i in range(3):
        assert torch.allclose(batched[i:i + 1], d(x[i:i + 1], int(t[i]), eps[i:i + 1]), atol=1e-6)


@pytest.mark.parametrize("kind", DEGRADATION_KINDS)
def test_config_round_trip(kind):
    d = make_degradation(kind, SMALL_T[kind], schedule="cosine")
    again = degradation_from_config(d.config())
    assert again.config() == d.config()
    x = images(1)
    assert torch.equal(degrade(again, x, d.T // 2), degrade(d, x, d.T // 2))


def test_preview_strip_is_the_reports_figure_6():
    d = make_degradation("blur")
    x = images(1)[0]
    ts, frames = preview_strip(d, x)
    assert ts == list(range(0, 501, 50))
    assert frames.shape == (11, 1, 28, 28)
    assert torch.equal(frames[0], x)
    assert torch.allclose(frames[4], d(x[None], 200)[0])


@pytest.mark.parametrize(("kind", "kw", "words"), [
    ("sharpen", {}, "degradation kind must be one of"),
    ("blur", {"T": 0}, "T must be an integer between 1"),
    ("blur", {"schedule": "exp"}, "schedule must be one of"),
    ("blur", {"sigma_min": -1.0}, "sigma_min must be a number"),
    ("blur", {"sigma_min": 3.0, "sigma_max": 2.0}, "sigma_max must be ≥ sigma_min"),
    ("blur", {"kernel_size": 4}, "kernel_size must be an odd integer"),
    ("blur", {"radius": 3}, "unknown parameter(s) ['radius']"),
    ("cumulative-blur", {"sigma": 0}, "sigma must be a number"),
    ("mask", {"fill": 2}, "fill must be a number with 0.0 ≤ fill ≤ 1.0"),
    ("pixelate", {"min_size": 0}, "min_size must be an integer between 1"),
    ("fade", {"target": "mean"}, "target must be a number"),
    ("noise-blur", {"noise_std": 0.0}, "noise_std must be a number with 0.0 < noise_std"),
])
def test_bad_parameters_give_clear_errors(kind, kw, words):
    with pytest.raises(ValueError) as info:
        make_degradation(kind, **kw)
    assert words in str(info.value)


def test_bad_calls_give_clear_errors():
    d = make_degradation("blur", 10)
    x = images(2)
    with pytest.raises(ValueError, match="t must be between 0 and T=10"):
        d(x, 11)
    with pytest.raises(ValueError, match="one per image"):
        d(x, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="N×C×H×W"):
        d(x[0], 1)
    with pytest.raises(ValueError, match="kernel_size must be an odd integer between 1 and 55"):
        GaussianBlur(10, kernel_size=101)
    with pytest.raises(ValueError, match="choose a smaller kernel_size"):  # 55 taps need a side of ≥ 28
        GaussianBlur(10, kernel_size=55)(torch.zeros(1, 1, 14, 14), 5)
    with pytest.raises(ValueError, match='"kind"'):
        degradation_from_config({"T": 10})
