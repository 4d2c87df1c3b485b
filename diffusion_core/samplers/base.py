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


def log_snr_spaced_timesteps(alpha_bars: list[float], steps: int) -> list[int]:
    """`steps` integer timesteps from T down to 1 whose λ_t = ½·log(ᾱ_t/(1−ᾱ_t)) are as evenly
    spaced as integer t allows (DPM-Solver's recommended spacing for small images)."""
    T = len(alpha_bars) - 1
    spaced_timesteps(T, steps)  # same validation
    lam = [0.5 * (math.log(ab) - math.log1p(-ab)) for ab in alpha_bars]  # increasing as t decreases
    out: list[int] = []
    for i in range(steps):
        target = lam[T] + (lam[1] - lam[T]) * (i / (steps - 1) if steps > 1 else 0.0)
        t = min(range(1, T + 1), key=lambda k: abs(lam[k] - target))
        upper = out[-1] - 1 if out else T
        t = min(max(t, steps - i), upper)  # strictly decreasing, leaving room for the remaining steps
        out.append(t)
    return out
