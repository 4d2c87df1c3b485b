"""DPM-Solver++(2M) (Lu et al. 2022): a second-order multistep solver in data-prediction form,
good in 10–25 steps — of the diffusion ODE (deterministic) or of the reverse SDE (stochastic).

With α_t = √ᾱ_t, σ_t = √(1−ᾱ_t), λ_t = log(α_t/σ_t), h = λ_s − λ_t and x̂0 from g(z_t, t/T):
    D = x̂0_t on the first step; later D = x̂0_t + (x̂0_t − x̂0_prev)/(2r),  r = h_prev / h
    ODE:  z_s = (σ_s/σ_t) z_t − α_s (e^{−h} − 1) D
    SDE:  z_s = (σ_s/σ_t) e^{−h} z_t + α_s (1 − e^{−2h}) D + σ_s √(1 − e^{−2h}) · N(0, I)
The SDE solver adds fresh noise at every step as the ancestral sampler does (its first-order form
is DDIM with η = 1) and is second order, so it keeps the data's spread in few steps where DDIM
with η = 1 shrinks it. By default the timesteps are spaced evenly in λ (so r = 1 wherever integer t allows;
process/spacing.py), from T or, for schedules that end far noisier than the report's (cosine), from where
log SNR reaches LOG_SNR_MIN.
The final step goes to σ = 0, where both reduce to z_0 = x̂0 (first order, as is usual).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from diffusion_core.process.gaussian import predict_x0
from diffusion_core.process.schedules import NoiseSchedule, log_snr
from diffusion_core.samplers.base import SamplerStep, model_call, seeded_noise
from diffusion_core.samplers.registry import register


def dpm_solver_2m_steps(
    model: nn.Module,
    schedule: NoiseSchedule,
    z_T: torch.Tensor,
    generator: torch.Generator | None,
    ts: Sequence[int],
    stochastic: bool = False,
) -> Iterator[SamplerStep]:
    """Frames of DPM-Solver++(2M) on the decreasing timesteps `ts` (any spacing); stochastic=True: its SDE form,
    drawing noise from `generator`."""
    if stochastic and generator is None:
        raise ValueError("the stochastic solver needs a generator for its noise")
    T = schedule.T
    alpha_bars = schedule.alpha_bars.tolist()

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
        h = 0.5 * (log_snr(ab_s) - log_snr(ab_t))  # λ = ½·log SNR
        d = x0 if x0_prev is None else x0 + (x0 - x0_prev) / (2 * (h_prev / h))
        if stochastic:
            z = (sigma_s / sigma_t) * math.exp(-h) * z - alpha_s * math.expm1(-2 * h) * d
            z = z + sigma_s * (-math.expm1(-2 * h)) ** 0.5 * seeded_noise(z.shape, generator, z.device)
        else:
            z = (sigma_s / sigma_t) * z - alpha_s * math.expm1(-h) * d
        x0_prev, h_prev = x0, h
    yield SamplerStep(0, z, z)


def _run(stochastic: bool):
    def run(process, model, x_T, ts, generator):
        return dpm_solver_2m_steps(model, process.schedule, x_T, generator, ts, stochastic=stochastic)
    return run


register("dpm++2m", "noise", _run(False), order=2, default_steps=20, spacing="log-snr",
         summary="DPM-Solver++(2M): second-order ODE solver, good in 10–25 steps")
register("dpm++2m-sde", "noise", _run(True), order=3, default_steps=20, spacing="log-snr",
         summary="DPM-Solver++(2M) SDE: fresh noise every step like ancestral, in 20 steps")
