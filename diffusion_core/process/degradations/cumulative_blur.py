"""The cumulative-blur degradation."""

from __future__ import annotations

import torch

from diffusion_core.process.degradations.base import (
    MAX_KERNEL,
    MIN_SIGMA,
    SeparableDegradation,
    integer_param,
    number_param,
)
from diffusion_core.process.degradations.blur import convolution_matrix, gaussian_kernel


class CumulativeBlur(SeparableDegradation, kind="cumulative-blur", default_T=50, order=1,
                     done_to_x="blurred again and again"):
    """The paper's blur: a small Gaussian kernel G applied n(t) = round(T·s(t/T)) times."""

    def __init__(self, T: int | None = None, schedule: str = "linear", sigma: float = 1.0,
                 kernel_size: int = 5) -> None:
        super().__init__(T, schedule)
        self.sigma = number_param("sigma", sigma, MIN_SIGMA, 100.0, self.kind)
        self.kernel_size = integer_param("kernel_size", kernel_size, 3, MAX_KERNEL, self.kind, odd=True)

    @property
    def params(self) -> dict:
        return {"sigma": self.sigma, "kernel_size": self.kernel_size}

    @property
    def applications(self) -> list[int]:
        """n(t), the number of times the kernel has been applied at t = 0..T."""
        return torch.round(self.T * self.s).long().tolist()

    def strength_curve(self) -> tuple[str, list[float]]:
        return "kernel applications n(t)", [float(v) for v in self.applications]

    def _matrices(self, n: int) -> torch.Tensor:
        G = convolution_matrix(n, gaussian_kernel(self.sigma, self.kernel_size))
        counts = self.applications
        powers = [torch.eye(n, dtype=torch.float64)]
        for _ in range(max(counts)):
            powers.append(G @ powers[-1])
        return torch.stack([powers[c] for c in counts])
