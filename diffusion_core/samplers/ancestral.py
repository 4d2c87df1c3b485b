"""Algorithm 2: the report's ancestral sampler with σ_t² = β_t, written over the denoiser view.

The report's loop, z_T ~ N(0, I); for t = T..1:
    z ← (z − β_t/√(1−ᾱ_t) · g(z, t/T)) / √(1−β_t),  then  z ← z + √β_t · N(0, I)   (except at t = 1),
is, in x = z/√ᾱ_t with noise level σ_t (so β_t = 1 − ᾱ_t/ᾱ_{t−1} and ᾱ = 1/(1+σ²)):
    x ← x − (σ_t² − σ_{t−1}²)/σ_t · ε̂   (the posterior mean: DDIM's η = 1 step)
    x ← x + (√ᾱ_t/√ᾱ_{t−1}) · √(σ_t² − σ_{t−1}²) · N(0, I)   (√β_t in z_{t−1}: the forward step's own noise)
Like the report's loop it ends at z_0, on the schedule's own level ᾱ_0 = 1 − β_0: for the linear presets (β_0 = β1)
a trace of noise, σ_0 ≈ 0.01, is left in the samples; the few-step samplers end at σ = 0, on x̂0.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch

from diffusion_core.samplers.base import SamplerStep, seeded_noise
from diffusion_core.samplers.registry import register


def sample_ancestral(D, z_T: torch.Tensor, ts: Sequence[int], generator: torch.Generator) -> Iterator[SamplerStep]:
    """Frames of Algorithm 2 on every timestep ts = T..1."""
    sigmas = [D.sigma(t) for t in (*ts, 0)]
    x = D.from_z(z_T, sigmas[0])
    for i, t in enumerate(ts):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        x0, eps = D(x, sigma, t)
        yield SamplerStep(t, D.to_z(x, sigma), x0)
        x = x - (sigma**2 - sigma_next**2) / sigma * eps
        if t > 1:
            spread = D.scale(sigma) / D.scale(sigma_next) * math.sqrt(sigma**2 - sigma_next**2)
            x = x + spread * seeded_noise(x.shape, generator, x.device)
    z_0 = D.to_z(x, sigmas[-1])
    yield SamplerStep(0, z_0, z_0)


register("ancestral", "noise", sample_ancestral, order=0, all_steps=True,
         summary="the report's Algorithm 2: all T steps, σ_t² = β_t")
