"""The Gaussian forward process and Algorithm 1's loss.

z_t = √ᾱ_t · x + √(1 − ᾱ_t) · ε,   loss = ‖ε − g(z_t, t/T)‖².
"""

from __future__ import annotations

import torch
from torch import nn

from diffusion_core.process.schedules import NoiseSchedule


def q_sample(schedule: NoiseSchedule, x: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """z_t = √ᾱ_t x + √(1−ᾱ_t) ε for integer timesteps t (shape [B])."""
    ab = schedule.alpha_bars.to(x.device)[t].view(-1, *([1] * (x.dim() - 1)))
    return ab.sqrt() * x + (1.0 - ab).sqrt() * eps


def predict_x0(z_t: torch.Tensor, eps_hat: torch.Tensor, alpha_bar_t: float) -> torch.Tensor:
    """x̂0 = (z_t − √(1−ᾱ_t) ε̂) / √ᾱ_t."""
    return (z_t - (1.0 - alpha_bar_t) ** 0.5 * eps_hat) / alpha_bar_t**0.5


def ddpm_loss(
    model: nn.Module, schedule: NoiseSchedule, x: torch.Tensor, generator: torch.Generator | None = None,
    shard: slice = slice(None), y: torch.Tensor | None = None,
) -> torch.Tensor:
    """Algorithm 1: t ~ U{1..T}, ε ~ N(0, I), mean ‖ε − g(z_t, t/T)‖² (‖ε − g(z_t, t/T, y)‖² with
    class labels y for a class-conditional denoiser).

    t and ε are drawn for the whole batch x; the loss is taken over x[shard] (one rank's part
    of a distributed global batch)."""
    T = schedule.T
    t = torch.randint(1, T + 1, (x.shape[0],), generator=generator).to(x.device)[shard]
    eps = torch.randn(x.shape, generator=generator).to(x.device)[shard]
    x = x[shard]
    z_t = q_sample(schedule, x, t, eps)
    eps_hat = model(z_t, t.float() / T) if y is None else model(z_t, t.float() / T, y[shard])
    return torch.mean((eps - eps_hat.float()) ** 2)
