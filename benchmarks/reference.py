"""A literal implementation of the source report (GUIDE.md §2): the benchmark's baseline.

Written the way the report's code is written, in float32 and without any of diffusion_core's fast
paths: a DDPM module holding the linear schedule as buffers, Algorithm 1 as its forward(), and
Algorithm 2 as a plain Python loop that indexes the schedule tensors at every step and calls the
network with a fresh t/T tensor. Sampling runs under torch.no_grad() (as the report's training
script samples), not torch.inference_mode. It draws its randomness in the same order as
diffusion_core (t then ε in training; z_T then one N(0, I) per step t > 1 in sampling), so the same
seed and weights give the same numbers. The product never uses this file.
"""

from __future__ import annotations

import torch
from torch import nn


def ddpm_schedules(beta1: float, beta2: float, T: int) -> dict[str, torch.Tensor]:
    """β_t = β1 + (β2 − β1)·t/T for t = 0..T, and ᾱ_t = exp(cumsum(log(1 − β_t))), in float32."""
    if not 0.0 < beta1 < beta2 < 1.0:
        raise ValueError(f"need 0 < beta1 < beta2 < 1; got beta1={beta1}, beta2={beta2}")
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be a positive integer; got {T!r}")
    beta_t = (beta2 - beta1) * torch.arange(0, T + 1, dtype=torch.float32) / T + beta1
    alpha_t = torch.exp(torch.cumsum(torch.log(1 - beta_t), dim=0))  # the report calls ᾱ_t "alpha_t"
    return {"beta_t": beta_t, "alpha_t": alpha_t}


class DDPM(nn.Module):
    """The report's DDPM: `gt` is the denoiser g(z_t, t/T) → ε̂."""

    def __init__(self, gt: nn.Module, betas: tuple[float, float], n_T: int, criterion: nn.Module | None = None) -> None:
        super().__init__()
        self.gt = gt
        for k, v in ddpm_schedules(betas[0], betas[1], n_T).items():
            self.register_buffer(k, v)
        self.n_T = n_T
        self.criterion = criterion if criterion is not None else nn.MSELoss()

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Algorithm 1: t ~ U{1..T}, ε ~ N(0, I), z_t = √ᾱ_t x + √(1−ᾱ_t) ε, loss ‖ε − g(z_t, t/T)‖²."""
        t = torch.randint(1, self.n_T + 1, (x.shape[0],), generator=generator).to(x.device)
        eps = torch.randn(x.shape, generator=generator).to(x.device)
        alpha_t = self.alpha_t[t, None, None, None]
        z_t = torch.sqrt(alpha_t) * x + torch.sqrt(1 - alpha_t) * eps
        return self.criterion(eps, self.gt(z_t, t / self.n_T))

    def reverse_step(self, z_t: torch.Tensor, i: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """One step of Algorithm 2 at timestep i:
        z ← (z − β_i/√(1−ᾱ_i) · g(z, i/T)) / √(1−β_i), then + √β_i · N(0, I) unless i = 1."""
        alpha_t = self.alpha_t[i]
        beta_t = self.beta_t[i]
        _one = torch.ones(z_t.shape[0], device=z_t.device)
        z_t = z_t - (beta_t / torch.sqrt(1 - alpha_t)) * self.gt(z_t, (i / self.n_T) * _one)
        z_t = z_t / torch.sqrt(1 - beta_t)
        if i > 1:
            z_t = z_t + torch.sqrt(beta_t) * torch.randn(z_t.shape, generator=generator).to(z_t.device)
        return z_t

    @torch.no_grad()
    def sample(self, n_sample: int, size: tuple[int, ...], device: torch.device | str = "cpu",
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Algorithm 2: z_T ~ N(0, I), then reverse_step for i = T..1."""
        z_t = torch.randn(n_sample, *size, generator=generator).to(device)
        for i in range(self.n_T, 0, -1):
            z_t = self.reverse_step(z_t, i, generator)
        return z_t


def train_step(ddpm: DDPM, optim: torch.optim.Optimizer, x: torch.Tensor,
               generator: torch.Generator | None = None) -> float:
    """One iteration of the report's training loop (Adam, lr 2e-4 in the report)."""
    optim.zero_grad()
    loss = ddpm(x, generator)
    loss.backward()
    optim.step()
    return loss.item()
