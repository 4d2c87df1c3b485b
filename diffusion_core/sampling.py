"""One entry point for sampling any checkpoint, whatever its diffusion process."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .checkpoints import LoadedCheckpoint
from .samplers import NOISE_SAMPLERS, SampleResult, SamplerStep, noise_sampler_steps, run_to_end
from .schedules import schedule_from_config


def samplers_for(checkpoint: LoadedCheckpoint) -> tuple[str, ...]:
    return NOISE_SAMPLERS


def checkpoint_steps(
    checkpoint: LoadedCheckpoint,
    sampler: str,
    n: int = 16,
    seed: int = 0,
    steps: int | None = None,
    eta: float = 0.0,
    device: torch.device | str = "cpu",
) -> Iterator[SamplerStep]:
    """Frames (t, z_t, x̂0) of one reverse run of a loaded checkpoint."""
    diffusion = checkpoint.config["diffusion"]
    model = checkpoint.model.to(device)
    if diffusion["type"] == "noise":
        schedule = schedule_from_config(diffusion["schedule"])
        return noise_sampler_steps(model, schedule, sampler, n, seed, steps, eta, device=device)
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
) -> SampleResult:
    return run_to_end(checkpoint_steps(checkpoint, sampler, n, seed, steps, eta, device), record)
