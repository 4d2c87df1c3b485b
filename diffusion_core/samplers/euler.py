"""Euler on the probability-flow ODE in noise-level space (Karras et al. 2022, Algorithm 1):
x = z/√ᾱ, σ = √((1−ᾱ)/ᾱ), dx/dσ = ε̂ = (x − D(x; σ))/σ, so x_{i+1} = x_i + (σ_{i+1} − σ_i)·ε̂(x_i; σ_i).
First order; on the same timesteps it is DDIM with η = 0. Its default spacing is Karras ρ = 7."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from diffusion_core.samplers.base import SamplerStep
from diffusion_core.samplers.registry import register


def sample_euler(D, z_T: torch.Tensor, ts: Sequence[int], generator: torch.Generator) -> Iterator[SamplerStep]:
    sigmas = D.sigmas(ts)
    x = D.from_z(z_T, sigmas[0])  # z_T ~ N(0, I) stands for z at ts[0]
    for i, t in enumerate(ts):
        x0, eps = D(x, sigmas[i], t)
        yield SamplerStep(t, D.to_z(x, sigmas[i]), x0)
        x = x + (sigmas[i + 1] - sigmas[i]) * eps
    yield SamplerStep(0, x, x)


register("euler", "noise", sample_euler, order=4, default_steps=20,
         spacing="karras", summary="Euler on the probability-flow ODE (first order)")
