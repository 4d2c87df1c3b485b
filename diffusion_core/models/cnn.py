"""The report's denoiser: a plain CNN of (Conv k×k "same" → LayerNorm(C,H,W) → GELU) blocks.

The scalar t/T is encoded with sin/cos at n_freq frequencies (0 and 2π·1.5^i), passed through
an MLP (→128→128→128→first hidden width) and added after the first block.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class CNNBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, image_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.norm = nn.LayerNorm((out_channels, image_size, image_size))
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class ReportCNN(nn.Module):
    """g(z_t, t/T) → ε̂ (or x̂ for cold diffusion); output shaped like z_t."""

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 28,
        hidden: tuple[int, ...] = (16, 32, 32, 16),
        kernel_size: int = 7,
        time_embed_dim: int = 32,
    ) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer; got {kernel_size}")
        if len(hidden) < 1 or any(h < 1 for h in hidden):
            raise ValueError(f"hidden must be a non-empty list of positive widths; got {list(hidden)}")
        if time_embed_dim < 2 or time_embed_dim % 2:
            raise ValueError(f"time_embed_dim must be an even integer ≥ 2; got {time_embed_dim}")
        chans = (in_channels, *hidden)
        self.blocks = nn.ModuleList(
            CNNBlock(chans[i], chans[i + 1], kernel_size, image_size) for i in range(len(hidden))
        )
        self.final = nn.Conv2d(hidden[-1], in_channels, 3, padding=1)
        n_freq = time_embed_dim // 2
        # frequencies 0 and 2π·1.5^i, i = 0..n_freq−2
        freqs = [0.0] + [2 * math.pi * 1.5**i for i in range(n_freq - 1)]
        self.register_buffer("frequencies", torch.tensor(freqs, dtype=torch.float32), persistent=False)
        self.time_embed = nn.Sequential(
            nn.Linear(time_embed_dim, 128), nn.GELU(),
            nn.Linear(128, 128), nn.GELU(),
            nn.Linear(128, 128), nn.GELU(),
            nn.Linear(128, hidden[0]),
        )

    def time_encoding(self, t: torch.Tensor) -> torch.Tensor:
        phases = t.float()[:, None] * self.frequencies[None, :]
        emb = torch.cat([torch.sin(phases), torch.cos(phases)], dim=1)
        return self.time_embed(emb)[:, :, None, None]

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = self.blocks[0](z)
        h = h + self.time_encoding(t).to(h.dtype)
        for block in self.blocks[1:]:
            h = block(h)
        return self.final(h)
