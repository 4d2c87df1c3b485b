"""A predictor–corrector sampler (Song et al. 2021, score_sde): at each noise level a Langevin corrector step
    x ← x + ε_L·s + √(2ε_L)·N(0, I),  s = −ε̂(x; σ)/σ = ∇_x log p_σ(x),  ε_L = 2·(r·‖N‖/‖s‖)², r = SNR_TARGET
moves x toward the density at that level, then the Euler-ancestral predictor steps to the next level.
Two network evaluations a step (one on the first): NFE = 2N − 1."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from diffusion_core.samplers.base import SamplerStep, ancestral_step, seeded_noise
from diffusion_core.samplers.registry import register

SNR_TARGET = 0.16  # score_sde's signal-to-noise ratio r of a Langevin step


def sample_pc(D, z_T: torch.Tensor, ts: Sequence[int], generator: torch.Generator) -> Iterator[SamplerStep]:
    sigmas = D.sigmas(ts)
    x = D.from_z(z_T, sigmas[0])
    for i, t in enumerate(ts):
        if i > 0:  # corrector: one Langevin step at σ_i (step size from the norms, per image)
            _, eps = D(x, sigmas[i], t)
            score = -eps / sigmas[i]
            noise = seeded_noise(x.shape, generator, x.device)
            ratio = noise.flatten(1).norm(dim=1) / score.flatten(1).norm(dim=1).clamp_min(1e-12)
            step = (2 * (SNR_TARGET * ratio) ** 2).view(-1, *([1] * (x.dim() - 1)))
            x = x + step * score + (2 * step).sqrt() * noise
        x0, eps = D(x, sigmas[i], t)
        yield SamplerStep(t, D.to_z(x, sigmas[i]), x0)
        x = ancestral_step(x, eps, sigmas[i], sigmas[i + 1], generator)
    yield SamplerStep(0, x, x)


register("pc", "noise", sample_pc, order=7, default_steps=20,
         spacing="karras", nfe=lambda steps: 2 * steps - 1,
         summary="predictor–corrector: a Langevin corrector step at each level, then Euler-ancestral")
