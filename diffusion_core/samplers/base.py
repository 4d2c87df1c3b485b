"""What every sampler yields, and helpers shared by the samplers."""

from __future__ import annotations

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
