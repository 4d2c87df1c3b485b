"""What a training run optimises and how it previews samples, chosen by the "diffusion" config.

noise: Algorithm 1 (ε-prediction MSE) with a β schedule; previews with a fast sampler.
cold: Algorithm 3 (restore x from D(x, t), L2 or L1); previews with the improved sampler.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from diffusion_core.process.cold import COLD_LOSSES, cold_loss, fit_mixture_start, sample_cold
from diffusion_core.process.degradations import Degradation, degradation_from_config
from diffusion_core.process.gaussian import ddpm_loss
from diffusion_core.process.schedules import NoiseSchedule, schedule_from_config
from diffusion_core.samplers import sample_noise


class Objective(Protocol):
    def loss(self, model: nn.Module, x: torch.Tensor, generator: torch.Generator,
             shard: slice = slice(None), y: torch.Tensor | None = None) -> torch.Tensor:
        """Draw the randomness for the whole batch x; return the mean loss over x[shard]
        (y: class labels of x for a class-conditional denoiser)."""

    def preview(self, model: nn.Module, n: int, seed: int, device: torch.device | str) -> torch.Tensor: ...


class NoiseObjective:
    def __init__(self, schedule: NoiseSchedule, preview_sampler: str = "ddim", preview_steps: int = 20) -> None:
        self.schedule = schedule
        self.preview_sampler = preview_sampler
        self.preview_steps = min(preview_steps, schedule.T)

    def loss(self, model: nn.Module, x: torch.Tensor, generator: torch.Generator,
             shard: slice = slice(None), y: torch.Tensor | None = None) -> torch.Tensor:
        return ddpm_loss(model, self.schedule, x, generator, shard, y)

    def preview(self, model: nn.Module, n: int, seed: int, device: torch.device | str) -> torch.Tensor:
        return sample_noise(model, self.schedule, self.preview_sampler, n=n, seed=seed,
                            steps=self.preview_steps, device=device).samples


class ColdObjective:
    """Previews run the improved sampler (≤ preview_steps steps) from a Gaussian mixture fitted to
    the first `mixture_images` training images this objective has seen (black start before 16)."""

    def __init__(self, degradation: Degradation, loss: str = "l2", preview_steps: int = 50,
                 mixture_images: int = 300) -> None:
        if loss not in COLD_LOSSES:
            raise ValueError(f"cold diffusion loss must be one of {', '.join(COLD_LOSSES)}; got {loss!r}")
        self.degradation = degradation
        self.loss_kind = loss
        self.preview_steps = min(preview_steps, degradation.T)
        self.mixture_images = mixture_images
        self._seen: list[torch.Tensor] = []
        self._mixture = None

    def loss(self, model: nn.Module, x: torch.Tensor, generator: torch.Generator,
             shard: slice = slice(None), y: torch.Tensor | None = None) -> torch.Tensor:
        if y is not None:
            raise ValueError("class-conditional training is for Gaussian-noise diffusion; cold restorers take no label")
        n_seen = sum(len(s) for s in self._seen)
        if n_seen < self.mixture_images:  # keep clean images for the preview's mixture (no randomness used)
            self._seen.append(x[: self.mixture_images - n_seen].detach().cpu())
        return cold_loss(model, self.degradation, x, generator, self.loss_kind, shard)

    def preview(self, model: nn.Module, n: int, seed: int, device: torch.device | str) -> torch.Tensor:
        seen = torch.cat(self._seen) if self._seen else torch.empty(0)
        start, mixture = "black", None
        if len(seen) >= 16:
            if self._mixture is None or self._mixture[0] != len(seen):
                self._mixture = (len(seen), fit_mixture_start(self.degradation, seen, seed=seed))
            start, mixture = "mixture", self._mixture[1]
        return sample_cold(model, self.degradation, "improved", start, n=n, seed=seed, steps=self.preview_steps,
                           mixture=mixture, device=device).samples


def objective_from_config(diffusion: dict) -> Objective:
    kind = diffusion.get("type")
    if kind == "noise":
        return NoiseObjective(schedule_from_config(diffusion["schedule"]))
    if kind == "cold":
        unknown = set(diffusion) - {"type", "degradation", "loss"}
        if unknown:
            raise ValueError(f"unknown cold diffusion field(s) {sorted(unknown)}; allowed: degradation, loss")
        return ColdObjective(degradation_from_config(diffusion.get("degradation")), diffusion.get("loss", "l2"))
    raise ValueError(f"diffusion type must be 'noise' or 'cold'; got {kind!r}")
