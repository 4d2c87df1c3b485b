"""Euler-ancestral in noise-level space (k-diffusion's sample_euler_ancestral with η = 1): from σ_i to σ_{i+1} it
steps deterministically down to σ_down and adds fresh noise σ_up, where σ_up = min(σ_{i+1},
σ_{i+1}·√((σ_i² − σ_{i+1}²)/σ_i²)) and σ_down = √(σ_{i+1}² − σ_up²): x ← x + (σ_down − σ_i)·ε̂ + σ_up·N(0, I)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from diffusion_core.process.gaussian import to_z
from diffusion_core.samplers.base import SamplerStep, seeded_noise
from diffusion_core.samplers.registry import register


def ancestral_levels(sigma: float, sigma_next: float) -> tuple[float, float]:
    """(σ_down, σ_up) of one ancestral step from σ to σ_next."""
    if sigma_next == 0:
        return 0.0, 0.0
    sigma_up = min(sigma_next, sigma_next * math.sqrt((sigma**2 - sigma_next**2) / sigma**2))
    return math.sqrt(sigma_next**2 - sigma_up**2), sigma_up


def ancestral_step(x: torch.Tensor, eps: torch.Tensor, sigma: float, sigma_next: float,
                   generator: torch.Generator) -> torch.Tensor:
    """x at σ_next: the deterministic step down to σ_down, then fresh noise σ_up·N(0, I)."""
    sigma_down, sigma_up = ancestral_levels(sigma, sigma_next)
    x = x + (sigma_down - sigma) * eps
    return x + sigma_up * seeded_noise(x.shape, generator, x.device) if sigma_up > 0 else x


def euler_ancestral_steps(process, model: nn.Module, z_T: torch.Tensor, ts: Sequence[int],
                          generator: torch.Generator) -> Iterator[SamplerStep]:
    D = process.denoiser(model)
    sigmas = [D.sigma(t) for t in ts] + [0.0]
    x = z_T * (1.0 + sigmas[0] ** 2) ** 0.5
    for i, t in enumerate(ts):
        x0, eps = D(x, sigmas[i], t)
        yield SamplerStep(t, to_z(x, sigmas[i]), x0)
        x = ancestral_step(x, eps, sigmas[i], sigmas[i + 1], generator)
    yield SamplerStep(0, x, x)


register("euler-a", "noise", euler_ancestral_steps, order=6,
         default_steps=20, spacing="karras", summary="Euler-ancestral: fresh noise at every step, first order")
