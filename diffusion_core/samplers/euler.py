"""Euler on the probability-flow ODE in noise-level space (Karras et al. 2022, Algorithm 1):
x = z/√ᾱ, σ = √((1−ᾱ)/ᾱ), dx/dσ = ε̂ = (x − D(x; σ))/σ, so x_{i+1} = x_i + (σ_{i+1} − σ_i)·ε̂(x_i; σ_i).
First order; on the same timesteps it is DDIM with η = 0. Its default spacing is Karras ρ = 7."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import nn

from diffusion_core.process.gaussian import to_z
from diffusion_core.samplers.base import SamplerStep
from diffusion_core.samplers.registry import register


def euler_steps(process, model: nn.Module, z_T: torch.Tensor, ts: Sequence[int]) -> Iterator[SamplerStep]:
    D = process.denoiser(model)
    sigmas = [D.sigma(t) for t in ts] + [0.0]
    x = z_T * (1.0 + sigmas[0] ** 2) ** 0.5  # z_T ~ N(0, I) stands for z at ts[0]
    for i, t in enumerate(ts):
        x0, eps = D(x, sigmas[i], t)
        yield SamplerStep(t, to_z(x, sigmas[i]), x0)
        x = x + (sigmas[i + 1] - sigmas[i]) * eps
    yield SamplerStep(0, x, x)


def _run(process, model, x_T, ts, generator):
    return euler_steps(process, model, x_T, ts)


register("euler", "noise", _run, order=4, default_steps=20,
         spacing="karras", summary="Euler on the probability-flow ODE (first order)")
