"""What a training run optimises and how it previews samples, chosen by the "diffusion" config.

noise: Algorithm 1 (ε-prediction MSE) with a β schedule; previews with a fast sampler.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from .noise import ddpm_loss
from .samplers import sample_noise
from .schedules import NoiseSchedule, schedule_from_config


class Objective(Protocol):
    def loss(self, model: nn.Module, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...

    def preview(self, model: nn.Module, n: int, seed: int, device: torch.device | str) -> torch.Tensor: ...


class NoiseObjective:
    def __init__(self, schedule: NoiseSchedule, preview_sampler: str = "ddim", preview_steps: int = 20) -> None:
        self.schedule = schedule
        self.preview_sampler = preview_sampler
        self.preview_steps = min(preview_steps, schedule.T)

    def loss(self, model: nn.Module, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return ddpm_loss(model, self.schedule, x, generator)

    def preview(self, model: nn.Module, n: int, seed: int, device: torch.device | str) -> torch.Tensor:
        return sample_noise(model, self.schedule, self.preview_sampler, n=n, seed=seed,
                            steps=self.preview_steps, device=device).samples


def objective_from_config(diffusion: dict) -> Objective:
    kind = diffusion.get("type")
    if kind == "noise":
        return NoiseObjective(schedule_from_config(diffusion["schedule"]))
    raise ValueError(f"diffusion type must be 'noise'; got {kind!r}")
