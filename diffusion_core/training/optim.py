"""The optimiser's schedule and the weights' average: learning rate with warm-up and cosine decay, EMA with warm-up."""

from __future__ import annotations

import math

import torch
from torch import nn


def lr_at(lr: float, step: int, total: int, warmup: int = 0, decay: str = "none") -> float:
    """The learning rate of optimiser step `step` (0-based) of `total`: lr·min(1, (step + 1)/warmup), times
    ½(1 + cos(π·step/total)) with cosine decay."""
    rate = lr * min(1.0, (step + 1) / warmup) if warmup else lr
    if decay == "cosine":
        rate *= 0.5 * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))
    return rate


def ema_decay_at(decay: float, step: int) -> float:
    """EMA decay with warm-up, min(decay, (1 + step)/(10 + step)): early on the average follows the
    weights closely, so a short run's EMA is not dominated by the random initial weights."""
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float, step: int) -> None:
    """θ_ema ← d·θ_ema + (1 − d)·θ with d = ema_decay_at(decay, step) (step: updates done before this one)."""
    d = ema_decay_at(decay, step)
    for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
        pe.lerp_(pm, 1.0 - d)
