"""The blur degradation."""

from __future__ import annotations

import torch

from diffusion_core.process.degradations.base import (
    MAX_KERNEL,
    MIN_SIGMA,
    SeparableDegradation,
    integer_param,
    number_param,
)


def gaussian_kernel(sigma: float | torch.Tensor, size: int) -> torch.Tensor:
    """Gaussian weights exp(−j²/2σ²), j = −r..r, normalised to sum 1 (float64; one row per σ)."""
    sigma = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1, 1)
    r = size // 2
    j = torch.arange(-r, r + 1, dtype=torch.float64)
    w = torch.exp(-(j**2) / (2.0 * sigma**2))
    w = w / w.sum(dim=1, keepdim=True)
    return w if w.shape[0] > 1 else w[0]


def convolution_matrix(n: int, kernel: torch.Tensor) -> torch.Tensor:
    """The n×n matrix of a 1-D convolution with reflect padding (…2 1 | 0 1 2 … n−1 | n−2 …);
    a K×size stack of kernels gives K×n×n."""
    size = kernel.shape[-1]
    r = size // 2
    if r > n - 1:
        raise ValueError(f"kernel size {size} is too large for a side of {n} pixels "
                         f"(reflect padding allows at most {2 * n - 1}); choose a smaller kernel_size")
    m = torch.arange(n)[:, None] + torch.arange(-r, r + 1)[None, :]  # source pixel of tap j for output i
    m = torch.where(m < 0, -m, torch.where(m > n - 1, 2 * (n - 1) - m, m))
    k = kernel.reshape(-1, size).to(torch.float64)
    A = torch.zeros(k.shape[0], n, n, dtype=torch.float64)
    A.scatter_add_(2, m.expand(k.shape[0], n, size), k[:, None, :].expand(k.shape[0], n, size).contiguous())
    return A if kernel.dim() > 1 else A[0]


# Blur beyond σ ≈ 2.5 px leaves a 28×28 digit a blob that a 48-dimensional Gaussian mixture models well but that
# no longer tells the restorer which digit it was (measured on the shipped blur model, see its card).
GENERATION_SIGMA = 2.52


class GaussianBlur(SeparableDegradation, kind="blur", default_T=500, order=0, done_to_x="blurred"):
    """The report's blur: σ_t = σ_min + (σ_max − σ_min)·s(t/T), one kernel covering the image."""

    def __init__(self, T: int | None = None, schedule: str = "linear", sigma_min: float = 0.02,
                 sigma_max: float = 5.02, kernel_size: int | None = None) -> None:
        super().__init__(T, schedule)
        self.sigma_min = number_param("sigma_min", sigma_min, MIN_SIGMA, 100.0, self.kind)
        self.sigma_max = number_param("sigma_max", sigma_max, MIN_SIGMA, 100.0, self.kind)
        if self.sigma_max < self.sigma_min:
            raise ValueError(f"{self.kind} degradation: sigma_max must be ≥ sigma_min; got "
                             f"sigma_min={sigma_min}, sigma_max={sigma_max}")
        self.kernel_size = None if kernel_size is None else integer_param("kernel_size", kernel_size, 1, MAX_KERNEL,
                                                                      self.kind, odd=True)

    @property
    def params(self) -> dict:
        return {"sigma_min": self.sigma_min, "sigma_max": self.sigma_max, "kernel_size": self.kernel_size}

    @property
    def sigmas(self) -> torch.Tensor:
        """σ_t for t = 0..T (float64)."""
        return self.sigma_min + (self.sigma_max - self.sigma_min) * self.s

    @property
    def generation_t(self) -> int:
        """The last t with σ_t ≤ GENERATION_SIGMA (T if even σ_T is below it). From a mixture at σ ≈ 2.5 the
        shipped blur restorer draws all ten digits at 1/5 of the FID it reaches from σ_T = 5 (the blur card)."""
        below = (self.sigmas <= GENERATION_SIGMA).nonzero()
        return max(1, int(below.max())) if len(below) else self.T

    def strength_curve(self) -> tuple[str, list[float]]:
        return "blur σ_t", self.sigmas.tolist()

    def _matrices(self, n: int) -> torch.Tensor:
        size = self.kernel_size or 2 * n - 1  # default: every output pixel sees the whole image
        return convolution_matrix(n, gaussian_kernel(self.sigmas, size).reshape(-1, size))
