"""A small MLP denoiser for points (the 2-D lab): g(z_t, t/T) for z_t of shape [B, dim]."""

from __future__ import annotations

import math

import torch
from torch import nn


class PointDenoiser(nn.Module):
    """[z, sinusoidal features of t/T] → `layers` hidden layers of `hidden` SiLU units → dim outputs."""

    def __init__(self, dim: int = 2, hidden: int = 128, layers: int = 3, time_features: int = 16) -> None:
        super().__init__()
        if not (1 <= dim <= 64 and 8 <= hidden <= 1024 and 1 <= layers <= 8 and time_features % 2 == 0):
            raise ValueError(f"an MLP denoiser needs 1 ≤ dim ≤ 64, 8 ≤ hidden ≤ 1024, 1 ≤ layers ≤ 8 and an even "
                             f"number of time features; got dim={dim}, hidden={hidden}, layers={layers}, "
                             f"time_features={time_features}")
        self.register_buffer("freqs", torch.exp(torch.linspace(0, math.log(1000.0), time_features // 2)),
                             persistent=False)
        widths = [dim + time_features] + [hidden] * layers
        blocks: list[nn.Module] = []
        for a, b in zip(widths, widths[1:], strict=False):
            blocks += [nn.Linear(a, b), nn.SiLU()]
        self.net = nn.Sequential(*blocks, nn.Linear(hidden, dim))

    def forward(self, z: torch.Tensor, t_frac: torch.Tensor) -> torch.Tensor:
        angles = t_frac.float().view(-1, 1) * self.freqs
        return self.net(torch.cat([z, angles.sin(), angles.cos()], dim=1))
