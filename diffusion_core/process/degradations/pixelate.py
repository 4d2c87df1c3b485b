"""The pixelate degradation."""

from __future__ import annotations

import torch

from diffusion_core.process.degradations.base import (
    SeparableDegradation,
    integer_param,
)


class Pixelate(SeparableDegradation, kind="pixelate", default_T=50, order=3, done_to_x="pixelated"):
    """Super-resolution: r_t × r_t blocks, each replaced by its mean (r_0 = H: the identity)."""

    def __init__(self, T: int | None = None, schedule: str = "linear", min_size: int = 4) -> None:
        super().__init__(T, schedule)
        self.min_size = integer_param("min_size", min_size, 1, 64, self.kind)

    @property
    def params(self) -> dict:
        return {"min_size": self.min_size}

    def resolution(self, n: int = 28) -> list[int]:
        """Blocks per side r_t for a side of n pixels, t = 0..T."""
        lo = min(self.min_size, n)
        return torch.round(n - self.s * (n - lo)).long().tolist()

    def strength_curve(self) -> tuple[str, list[float]]:
        return "blocks per side r_t (28-pixel image)", [float(r) for r in self.resolution(28)]

    def _matrices(self, n: int) -> torch.Tensor:
        mats = []
        for r in self.resolution(n):
            block = torch.arange(n) * r // n  # pixel m belongs to block ⌊m·r/n⌋
            same = (block[:, None] == block[None, :]).double()
            mats.append(same / same.sum(dim=1, keepdim=True))  # average over the block
        return torch.stack(mats)
