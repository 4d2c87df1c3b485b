"""Euler-ancestral in noise-level space (k-diffusion's sample_euler_ancestral with η = 1): from σ_i to σ_{i+1} it
steps deterministically down to σ_down and adds fresh noise σ_up, where σ_up = min(σ_{i+1},
σ_{i+1}·√((σ_i² − σ_{i+1}²)/σ_i²)) and σ_down = √(σ_{i+1}² − σ_up²): x ← x + (σ_down − σ_i)·ε̂ + σ_up·N(0, I).
On the same timesteps it is DDIM with η = 1; its default spacing is Karras ρ = 7."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from diffusion_core.samplers.base import SamplerStep, ancestral_step
from diffusion_core.samplers.registry import register


def sample_euler_ancestral(D, z_T: torch.Tensor, ts: Sequence[int],
                           generator: torch.Generator) -> Iterator[SamplerStep]:
    sigmas = D.sigmas(ts)
    x = D.from_z(z_T, sigmas[0])
    for i, t in enumerate(ts):
        x0, eps = D(x, sigmas[i], t)
        yield SamplerStep(t, D.to_z(x, sigmas[i]), x0)
        x = ancestral_step(x, eps, sigmas[i], sigmas[i + 1], generator)
    yield SamplerStep(0, x, x)


register("euler-a", "noise", sample_euler_ancestral, order=6,
         default_steps=20, spacing="karras", summary="Euler-ancestral: fresh noise at every step, first order")
