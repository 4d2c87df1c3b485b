"""A flow model's own samplers (process/flow.py), over its view F: the velocity v̂ = F.velocity(z, k) at t = k/T,
integrating dz/dt = v from t = 1 (pure noise) down to 0, with x̂0 = z − t·v̂ shown at each step:
    flow-euler   z ← z + (t' − t)·v̂(z, t)                                      (first order; N network calls)
    flow-heun    z' = z + (t' − t)·v̂(z, t);  z ← z + (t' − t)·(v̂(z, t) + v̂(z', t'))/2
                 (second order; the last step, to t = 0, is Euler: 2N − 1 calls)
    flow-sde     the reverse SDE with the same marginals, diffusion g(t)² = 2γ·t:
                 z ← z − h·(v̂ + γ·ε̂) + √(2γ·t·h)·N(0, I),  h = t − t',  ε̂ = z + (1 − t)·v̂
                 (score ∇log p_t = −ε̂/t; γ = 0 is flow-euler; the last step lands on x̂0)
Their default spacing is uniform in t. Every σ-space noise sampler also runs on a flow model, through F as a
denoiser (x̂0 and ε̂ at σ = t/(1 − t)).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch

from diffusion_core.process.knobs import Knob
from diffusion_core.samplers.base import SamplerStep, seeded_noise
from diffusion_core.samplers.registry import register

GAMMA = Knob("flow_noise", "SDE noise γ", 0.0, 2.0, default=1.0, step=0.1, symbol="γ",
             help="the reverse SDE's diffusion g(t)² = 2γ·t; 0: the ODE (flow-euler)", what="flow-sde's γ")


def _times(F, ts: Sequence[int]) -> list[float]:
    """t at each step, then 0."""
    return [F.time(k) for k in ts] + [0.0]


def sample_flow_euler(F, z_T: torch.Tensor, ts: Sequence[int], generator: torch.Generator) -> Iterator[SamplerStep]:
    times, z = _times(F, ts), z_T
    for i, k in enumerate(ts):
        v = F.velocity(z, k)
        yield SamplerStep(k, z, z - times[i] * v)
        z = z + (times[i + 1] - times[i]) * v
    yield SamplerStep(0, z, z)


def sample_flow_heun(F, z_T: torch.Tensor, ts: Sequence[int], generator: torch.Generator) -> Iterator[SamplerStep]:
    times, z = _times(F, ts), z_T
    for i, k in enumerate(ts):
        t, t_next = times[i], times[i + 1]
        v = F.velocity(z, k)
        yield SamplerStep(k, z, z - t * v)
        z_euler = z + (t_next - t) * v
        z = z + (t_next - t) * (v + F.velocity(z_euler, ts[i + 1])) / 2 if t_next > 0 else z_euler
    yield SamplerStep(0, z, z)


def sample_flow_sde(F, z_T: torch.Tensor, ts: Sequence[int], generator: torch.Generator, *,
                    flow_noise: float = 1.0) -> Iterator[SamplerStep]:
    gamma = GAMMA.check(flow_noise)
    times, z = _times(F, ts), z_T
    for i, k in enumerate(ts):
        t, t_next = times[i], times[i + 1]
        v = F.velocity(z, k)
        x0 = z - t * v
        yield SamplerStep(k, z, x0)
        if t_next == 0:
            z = x0
            break
        h = t - t_next
        eps = z + (1.0 - t) * v
        z = z - h * (v + gamma * eps)
        if gamma > 0:
            z = z + math.sqrt(2.0 * gamma * t * h) * seeded_noise(z.shape, generator, z.device)
    yield SamplerStep(0, z, z)


register("flow-euler", "flow", sample_flow_euler, order=0, default_steps=20,
         summary="Euler on the flow's ODE dz/dt = v, from t = 1 to 0 (first order)")
register("flow-heun", "flow", sample_flow_heun, order=1, default_steps=10, nfe=lambda steps: 2 * steps - 1,
         summary="Heun on the flow's ODE: second order, 2 network calls a step")
register("flow-sde", "flow", sample_flow_sde, order=2, default_steps=40, knobs=(GAMMA,),
         summary="the flow's reverse SDE (same marginals, fresh noise each step; γ = 0 is the ODE)")
