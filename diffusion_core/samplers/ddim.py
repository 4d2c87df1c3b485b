"""DDIM (Song et al. 2021) on a sub-sequence of timesteps, with stochasticity η, over the denoiser view.

In z-space, with σ_η = η · √((1−ᾱ_s)/(1−ᾱ_t)) · √(1 − ᾱ_t/ᾱ_s):
    z_s = √ᾱ_s x̂0 + √(1−ᾱ_s−σ_η²) ε̂ + σ_η · N(0, I).
Divided by √ᾱ_s (x = z/√ᾱ, σ² = (1−ᾱ)/ᾱ) this is the ancestral step x_s = x̂0 + σ_down ε̂ + σ_up N(0, I) with
    σ_up = η · σ_s · √((σ_t² − σ_s²)/σ_t²),  σ_down = √(σ_s² − σ_up²)
(samplers/base.py ancestral_levels). The last step goes to σ = 0, i.e. returns x̂0. η = 0 is deterministic (Euler
on the probability-flow ODE); η = 1 draws DDPM's posterior variance.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from diffusion_core.process.knobs import Knob
from diffusion_core.samplers.base import SamplerStep, ancestral_step
from diffusion_core.samplers.registry import register

ETA = Knob("eta", "DDIM η", 0.0, 1.0, help="0: deterministic DDIM; 1: DDPM-like noise", symbol="η")


def sample_ddim(D, z_T: torch.Tensor, ts: Sequence[int], generator: torch.Generator, *,
                eta: float = 0.0) -> Iterator[SamplerStep]:
    """Frames of DDIM on the decreasing timesteps `ts` (any spacing; DDIM's own is uniform in t)."""
    ETA.check(eta)
    sigmas = D.sigmas(ts)
    x = D.from_z(z_T, sigmas[0])
    for i, t in enumerate(ts):
        x0, eps = D(x, sigmas[i], t)
        yield SamplerStep(t, D.to_z(x, sigmas[i]), x0)
        x = ancestral_step(x, eps, sigmas[i], sigmas[i + 1], generator, eta)
    yield SamplerStep(0, x, x)


register("ddim", "noise", sample_ddim, order=1, default_steps=50, knobs=(ETA,),
         summary="DDIM: deterministic (η = 0) to DDPM-like (η = 1) on a subset of steps")


def ddim_inversion(D, x0: torch.Tensor, ts: Sequence[int]) -> torch.Tensor:
    """DDIM run backwards (η = 0, the probability-flow ODE by Euler steps up in σ): clean images x0 to z at the
    largest of the increasing timesteps `ts`, so that sample_ddim on reversed(ts) from it returns (close to) x0:
        x_t = x_prev + (σ_t − σ_prev)·ε̂(x_prev; σ_prev),  starting at x = x0, σ = 0 (where ε̂ is read at t_1)."""
    if not ts or any(b <= a for a, b in zip(ts, ts[1:], strict=False)) or ts[0] < 1 or ts[-1] > D.T:
        raise ValueError(f"inversion needs increasing timesteps in 1..T = {D.T}; got {list(ts)[:5]}…")
    x, sigma_prev, t_prev = x0.float(), 0.0, ts[0]
    for t in ts:
        _, eps = D(x, sigma_prev, t_prev)
        sigma = D.sigma(t)
        x = x + (sigma - sigma_prev) * eps
        sigma_prev, t_prev = sigma, t
    return D.to_z(x, sigma_prev)
