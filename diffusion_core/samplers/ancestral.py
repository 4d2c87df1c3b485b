"""Algorithm 2: the report's ancestral sampler with σ_t² = β_t.

z_T ~ N(0, I); for t = T..1:
    z ← (z − β_t/√(1−ᾱ_t) · g(z, t/T)) / √(1−β_t)
    z ← z + √β_t · N(0, I)   (except at t = 1)
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from diffusion_core.process.gaussian import predict_x0
from diffusion_core.process.schedules import NoiseSchedule
from diffusion_core.samplers.base import SamplerStep, model_call, seeded_noise
from diffusion_core.samplers.registry import register


def ancestral_steps(
    model: nn.Module, schedule: NoiseSchedule, z_T: torch.Tensor, generator: torch.Generator
) -> Iterator[SamplerStep]:
    T = schedule.T
    betas = schedule.betas.tolist()
    alpha_bars = schedule.alpha_bars.tolist()
    z = z_T
    for t in range(T, 0, -1):
        beta_t, ab_t = betas[t], alpha_bars[t]
        eps_hat = model_call(model, z, t, T)
        yield SamplerStep(t, z, predict_x0(z, eps_hat, ab_t))
        z = (z - beta_t / (1.0 - ab_t) ** 0.5 * eps_hat) / (1.0 - beta_t) ** 0.5
        if t > 1:
            z = z + beta_t**0.5 * seeded_noise(z.shape, generator, z.device)
    yield SamplerStep(0, z, z)


def _run(process, model, x_T, ts, generator):
    return ancestral_steps(model, process.schedule, x_T, generator)


register("ancestral", "noise", _run, order=0, all_steps=True,
         summary="the report's Algorithm 2: all T steps, σ_t² = β_t")
