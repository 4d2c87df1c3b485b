"""The noise-blur degradation."""

from __future__ import annotations

import torch

from diffusion_core.process.degradations.base import (
    number_param,
)
from diffusion_core.process.degradations.blur import GaussianBlur
from diffusion_core.process.runs import seeded_noise


class NoiseBlur(GaussianBlur, kind="noise-blur", default_T=500, order=5,
                done_to_x="blurred, plus noise", needs_noise=True):
    """The report's proposed hybrid: blur(x, t) + noise_std·s_t·ε, ε ~ N(0, I) fixed per trajectory."""

    def __init__(self, T: int | None = None, schedule: str = "linear", sigma_min: float = 0.02,
                 sigma_max: float = 5.02, kernel_size: int | None = None, noise_std: float = 0.1) -> None:
        super().__init__(T, schedule, sigma_min, sigma_max, kernel_size)
        self.noise_std = number_param("noise_std", noise_std, 0.0, 1.0, self.kind, lo_open=True)

    @property
    def params(self) -> dict:
        return {**super().params, "noise_std": self.noise_std}

    @property
    def generation_t(self) -> int:
        """T: the blur's earlier start is measured for pure blur only."""
        return self.T

    def noise_levels(self) -> torch.Tensor:
        """noise_std·s_t for t = 0..T."""
        return self.noise_std * self.s

    def draw_noise(self, shape: tuple[int, ...], generator: torch.Generator,
                   device: torch.device | str = "cpu") -> torch.Tensor:
        return seeded_noise(shape, generator, device)

    def noise_term(self, noise: torch.Tensor, t: int) -> torch.Tensor:
        return float(self.noise_levels()[t]) * noise

    def _apply(self, x: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        a = self.noise_levels().to(x.device).float()[t].view(-1, 1, 1, 1)
        return super()._apply(x, t, None) + a * noise.float()
