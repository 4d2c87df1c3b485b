"""DPM-Solver++(2M) (Lu et al. 2022): a second-order multistep solver in data-prediction form, good in 10–25
steps — of the diffusion ODE (deterministic) or of the reverse SDE (stochastic) — over the denoiser view.

In x = z/√ᾱ with noise level σ (λ = log(α/σ_VP) = −log σ) and x̂0 = D(x; σ), h = λ_s − λ_t = log(σ_t/σ_s):
    D = x̂0_t on the first step; later D = x̂0_t + (x̂0_t − x̂0_prev)/(2r),  r = h_prev / h
    ODE:  x_s = (σ_s/σ_t) x_t − (e^{−h} − 1) D
    SDE:  x_s = (σ_s/σ_t) e^{−h} x_t + (1 − e^{−2h}) D + σ_s √(1 − e^{−2h}) · N(0, I)
(the paper's z-space updates divided by α_s = √ᾱ_s). The SDE solver adds fresh noise at every step as the
ancestral sampler does (its first-order form is DDIM with η = 1) and is second order, so it keeps the data's
spread in few steps where DDIM with η = 1 shrinks it. By default the timesteps are spaced evenly in λ (so r = 1
wherever integer t allows; process/spacing.py), from T or, for schedules that end far noisier than the report's
(cosine), from where log SNR reaches LOG_SNR_MIN.
The final step goes to σ = 0, where both reduce to x_0 = x̂0 (first order, as is usual).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch

from diffusion_core.samplers.base import SamplerStep, seeded_noise
from diffusion_core.samplers.registry import register


def sample_dpm_solver_2m(D, z_T: torch.Tensor, ts: Sequence[int], generator: torch.Generator | None, *,
                         stochastic: bool = False) -> Iterator[SamplerStep]:
    """Frames of DPM-Solver++(2M) on the decreasing timesteps `ts` (any spacing); stochastic=True: its SDE form,
    drawing noise from `generator`."""
    if stochastic and generator is None:
        raise ValueError("the stochastic solver needs a generator for its noise")
    sigmas = D.sigmas(ts)
    x = D.from_z(z_T, sigmas[0])
    x0_prev, h_prev = None, None
    for i, t in enumerate(ts):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        x0, _ = D(x, sigma, t)
        yield SamplerStep(t, D.to_z(x, sigma), x0)
        if sigma_next == 0:
            x = x0
            break
        h = math.log(sigma / sigma_next)
        d = x0 if x0_prev is None else x0 + (x0 - x0_prev) / (2 * (h_prev / h))
        if stochastic:
            x = (sigma_next / sigma) * math.exp(-h) * x - math.expm1(-2 * h) * d
            x = x + sigma_next * (-math.expm1(-2 * h)) ** 0.5 * seeded_noise(x.shape, generator, x.device)
        else:
            x = (sigma_next / sigma) * x - math.expm1(-h) * d
        x0_prev, h_prev = x0, h
    yield SamplerStep(0, x, x)


def sample_dpm_solver_2m_sde(D, z_T: torch.Tensor, ts: Sequence[int],
                             generator: torch.Generator) -> Iterator[SamplerStep]:
    """DPM-Solver++(2M)'s SDE form (see sample_dpm_solver_2m)."""
    return sample_dpm_solver_2m(D, z_T, ts, generator, stochastic=True)


register("dpm++2m", "noise", sample_dpm_solver_2m, order=2, default_steps=20, spacing="log-snr",
         summary="DPM-Solver++(2M): second-order ODE solver, good in 10–25 steps")
register("dpm++2m-sde", "noise", sample_dpm_solver_2m_sde, order=3, default_steps=20, spacing="log-snr",
         summary="DPM-Solver++(2M) SDE: fresh noise every step like ancestral, in 20 steps")
