"""What every sampler is and yields, and helpers shared by the samplers and the sampling loop.

A sampler is a `Sampler`: a name, the process type it runs on, how it places its timesteps, and a short
function run(process, model, x_T, ts, generator, choice, noise) → frames. A file in this package that
calls `register` adds one; nothing else needs to change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from diffusion_core.process.base import DiffusionProcess, SamplerChoice

MAX_SAMPLES = 4096


@dataclass(frozen=True)
class SamplerStep:
    """One frame of a reverse trajectory: the state z_t and the model's x̂0 from it.

    The last frame has t = 0 and z = x̂0 = the final sample.
    """

    t: int
    z: torch.Tensor
    x0_hat: torch.Tensor


@dataclass
class SampleResult:
    samples: torch.Tensor  # N×C×H×W in data space (x/255 − 0.5)


def in_inference_mode(steps: Iterator[SamplerStep]) -> Iterator[SamplerStep]:
    """Advance a step generator with torch.inference_mode() active only while it computes."""
    while True:
        with torch.inference_mode():
            try:
                step = next(steps)
            except StopIteration:
                return
        yield step


def run_to_end(frames: Iterator[SamplerStep], on_step: Callable[[SamplerStep], None] | None = None) -> SampleResult:
    """Consume frames (on_step sees each); the samples are the last frame's, at t = 0."""
    last = None
    for frame in frames:
        if on_step is not None:
            on_step(frame)
        last = frame
    assert last is not None and last.t == 0
    return SampleResult(samples=last.z.cpu())


def validate_sample_count(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SAMPLES:
        raise ValueError(f"number of samples must be an integer between 1 and {MAX_SAMPLES}; got {n!r}")


def validate_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be a non-negative integer below 2**63; got {seed!r}")


# run(process, model, x_T, ts, generator, choice, noise) → frames (t, z_t, x̂0), the last at t = 0
SamplerRun = Callable[["DiffusionProcess", nn.Module, torch.Tensor, Sequence[int], torch.Generator,
                       "SamplerChoice", "torch.Tensor | None"], Iterator[SamplerStep]]


def len_as_nfe(steps: int) -> int:
    """One network evaluation per step."""
    return steps


@dataclass(frozen=True)
class Sampler:
    """A registered sampler. default_steps None: every step from t_start; all_steps: exactly T, refusing others;
    spacing: where its steps go by default (samplers/spacing.py; a choice may ask for another); nfe: network
    evaluations of a run of n steps (2n − 1 for Heun)."""

    name: str
    process: str  # the DiffusionProcess.type it runs on
    run: SamplerRun
    order: int  # place in the process's list; the first is its default
    default_steps: int | None = None
    all_steps: bool = False
    one_step: bool = False
    takes_eta: bool = False
    takes_churn: bool = False
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


class SeedBatch:
    """Per-sample seeds: sample k of a batch draws all its randomness from its own generator, seeded seed + k,
    so an image depends only on its seed — not on the batch size or its place in the batch."""

    def __init__(self, seed: int, n: int) -> None:
        validate_seed(seed)
        validate_seed(seed + n - 1)
        self.seed, self.generators = seed, [torch.Generator().manual_seed(seed + k) for k in range(n)]

    def __len__(self) -> int:
        return len(self.generators)

    def rows(self, draw) -> torch.Tensor:
        """torch.cat of draw(generator) over the samples' generators (each draw one sample's rows)."""
        return torch.cat([draw(g) for g in self.generators])


def seeded_noise(shape: tuple[int, ...], generator: torch.Generator | SeedBatch,
                 device: torch.device | str) -> torch.Tensor:
    """N(0, I) drawn on the CPU from `generator` (a SeedBatch: row k from sample k's own), then moved: the same
    seed gives the same numbers on every device."""
    if isinstance(generator, SeedBatch):
        if shape[0] != len(generator):
            raise ValueError(f"{len(generator)} per-sample seeds cannot draw noise for {shape[0]} samples")
        return generator.rows(lambda g: torch.randn((1, *shape[1:]), generator=g)).to(device)
    return torch.randn(shape, generator=generator).to(device)


def model_call(model: nn.Module, z: torch.Tensor, t: int, T: int) -> torch.Tensor:
    """g(z, t/T) for a batch at one timestep, returned in float32."""
    tt = torch.full((z.shape[0],), t / T, device=z.device, dtype=torch.float32)
    return model(z, tt).float()


def spaced_timesteps(T: int, steps: int) -> list[int]:
    """`steps` integer timesteps from T down to 1, evenly spaced (the first is always T)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= T:
        raise ValueError(f"steps must be an integer between 1 and T={T}; got {steps!r}")
    # spacing (T−1)/(steps−1) ≥ 1, so the rounded values are strictly decreasing
    return torch.linspace(T, 1, steps).round().long().tolist()


# The few-step solvers start no noisier than this log-SNR. log(ᾱ/(1−ᾱ)) = −10.2 is ᾱ ≈ 3.7e-5, as noisy as the
# report's default schedule at t = T (−10.12), so every linear preset starts at T as before; the cosine
# schedule's last steps, where the 0.999 β cap drives log-SNR from −13 to −19.8, carry no signal worth a step.
LOG_SNR_MIN = -10.2
