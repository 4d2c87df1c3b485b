"""Reverse-diffusion samplers for the Gaussian (noise) process.

Each sampler is a generator of SamplerStep frames (t, z_t, x̂0), so a page can step through it;
`sample_noise` runs one to the end and records snapshots at chosen timesteps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from diffusion_core.process.schedules import NoiseSchedule
from diffusion_core.samplers.ancestral import ancestral_steps
from diffusion_core.samplers.base import SamplerStep, seeded_noise, spaced_timesteps
from diffusion_core.samplers.ddim import ddim_steps
from diffusion_core.samplers.dpm_solver import dpm_solver_2m_steps

MAX_SAMPLES = 4096
NOISE_SAMPLERS = ("ancestral", "ddim", "dpm++2m", "dpm++2m-sde")
DEFAULT_STEPS = {"ddim": 50, "dpm++2m": 20, "dpm++2m-sde": 20}  # steps=None; ancestral always takes T


@dataclass
class SampleResult:
    samples: torch.Tensor  # N×C×H×W in data space (x/255 − 0.5)
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)  # t → z_t
    snapshot_x0: dict[int, torch.Tensor] = field(default_factory=dict)  # t → x̂0 from z_t


def in_inference_mode(steps: Iterator[SamplerStep]) -> Iterator[SamplerStep]:
    """Advance a step generator with torch.inference_mode() active only while it computes."""
    while True:
        with torch.inference_mode():
            try:
                step = next(steps)
            except StopIteration:
                return
        yield step


def validate_sample_count(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SAMPLES:
        raise ValueError(f"number of samples must be an integer between 1 and {MAX_SAMPLES}; got {n!r}")


def validate_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be a non-negative integer below 2**63; got {seed!r}")


def noise_sampler_steps(
    model: nn.Module,
    schedule: NoiseSchedule,
    sampler: str = "ancestral",
    n: int = 16,
    seed: int = 0,
    steps: int | None = None,
    eta: float = 0.0,
    image_shape: tuple[int, int, int] = (1, 28, 28),
    device: torch.device | str = "cpu",
) -> Iterator[SamplerStep]:
    """Frames of one reverse run from z_T ~ N(0, I) drawn with `seed`.

    ancestral always takes all T steps (steps must be None or T); the others take `steps`.
    """
    validate_sample_count(n)
    validate_seed(seed)
    if sampler not in NOISE_SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(NOISE_SAMPLERS)}; got {sampler!r}")
    generator = torch.Generator().manual_seed(seed)
    z_T = seeded_noise((n, *image_shape), generator, device)
    model.eval()
    if sampler == "ancestral":
        if steps not in (None, schedule.T):
            raise ValueError(
                f"the ancestral sampler takes all T={schedule.T} steps; use ddim or dpm++2m for {steps} steps"
            )
        it = ancestral_steps(model, schedule, z_T, generator)
    elif sampler == "ddim":
        it = ddim_steps(model, schedule, z_T, generator, DEFAULT_STEPS[sampler] if steps is None else steps, eta)
    else:
        it = dpm_solver_2m_steps(model, schedule, z_T, generator, DEFAULT_STEPS[sampler] if steps is None else steps,
                                 stochastic=sampler == "dpm++2m-sde")
    return in_inference_mode(it)


def run_to_end(
    frames: Iterator[SamplerStep],
    record: Sequence[int] = (),
    on_step: Callable[[SamplerStep], None] | None = None,
) -> SampleResult:
    """Consume frames; keep z_t and x̂0 at each requested t (or the first frame at or below it)."""
    pending = sorted(set(record), reverse=True)
    result = SampleResult(samples=torch.empty(0))
    last = None
    for frame in frames:
        while pending and frame.t <= pending[0]:
            result.snapshots[pending[0]] = frame.z.cpu()
            result.snapshot_x0[pending[0]] = frame.x0_hat.cpu()
            pending.pop(0)
        if on_step is not None:
            on_step(frame)
        last = frame
    assert last is not None and last.t == 0
    result.samples = last.z.cpu()
    return result


def sample_noise(
    model: nn.Module,
    schedule: NoiseSchedule,
    sampler: str = "ancestral",
    n: int = 16,
    seed: int = 0,
    steps: int | None = None,
    eta: float = 0.0,
    record: Sequence[int] = (),
    image_shape: tuple[int, int, int] = (1, 28, 28),
    device: torch.device | str = "cpu",
) -> SampleResult:
    frames = noise_sampler_steps(model, schedule, sampler, n, seed, steps, eta, image_shape, device)
    return run_to_end(frames, record)


__all__ = [
    "DEFAULT_STEPS",
    "NOISE_SAMPLERS",
    "SampleResult",
    "SamplerStep",
    "ancestral_steps",
    "ddim_steps",
    "dpm_solver_2m_steps",
    "noise_sampler_steps",
    "run_to_end",
    "sample_noise",
    "spaced_timesteps",
]
