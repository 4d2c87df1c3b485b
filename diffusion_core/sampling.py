"""One entry point for sampling any checkpoint, whatever its diffusion process.

Cold checkpoints take a `start`: "mixture" (default; fitted on first use from a few hundred
training images of the checkpoint's dataset and cached, see cold.dataset_mixture), "black", or a
tensor of degraded images x_T (conditional generation).

Class-conditional checkpoints take a `digit` (None: every class in turn) and a classifier-free
`guidance` scale w (None: the checkpoint's own "guidance", else 0); see guidance.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from diffusion_core.io.checkpoints import LoadedCheckpoint
from diffusion_core.models.guidance import ClassGuided, is_conditional, sample_labels
from diffusion_core.process.cold import COLD_SAMPLERS, cold_steps, dataset_mixture
from diffusion_core.process.degradations import degradation_from_config
from diffusion_core.process.schedules import schedule_from_config
from diffusion_core.samplers import (
    DEFAULT_STEPS,
    NOISE_SAMPLERS,
    SampleResult,
    SamplerStep,
    noise_sampler_steps,
    run_to_end,
    validate_sample_count,
    validate_seed,
)
from diffusion_core.samplers.base import spaced_timesteps
from diffusion_core.training.precision import with_precision


def samplers_for(checkpoint: LoadedCheckpoint) -> tuple[str, ...]:
    """The samplers a checkpoint supports; the first is the default."""
    return COLD_SAMPLERS if checkpoint.config["diffusion"]["type"] == "cold" else NOISE_SAMPLERS


@dataclass(frozen=True)
class SamplerChoice:
    """A sampler with its settings, as checkpoint_steps / sample_checkpoint take them."""

    sampler: str
    steps: int | None = None
    eta: float = 0.0

    def describe(self) -> str:
        """E.g. "ddim, 20 steps, η = 1"."""
        return ", ".join([self.sampler] + ([f"{self.steps} steps"] if self.steps else []) +
                         ([f"η = {self.eta:g}"] if self.sampler == "ddim" else []))


QUICK_SAMPLER, QUICK_STEPS = "dpm++2m-sde", 20


def quick_sampler(checkpoint: LoadedCheckpoint) -> SamplerChoice:
    """What one-click generation runs. Gaussian models: the stochastic DPM-Solver++(2M) on 20 steps —
    fresh noise at every step like the T-step ancestral sampler, whose classifier-FID it matches for
    the shipped default in 1/50 of the time, where the deterministic samplers score worse
    (benchmarks/run.py). Cold models: their default sampler."""
    if checkpoint.config["diffusion"]["type"] == "cold":
        return SamplerChoice(samplers_for(checkpoint)[0])
    T = checkpoint.config["diffusion"]["schedule"]["T"]
    return SamplerChoice(QUICK_SAMPLER, min(QUICK_STEPS, T))


def checkpoint_steps(
    checkpoint: LoadedCheckpoint,
    sampler: str,
    n: int = 16,
    seed: int = 0,
    steps: int | None = None,
    eta: float = 0.0,
    device: torch.device | str = "cpu",
    start: str | torch.Tensor = "mixture",
    digit: int | None = None,
    guidance: float | None = None,
    precision: str = "auto",
) -> Iterator[SamplerStep]:
    """Frames (t, z_t, x̂0) of one reverse run of a loaded checkpoint. precision "auto": the network
    runs under bf16 autocast where the hardware does bf16 natively, else in fp32 ("fp32" opts out)."""
    if not isinstance(start, torch.Tensor):  # a tensor start brings its own images
        validate_sample_count(n)
    validate_seed(seed)  # both before a conditional model's labels, so a bad n is a ValueError naming it
    diffusion = checkpoint.config["diffusion"]
    model = checkpoint.model.to(device)
    if is_conditional(model):
        w = checkpoint.config.get("guidance", 0.0) if guidance is None else guidance
        model = ClassGuided(model, sample_labels(n, digit, model.num_classes), w)
    elif digit is not None or guidance is not None:
        raise ValueError("this model is not class-conditional: a digit and guidance need a model trained with "
                         "--conditional")
    model = with_precision(model, precision, device)  # the samplers' arithmetic stays float32
    if diffusion["type"] == "noise":
        schedule = schedule_from_config(diffusion["schedule"])
        return noise_sampler_steps(model, schedule, sampler, n, seed, steps, eta, device=device)
    if diffusion["type"] == "cold":
        degradation = degradation_from_config(diffusion["degradation"])
        mixture = (dataset_mixture(degradation, checkpoint.config.get("dataset", "mnist"))
                   if isinstance(start, str) and start == "mixture" else None)
        return cold_steps(model, degradation, sampler, start, n, seed, steps, mixture, device=device)
    raise ValueError(f"diffusion type {diffusion['type']!r} is not supported by this build")


def sample_checkpoint(
    checkpoint: LoadedCheckpoint,
    sampler: str,
    n: int = 16,
    seed: int = 0,
    steps: int | None = None,
    eta: float = 0.0,
    record: tuple[int, ...] = (),
    device: torch.device | str = "cpu",
    start: str | torch.Tensor = "mixture",
    digit: int | None = None,
    guidance: float | None = None,
    precision: str = "auto",
    on_step: Callable[[SamplerStep], None] | None = None,
) -> SampleResult:
    """One reverse run to the end; on_step sees every frame (sampler_step_count of them have t > 0)."""
    return run_to_end(checkpoint_steps(checkpoint, sampler, n, seed, steps, eta, device, start, digit, guidance,
                                       precision), record, on_step)


def sampler_step_count(checkpoint: LoadedCheckpoint, sampler: str, steps: int | None = None) -> int:
    """How many network steps (frames with t > 0) one run of `sampler` takes on this checkpoint — a
    progress bar's total. Raises the sampler's own ValueError for a sampler or step count it refuses."""
    diffusion = checkpoint.config["diffusion"]
    if diffusion["type"] == "cold":
        T = degradation_from_config(diffusion["degradation"]).T
        if sampler not in COLD_SAMPLERS:
            raise ValueError(f"cold sampler must be one of {', '.join(COLD_SAMPLERS)}; got {sampler!r}")
        ts = spaced_timesteps(T, T if steps is None else steps)
        return 1 if sampler == "direct" else len(ts)
    T = diffusion["schedule"]["T"]
    if sampler not in NOISE_SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(NOISE_SAMPLERS)}; got {sampler!r}")
    if sampler == "ancestral":
        if steps not in (None, T):
            raise ValueError(f"the ancestral sampler takes all T={T} steps; use ddim or dpm++2m for {steps} steps")
        return T
    return len(spaced_timesteps(T, DEFAULT_STEPS[sampler] if steps is None else steps))
