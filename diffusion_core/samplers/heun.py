"""Heun's method on the probability-flow ODE, with EDM's optional "churn" (Karras et al. 2022, Algorithm 2):
in x = z/√ᾱ and σ = √((1−ᾱ)/ᾱ), before each step noise raises σ_i to σ̂ = σ_i(1 + γ), γ = min(S_churn/N, √2 − 1),
x̂ = x + √(σ̂² − σ_i²)·ε; then with d = ε̂(x̂; σ̂) the Euler guess x' = x̂ + (σ_{i+1} − σ̂)·d is corrected by the
slope there, x_{i+1} = x̂ + (σ_{i+1} − σ̂)·(d + ε̂(x'; σ_{i+1}))/2 (not on the last step, to σ = 0).
Second order: 2N − 1 network evaluations for N steps. S_churn = 0 (default): the deterministic ODE."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch

from diffusion_core.process.knobs import Knob
from diffusion_core.samplers.base import SamplerStep, seeded_noise
from diffusion_core.samplers.registry import register

MAX_CHURN = 100.0


CHURN = Knob("churn", "Churn (S_churn)", 0.0, MAX_CHURN, step=1.0,
             help="noise added back before each Heun step (EDM); 0: the deterministic ODE", what="Heun's S_churn")


def sample_heun(D, z_T: torch.Tensor, ts: Sequence[int], generator: torch.Generator, *,
                churn: float = 0.0) -> Iterator[SamplerStep]:
    CHURN.check(churn)
    sigmas = D.sigmas(ts)
    gamma = min(churn / len(ts), math.sqrt(2) - 1)
    x = D.from_z(z_T, sigmas[0])
    for i, t in enumerate(ts):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        sigma_hat = sigma * (1 + gamma)
        if gamma > 0:
            x = x + math.sqrt(sigma_hat**2 - sigma**2) * seeded_noise(x.shape, generator, x.device)
        x0, d = D(x, sigma_hat, None if gamma > 0 else t)
        yield SamplerStep(t, D.to_z(x, sigma_hat), x0)
        x_euler = x + (sigma_next - sigma_hat) * d
        if sigma_next > 0:
            _, d_next = D(x_euler, sigma_next, ts[i + 1])
            x = x + (sigma_next - sigma_hat) * (d + d_next) / 2
        else:
            x = x_euler
    yield SamplerStep(0, x, x)


register("heun", "noise", sample_heun, order=5, knobs=(CHURN,),
         default_steps=18, spacing="karras", nfe=lambda steps: 2 * steps - 1,
         summary="Heun (EDM): second order, 2 network calls a step; churn adds noise back")
