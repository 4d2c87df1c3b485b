"""A small U-Net denoiser at two resolutions (28×28 and 14×14; with patch 2, 14×14 and 7×7), with a sinusoidal time
embedding added in every residual block and, with num_classes, an optional class label
(label −1 or y=None: no label, the unconditional ε used by classifier-free guidance)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer-style embedding of t/T ∈ [0, 1] (scaled by 1000 as in DDPM)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class Conv2d(nn.Conv2d):
    """nn.Conv2d that runs in NCHW under CPU autocast. The U-Net keeps channels-last weights, which suit float32,
    but under bf16 autocast channels-last activations make PyTorch's GroupNorm 5–20× slower than NCHW ones, which
    ate the whole bf16 gain (benchmarks/unet_bf16.py). An NCHW copy of the weight each call costs little; float32
    runs exactly as nn.Conv2d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            return self._conv_forward(x.contiguous(), self.weight.contiguous(), self.bias)
        return super().forward(x)


class ResBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, groups: int = 8) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, in_ch), in_ch)
        self.conv1 = Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_ch)
        self.norm2 = nn.GroupNorm(min(groups, out_ch), out_ch)
        self.conv2 = Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        # In-place SiLU only without autograd (its backward needs its input); the in-place adds act on
        # convolution outputs, which no backward needs. Same numbers, less memory traffic.
        inplace = not torch.is_grad_enabled()
        h = self.conv1(F.silu(self.norm1(x), inplace=inplace))
        h += self.emb(emb)[:, :, None, None].to(h.dtype)
        h = self.conv2(F.silu(self.norm2(h), inplace=inplace))
        h += self.skip(x)
        return h


class UNet(nn.Module):
    """model(z, t/T[, y]) → tensor shaped like z. y: class labels in 0..num_classes−1, −1 for none."""

    def __init__(
        self,
        in_channels: int = 1,
        base_channels: int = 32,
        channel_mult: tuple[int, ...] = (1, 2),
        time_embed_dim: int = 128,
        num_classes: int | None = None,
        patch: int = 1,
    ) -> None:
        super().__init__()
        if patch not in (1, 2, 4):
            raise ValueError(f"patch must be 1, 2 or 4 (pixels a side folded into channels); got {patch}")
        if base_channels < 8 or base_channels % 8:
            raise ValueError(f"base_channels must be a multiple of 8 (≥ 8); got {base_channels}")
        if len(channel_mult) != 2:
            raise ValueError(f"channel_mult must have two entries (two resolutions); got {list(channel_mult)}")
        c1, c2 = base_channels * channel_mult[0], base_channels * channel_mult[1]
        self.time_embed_dim = time_embed_dim
        self.time_mlp = nn.Sequential(
            nn.Linear(time_embed_dim, time_embed_dim * 2), nn.SiLU(), nn.Linear(time_embed_dim * 2, time_embed_dim)
        )
        self.num_classes = num_classes
        self.label_embed = nn.Embedding(num_classes, time_embed_dim) if num_classes else None
        # patch p: the image enters as p×p pixel blocks folded into channels (pixel-unshuffle), so every layer runs
        # at 1/p² of the pixels: a 28×28 digit becomes 14×14 (then 7×7) for p = 2
        self.patch = patch
        self.stem = Conv2d(in_channels * patch * patch, c1, 3, padding=1)
        self.down1 = ResBlock(c1, c1, time_embed_dim)
        self.downsample = Conv2d(c1, c1, 3, stride=2, padding=1)  # 28 → 14
        self.down2 = ResBlock(c1, c2, time_embed_dim)
        self.mid1 = ResBlock(c2, c2, time_embed_dim)
        self.mid2 = ResBlock(c2, c2, time_embed_dim)
        self.up2 = ResBlock(c2 + c2, c2, time_embed_dim)
        self.upsample = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), Conv2d(c2, c1, 3, padding=1))
        self.up1 = ResBlock(c1 + c1, c1, time_embed_dim)
        self.out_norm = nn.GroupNorm(8, c1)
        self.out = Conv2d(c1, in_channels * patch * patch, 3, padding=1)
        # Channels-last (NHWC) weights make every convolution run NHWC: no layout reorders between
        # layers; one batch-16 step on a 2-core CPU took 7–17 % less time (benchmarks/run.py against
        # the NCHW reference). Loading a state dict keeps the layout.
        self.to(memory_format=torch.channels_last)

    def forward(self, z: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.time_mlp(sinusoidal_embedding(t, self.time_embed_dim))
        if self.label_embed is not None and y is not None:
            if int(y.min()) < -1 or int(y.max()) >= self.num_classes:
                raise ValueError(f"class labels must be in 0..{self.num_classes - 1}, or -1 for none")
            has_label = (y >= 0).unsqueeze(1).to(emb.dtype)
            emb = emb + self.label_embed(y.clamp(min=0)) * has_label  # no label: the unconditional embedding
        h0 = self.stem(F.pixel_unshuffle(z, self.patch) if self.patch > 1 else z)
        h1 = self.down1(h0, emb)
        h2 = self.down2(self.downsample(h1), emb)
        m = self.mid2(self.mid1(h2, emb), emb)
        u2 = self.up2(torch.cat([m, h2], dim=1), emb)
        u1 = self.up1(torch.cat([self.upsample(u2), h1], dim=1), emb)
        out = self.out(F.silu(self.out_norm(u1), inplace=not torch.is_grad_enabled()))
        return F.pixel_shuffle(out, self.patch) if self.patch > 1 else out
