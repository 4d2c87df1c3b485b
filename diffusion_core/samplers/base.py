"""What every sampler is and yields, and helpers shared by the samplers and the sampling loop.

A sampler is a `Sampler`: a name, the process type it runs on, how it places its timesteps, the knobs it takes
(process/knobs.py) and a short function run(view, x_T, ts, generator, **knobs) → frames, the same shape for every
sampler. `view` is the network as the process shows it (process.view): for a noise process the σ-space denoiser
D(x; σ) → (x̂0, ε̂) with σ(t), to_z and from_z; for a cold process the restorer R(x_t, t) and the degradation
D(x̂0, t). A file in this package that calls `register` adds one; nothing else needs to change.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from diffusion_core.process.knobs import Knob
from diffusion_core.process.runs import (  # noqa: F401  (the samplers' shared vocabulary, re-exported)
    MAX_SAMPLES,
    SamplerStep,
    SeedBatch,
    in_inference_mode,
    model_call,
    seeded_noise,
    validate_sample_count,
    validate_seed,
)
from diffusion_core.process.spacing import LOG_SNR_MIN, spaced_timesteps  # noqa: F401

if TYPE_CHECKING:
    from diffusion_core.process.base import DiffusionProcess, SamplerChoice

@dataclass
class SampleResult:
    samples: torch.Tensor  # N×C×H×W in data space (x/255 − 0.5)


def run_to_end(frames: Iterator[SamplerStep], on_step: Callable[[SamplerStep], None] | None = None) -> SampleResult:
    """Consume frames (on_step sees each); the samples are the last frame's, at t = 0."""
    last = None
    for frame in frames:
        if on_step is not None:
            on_step(frame)
        last = frame
    assert last is not None and last.t == 0
    return SampleResult(samples=last.z.cpu())


# run(view, x_T, ts, generator, **knobs) → frames (t, z_t, x̂0), the last at t = 0
SamplerRun = Callable[..., Iterator[SamplerStep]]


def ancestral_levels(sigma: float, sigma_next: float, eta: float = 1.0) -> tuple[float, float]:
    """(σ_down, σ_up) of one ancestral step from σ to σ_next (k-diffusion's get_ancestral_step):
    σ_up = min(σ_next, η·σ_next·√((σ² − σ_next²)/σ²)), σ_down = √(σ_next² − σ_up²). With η = 1 the fresh noise is
    DDPM's posterior variance β̃_t; η = 0 adds none (the ODE's Euler step)."""
    if sigma_next == 0 or eta == 0:
        return sigma_next, 0.0
    sigma_up = min(sigma_next, eta * sigma_next * math.sqrt((sigma**2 - sigma_next**2) / sigma**2))
    return math.sqrt(sigma_next**2 - sigma_up**2), sigma_up


def ancestral_step(x: torch.Tensor, eps: torch.Tensor, sigma: float, sigma_next: float,
                   generator: torch.Generator, eta: float = 1.0) -> torch.Tensor:
    """x at σ_next: the deterministic step down to σ_down, x + (σ_down − σ)·ε̂, then fresh noise σ_up·N(0, I)."""
    sigma_down, sigma_up = ancestral_levels(sigma, sigma_next, eta)
    x = x + (sigma_down - sigma) * eps
    return x + sigma_up * seeded_noise(x.shape, generator, x.device) if sigma_up > 0 else x


def len_as_nfe(steps: int) -> int:
    """One network evaluation per step."""
    return steps


@dataclass(frozen=True)
class Sampler:
    """A registered sampler. default_steps None: every step from t_start; all_steps: exactly T, refusing others;
    knobs: what it takes besides steps (DDIM's η); spacing: where its steps go by default (process/spacing.py; a
    choice may ask for another); nfe: network evaluations of a run of n steps (2n − 1 for Heun)."""

    name: str
    process: str  # the view it runs over: "noise" (the σ-space denoiser), "cold" or "flow" (process.sampler_views)
    run: SamplerRun
    order: int  # place in the process's list; the first is its default
    default_steps: int | None = None
    all_steps: bool = False
    one_step: bool = False
    knobs: tuple[Knob, ...] = ()  # the keyword arguments of run besides the process's own (process/knobs.py)
    spacing: str = "uniform"
    nfe: Callable[[int], int] = len_as_nfe
    summary: str = ""

    def timesteps(self, process: DiffusionProcess, choice: SamplerChoice) -> list[int]:
        """The network's timesteps for this choice; ValueError naming a step count, start or spacing it refuses."""
        T = process.T
        t0 = T if choice.t_start is None else choice.t_start
        if isinstance(t0, bool) or not isinstance(t0, int) or not 1 <= t0 <= T:
            raise ValueError(f"t_start must be an integer between 1 and T={T}; got {choice.t_start!r}")
        steps = choice.steps
        if (self.all_steps or self.one_step) and choice.spacing not in (None, "uniform"):
            raise ValueError(f"the {self.name} sampler places no steps of its own: spacing "
                             f"{choice.spacing!r} does not apply (use a few-step sampler)")
        if self.all_steps:
            if steps not in (None, T) or t0 != T:
                raise ValueError(f"the {self.name} sampler takes all T={T} steps; "
                                 f"use ddim or dpm++2m for {steps} steps")
            return list(range(T, 0, -1))
        if self.one_step:
            return spaced_timesteps(t0, 1)
        if steps is None:
            steps = t0 if self.default_steps is None else min(self.default_steps, t0)
        spaced_timesteps(t0, steps)  # validate
        return process.timesteps(choice.spacing or self.spacing, t0, steps, choice.rho)


