"""The fade degradation."""

from __future__ import annotations

import torch

from diffusion_core.process.degradations.base import (
    Degradation,
    number_param,
)


class Fade(Degradation, kind="fade", default_T=100, order=4, done_to_x="faded"):
    """D(x, t) = (1 − s_t)·x + s_t·c, c = `target` pixel value (0 = black; MNIST's mean is 0.1307)."""

    def __init__(self, T: int | None = None, schedule: str = "linear", target: float = 0.0) -> None:
        super().__init__(T, schedule)
        self.target = number_param("target", target, 0.0, 1.0, self.kind)

    @property
    def params(self) -> dict:
        return {"target": self.target}

    def strength_curve(self) -> tuple[str, list[float]]:
        return "fade weight s_t", self.s.tolist()

    def _apply(self, x: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        s = self.s.to(x.device).float()[t].view(-1, 1, 1, 1)
        return (1 - s) * x.float() + s * (self.target - 0.5)
