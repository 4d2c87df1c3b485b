"""Class labels for class-conditional denoisers and classifier-free guidance (Ho & Salimans 2022).

Training drops each label with probability p (label −1: "no label"), so one network learns both
ε(z_t, t, y) and the unconditional ε(z_t, t, ∅). Sampling then uses the guided prediction

    ε̃ = (1 + w)·ε(z_t, t, y) − w·ε(z_t, t, ∅)

w = 0 is the plain conditional model; larger w gives more typical digits of class y (less variety).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

NO_LABEL = -1
MAX_GUIDANCE = 20.0


def is_conditional(model: nn.Module) -> bool:
    """True for a denoiser that takes class labels (a U-Net built with num_classes)."""
    return bool(getattr(model, "num_classes", None))


def drop_labels(y: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Replace each label by NO_LABEL with probability p (one uniform draw per label from `generator`)."""
    drop = torch.rand(y.shape, generator=generator).to(y.device) < p
    return torch.where(drop, torch.full_like(y, NO_LABEL), y)


def validate_guidance(guidance: float) -> float:
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not math.isfinite(guidance) \
            or not 0 <= guidance <= MAX_GUIDANCE:
        raise ValueError(f"guidance must be a number between 0 and {MAX_GUIDANCE:g} (0: plain conditional "
                         f"model); got {guidance!r}")
    return float(guidance)


def sample_labels(n: int, digit: int | None, num_classes: int, seed: int = 0,
                  seeds: Sequence[int] | None = None) -> torch.Tensor:
    """Labels for n samples: `digit` for all of them, or every class in turn when None — sample k (seed + k) gets
    class (seed + k) mod num_classes, so with per-sample seeds its label, like its noise, follows its own seed
    (`seeds`: each sample's own, n of them)."""
    if digit is None:
        return (torch.tensor(list(seeds)) if seeds is not None else seed + torch.arange(n)) % num_classes
    if isinstance(digit, bool) or not isinstance(digit, int) or not -1 <= digit < num_classes:
        raise ValueError(f"digit must be a class 0..{num_classes - 1} (or -1 for unconditional); got {digit!r}")
    return torch.full((n,), digit, dtype=torch.int64)


class ClassGuided(nn.Module):
    """A conditional denoiser with its labels and guidance bound: called as model(z_t, t/T) like any
    unconditional one, so the samplers stay unchanged. Conditional and unconditional predictions
    come from one batched call. labels=None: the classes in turn for whatever batch comes in."""

    def __init__(self, model: nn.Module, labels: torch.Tensor | None = None, guidance: float = 0.0) -> None:
        super().__init__()
        if not is_conditional(model):
            raise ValueError("class labels and guidance need a class-conditional model (trained with --conditional)")
        self.inner = model
        self.guidance = validate_guidance(guidance)
        self.labels = None if labels is None else labels.long()

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        labels = sample_labels(z.shape[0], None, self.inner.num_classes) if self.labels is None else self.labels
        y = labels.to(z.device)
        if self.guidance == 0 or bool((y == NO_LABEL).all()):
            return self.inner(z, t, y)
        both = self.inner(torch.cat([z, z]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, NO_LABEL)]))
        eps_y, eps_none = both.chunk(2)
        return (1 + self.guidance) * eps_y - self.guidance * eps_none  # ε̃ = (1+w) ε(z,t,y) − w ε(z,t,∅)
