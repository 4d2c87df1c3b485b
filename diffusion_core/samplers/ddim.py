"""DDIM (Song et al. 2021) on a sub-sequence of timesteps, with stochasticity η.

x̂0 = (z_t − √(1−ᾱ_t) ε̂) / √ᾱ_t
σ = η · √((1−ᾱ_s)/(1−ᾱ_t)) · √(1 − ᾱ_t/ᾱ_s)
z_s = √ᾱ_s x̂0 + √(1−ᾱ_s−σ²) ε̂ + σ · N(0, I)
The last step goes to ᾱ = 1, i.e. returns x̂0. η = 0 is deterministic; η = 1 is DDPM-like.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import nn

from diffusion_core.process.gaussian import predict_x0
from diffusion_core.process.knobs import Knob
from diffusion_core.process.schedules import NoiseSchedule
from diffusion_core.samplers.base import SamplerStep, model_call, seeded_noise
from diffusion_core.samplers.registry import register


def ddim_steps(
    model: nn.Module,
    schedule: NoiseSchedule,
    z_T: torch.Tensor,
    generator: torch.Generator,
    ts: Sequence[int],
    eta: float = 0.0,
) -> Iterator[SamplerStep]:
    """Frames of DDIM on the decreasing timesteps `ts` (any spacing; DDIM's own is uniform in t)."""
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be between 0 and 1; got {eta}")
    T = schedule.T
    alpha_bars = schedule.alpha_bars.tolist()
    z = z_T
    for i, t in enumerate(ts):
        ab_t = alpha_bars[t]
        ab_s = alpha_bars[ts[i + 1]] if i + 1 < len(ts) else 1.0
        eps_hat = model_call(model, z, t, T)
        x0 = predict_x0(z, eps_hat, ab_t)
        yield SamplerStep(t, z, x0)
        sigma = eta * ((1 - ab_s) / (1 - ab_t)) ** 0.5 * (1 - ab_t / ab_s) ** 0.5
        z = ab_s**0.5 * x0 + max(1 - ab_s - sigma**2, 0.0) ** 0.5 * eps_hat
        if sigma > 0:
            z = z + sigma * seeded_noise(z.shape, generator, z.device)
    yield SamplerStep(0, z, z)


def _run(process, model, x_T, ts, generator, *, eta: float):
    return ddim_steps(model, process.schedule, x_T, generator, ts, eta)


ETA = Knob("eta", "DDIM η", 0.0, 1.0, help="0: deterministic DDIM; 1: DDPM-like noise", symbol="η")
register("ddim", "noise", _run, order=1, default_steps=50, knobs=(ETA,),
         summary="DDIM: deterministic (η = 0) to DDPM-like (η = 1) on a subset of steps")


def ddim_inversion(model: nn.Module, schedule: NoiseSchedule, x0: torch.Tensor, ts: Sequence[int]) -> torch.Tensor:
    """DDIM run backwards (η = 0, the probability-flow ODE by Euler steps): clean images x0 to z at the largest
    of the increasing timesteps `ts`, so that ddim_steps on reversed(ts) from it returns (close to) x0:
        z_t = √ᾱ_t·x̂0 + √(1−ᾱ_t)·ε̂,  x̂0 and ε̂ from the previous state (the first step reads ε̂ at t_1)."""
    if not ts or any(b <= a for a, b in zip(ts, ts[1:], strict=False)) or ts[0] < 1 or ts[-1] > schedule.T:
        raise ValueError(f"inversion needs increasing timesteps in 1..T = {schedule.T}; got {list(ts)[:5]}…")
    alpha_bars = schedule.alpha_bars.tolist()
    z, t_prev = x0.float(), 0
    for t in ts:
        ab_prev, ab_t = (1.0 if t_prev == 0 else alpha_bars[t_prev]), alpha_bars[t]
        eps_hat = model_call(model, z, t if t_prev == 0 else t_prev, schedule.T)
        x0_hat = (z - (1 - ab_prev) ** 0.5 * eps_hat) / ab_prev**0.5
        z = ab_t**0.5 * x0_hat + (1 - ab_t) ** 0.5 * eps_hat
        t_prev = t
    return z
