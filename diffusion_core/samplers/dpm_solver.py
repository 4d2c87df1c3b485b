"""DPM-Solver++(2M) (Lu et al. 2022): a second-order multistep solver of the diffusion ODE
in data-prediction form, good in 10–25 steps.

With α_t = √ᾱ_t, σ_t = √(1−ᾱ_t), λ_t = log(α_t/σ_t) and h = λ_s − λ_t:
    first step:  z_s = (σ_s/σ_t) z_t − α_s (e^{−h} − 1) x̂0_t
    later steps: D = (1 + 1/(2r)) x̂0_t − 1/(2r) x̂0_prev,  r = h_prev / h
                 z_s = (σ_s/σ_t) z_t − α_s (e^{−h} − 1) D
Timesteps are spaced evenly in λ (so r = 1 wherever integer t allows).
The final step goes to σ = 0, where the update reduces to z_0 = x̂0 (first order, as is usual
for few steps).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import nn

from ..noise import predict_x0
from ..schedules import NoiseSchedule
from .base import SamplerStep, log_snr_spaced_timesteps, model_call


def dpm_solver_2m_steps(
    model: nn.Module,
    schedule: NoiseSchedule,
    z_T: torch.Tensor,
    generator: torch.Generator | None = None,
    steps: int = 20,
) -> Iterator[SamplerStep]:
    del generator  # deterministic solver: z_T is the only randomness
    T = schedule.T
    alpha_bars = schedule.alpha_bars.tolist()
    ts = log_snr_spaced_timesteps(alpha_bars, steps)

    def lam(ab: float) -> float:
        return 0.5 * (math.log(ab) - math.log1p(-ab))

    z = z_T
    x0_prev, h_prev = None, None
    for i, t in enumerate(ts):
        ab_t = alpha_bars[t]
        eps_hat = model_call(model, z, t, T)
        x0 = predict_x0(z, eps_hat, ab_t)
        yield SamplerStep(t, z, x0)
        if i + 1 == len(ts):
            z = x0
            break
        ab_s = alpha_bars[ts[i + 1]]
        sigma_t, sigma_s, alpha_s = (1 - ab_t) ** 0.5, (1 - ab_s) ** 0.5, ab_s**0.5
        h = lam(ab_s) - lam(ab_t)
        if x0_prev is None:
            d = x0
        else:
            r = h_prev / h
            d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_prev
        z = (sigma_s / sigma_t) * z - alpha_s * math.expm1(-h) * d
        x0_prev, h_prev = x0, h
    yield SamplerStep(0, z, z)
