"""Where a few-step sampler places its steps on a Gaussian process's noise levels.

With σ_t = √((1−ᾱ_t)/ᾱ_t) (the noise level of x = z/√ᾱ, so log SNR_t = −2·log σ_t):
    uniform   t evenly spaced from t_start down to 1 (DDIM's)
    log-snr   log σ evenly spaced (DPM-Solver's recommendation for small images)
    karras    σ_i = (σ_max^(1/ρ) + i/(n−1)·(σ_min^(1/ρ) − σ_max^(1/ρ)))^ρ, ρ = 7 by default (Karras et al. 2022):
              dense at low noise, where detail is decided
    edm       karras with ρ = 7 on EDM's own range σ ∈ [0.002, 80], cut to the schedule's
Targets are snapped to the schedule's integer timesteps, strictly decreasing (the networks were trained on
integer t). The σ-based spacings respect the schedule's valid range: they start where log SNR first reaches
LOG_SNR_MIN (a cosine schedule's β-capped tail carries no signal worth a step) and end at σ_1.
"""

from __future__ import annotations

import math

import torch

from diffusion_core.process.schedules import log_snr

SPACINGS = ("uniform", "log-snr", "karras", "edm")
EDM_SIGMA_MIN, EDM_SIGMA_MAX, EDM_RHO = 0.002, 80.0, 7.0


def sigma_of(alpha_bar: float) -> float:
    """σ = √((1−ᾱ)/ᾱ); 0 at ᾱ = 1."""
    return math.sqrt(max(1.0 - alpha_bar, 0.0) / alpha_bar)


# The few-step solvers start no noisier than this log-SNR. log(ᾱ/(1−ᾱ)) = −10.2 is ᾱ ≈ 3.7e-5, as noisy as the
# report's default schedule at t = T (−10.12), so every linear preset starts at T as before; the cosine
# schedule's last steps, where the 0.999 β cap drives log-SNR from −13 to −19.8, carry no signal worth a step.
LOG_SNR_MIN = -10.2


def spaced_timesteps(T: int, steps: int) -> list[int]:
    """`steps` integer timesteps from T down to 1, evenly spaced (the first is always T)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= T:
        raise ValueError(f"steps must be an integer between 1 and T={T}; got {steps!r}")
    # spacing (T−1)/(steps−1) ≥ 1, so the rounded values are strictly decreasing
    return torch.linspace(T, 1, steps).round().long().tolist()


def valid_start(alpha_bars: list[float], t_start: int, steps: int) -> int:
    """The largest t ≤ t_start (and ≥ steps) whose log SNR ≥ LOG_SNR_MIN; `steps` if none is."""
    return max([t for t in range(steps, t_start + 1) if log_snr(alpha_bars[t]) >= LOG_SNR_MIN], default=steps)


def snap(alpha_bars: list[float], sigmas: list[float], t_start: int) -> list[int]:
    """Integer timesteps in t_start..1 nearest (in log σ) to each target σ (descending), strictly decreasing
    and leaving room for the remaining ones."""
    log_sigma = [-math.inf] + [math.log(sigma_of(ab)) for ab in alpha_bars[1:]]  # increasing in t
    n, out = len(sigmas), []
    for i, target in enumerate(sigmas):
        goal = math.log(target)
        t = min(range(1, t_start + 1), key=lambda k: abs(log_sigma[k] - goal))
        upper = out[-1] - 1 if out else t_start
        out.append(min(max(t, n - i), upper))
    return out


def spaced_by(spacing: str, alpha_bars: list[float], t_start: int, steps: int, rho: float = 7.0) -> list[int]:
    """`steps` integer timesteps from (at most) t_start down to ≥ 1 placed by `spacing`; ValueError for a
    spacing it does not know, ρ ≤ 0 or a step count outside 1..t_start."""
    if spacing not in SPACINGS:
        raise ValueError(f"spacing must be one of {', '.join(SPACINGS)}; got {spacing!r}")
    if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not math.isfinite(rho) or rho <= 0:
        raise ValueError(f"rho (ρ of the Karras spacing) must be a number > 0; got {rho!r}")
    spaced_timesteps(t_start, steps)  # validates steps against t_start
    if spacing == "uniform":
        return spaced_timesteps(t_start, steps)
    start = valid_start(alpha_bars, t_start, steps)
    s_max = sigma_of(alpha_bars[start])
    s_min = min(s for s in (sigma_of(ab) for ab in alpha_bars[1:start + 1]) if s > 0)
    if spacing == "edm":
        s_max, s_min, rho = min(s_max, EDM_SIGMA_MAX), max(s_min, EDM_SIGMA_MIN), EDM_RHO
        if s_min >= s_max:
            raise ValueError(f"this schedule's noise levels σ ∈ [{s_min:.3g}, {s_max:.3g}] leave nothing of EDM's "
                             f"range [{EDM_SIGMA_MIN}, {EDM_SIGMA_MAX}]; use karras or log-snr")
    fractions = [i / (steps - 1) if steps > 1 else 0.0 for i in range(steps)]
    if spacing == "log-snr":
        sigmas = [math.exp(math.log(s_max) + f * (math.log(s_min) - math.log(s_max))) for f in fractions]
    else:  # karras, edm
        sigmas = [(s_max ** (1 / rho) + f * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho for f in fractions]
    return snap(alpha_bars, sigmas, start)
