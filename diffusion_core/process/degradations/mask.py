"""The mask degradation."""

from __future__ import annotations

import torch

from diffusion_core.process.degradations.base import (
    Degradation,
    number_param,
)


class Mask(Degradation, kind="mask", default_T=100, order=2, done_to_x="masked"):
    """Inpainting: pixels whose centre lies within ρ_t = s(t/T)·ρ_max of the image centre take
    the value `fill` (a pixel in [0, 1]; 0 = black). ρ_max reaches past the corners."""

    def __init__(self, T: int | None = None, schedule: str = "linear", fill: float = 0.0) -> None:
        super().__init__(T, schedule)
        self.fill = number_param("fill", fill, 0.0, 1.0, self.kind)

    @property
    def params(self) -> dict:
        return {"fill": self.fill}

    def masks(self, h: int, w: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """[T+1, H, W] with 1 where masked."""
        key = ("mask", h, w, str(device))
        if key not in self._cache:
            yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                                    indexing="ij")
            dist = torch.sqrt((yy - (h - 1) / 2) ** 2 + (xx - (w - 1) / 2) ** 2)
            rho = self.s * (float(dist.max()) + 0.5)
            self._cache[key] = (dist[None] < rho[:, None, None]).float().to(device)
        return self._cache[key]

    def strength_curve(self) -> tuple[str, list[float]]:
        return "masked fraction (28×28)", self.masks(28, 28).mean(dim=(1, 2)).tolist()

    def _apply(self, x: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        m = self.masks(x.shape[-2], x.shape[-1], x.device)[t][:, None]
        return (1 - m) * x.float() + m * (self.fill - 0.5)
