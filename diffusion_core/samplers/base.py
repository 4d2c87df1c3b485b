"""What every sampler yields, and helpers shared by the samplers."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class SamplerStep:
    """One frame of a reverse trajectory: the state z_t and the model's x̂0 from it.

    The last frame has t = 0 and z = x̂0 = the final sample.
    """

    t: int
    z: torch.Tensor
    x0_hat: torch.Tensor


def seeded_noise(shape: tuple[int, ...], generator: torch.Generator, device: torch.device | str) -> torch.Tensor:
    """N(0, I) drawn on the CPU from `generator`, then moved: the same seed gives the same
    numbers on every device."""
    return torch.randn(shape, generator=generator).to(device)


def model_call(model: nn.Module, z: torch.Tensor, t: int, T: int) -> torch.Tensor:
    """g(z, t/T) for a batch at one timestep, returned in float32."""
    tt = torch.full((z.shape[0],), t / T, device=z.device, dtype=torch.float32)
    return model(z, tt).float()


def spaced_timesteps(T: int, steps: int) -> list[int]:
    """`steps` integer timesteps from T down to 1, evenly spaced (the first is always T)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= T:
        raise ValueError(f"steps must be an integer between 1 and T={T}; got {steps!r}")
    # spacing (T−1)/(steps−1) ≥ 1, so the rounded values are strictly decreasing
    return torch.linspace(T, 1, steps).round().long().tolist()


# λ_min: the few-step solvers start no noisier than this. ½·log(ᾱ/(1−ᾱ)) = −5.1 is ᾱ ≈ 3.7e-5, as noisy as
# the report's default schedule at t = T (λ_T = −5.06), so every linear preset starts at T as before; the
# cosine schedule's last steps, where the 0.999 β cap drives λ from −6.5 to −9.9, carry no signal worth a step.
LOG_SNR_MIN = -5.1


def half_log_snr(alpha_bar: float) -> float:
    """λ = log(α/σ) = ½·log(ᾱ/(1−ᾱ)) with α = √ᾱ, σ = √(1−ᾱ); +∞ where ᾱ = 1 (t = 0 of the cosine schedule)."""
    if alpha_bar >= 1.0:
        return math.inf
    return 0.5 * (math.log(alpha_bar) - math.log1p(-alpha_bar))


def log_snr_spaced_timesteps(alpha_bars: list[float], steps: int) -> list[int]:
    """`steps` integer timesteps from t_start down to 1 whose λ_t are as evenly spaced as integer t
    allows (DPM-Solver's recommended spacing for small images).

    t_start = T unless λ_T < LOG_SNR_MIN; then the largest t with λ_t ≥ LOG_SNR_MIN (z_T ~ N(0, I)
    stands for z at t_start, as pure noise as the report's own z_T)."""
    T = len(alpha_bars) - 1
    spaced_timesteps(T, steps)  # same validation
    lam = [math.inf] + [half_log_snr(ab) for ab in alpha_bars[1:]]  # decreasing in t; t = 0 is never a step
    t_start = max([t for t in range(steps, T + 1) if lam[t] >= LOG_SNR_MIN], default=steps)
    lam_hi = lam[1] if math.isfinite(lam[1]) else max(v for v in lam if math.isfinite(v))
    out: list[int] = []
    for i in range(steps):
        target = lam[t_start] + (lam_hi - lam[t_start]) * (i / (steps - 1) if steps > 1 else 0.0)
        t = min(range(1, t_start + 1), key=lambda k: abs(lam[k] - target))
        upper = out[-1] - 1 if out else t_start
        t = min(max(t, steps - i), upper)  # strictly decreasing, leaving room for the remaining steps
        out.append(t)
    return out
