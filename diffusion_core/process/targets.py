"""What a noise model's network predicts, and how its squared error is weighted over noise levels.

With a = √ᾱ_t, s = √(1−ᾱ_t), z_t = a·x0 + s·ε and SNR = a²/s² = ᾱ_t/(1−ᾱ_t), the network g(z_t, t/T) predicts
    "eps": ε             (the report's)     x̂0 = (z_t − s·ε̂)/a
    "x0":  x0                               ε̂ = (z_t − a·x̂0)/s
    "v":   v = a·ε − s·x0 (Salimans & Ho)  x̂0 = a·z_t − s·v̂,  ε̂ = s·z_t + a·v̂
Each target's squared error is a multiple of x0's: ‖ε̂−ε‖² = SNR·‖x̂0−x0‖², ‖v̂−v‖² = (SNR+1)·‖x̂0−x0‖².
A weighting is the weight λ(t) it puts on ‖x̂0−x0‖² (so it means the same for every target):
    "uniform":      the plain mean squared error of the target: λ = SNR (ε), 1 (x0), SNR + 1 (v)
    "min-snr":      λ = min(SNR, γ)                (Hang et al. 2023)
    "soft-min-snr": λ = SNR·γ / (SNR + γ)          (the harmonic soft minimum of SNR and γ)
and the loss on the target is w(t)·‖target − g‖² with w = λ / (the target's multiple).
"""

from __future__ import annotations

import torch
from torch import nn

PREDICTIONS = ("eps", "x0", "v")
PREDICTION_NAMES = {"eps": "ε (noise)", "x0": "x0 (clean image)", "v": "v = √ᾱ·ε − √(1−ᾱ)·x0"}
WEIGHTINGS = ("uniform", "min-snr", "soft-min-snr")
DEFAULT_GAMMA = 5.0  # Hang et al.'s γ


def validate_target(prediction: object, weighting: object, gamma: object) -> None:
    """ValueError naming the field that is wrong."""
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {', '.join(PREDICTIONS)}; got {prediction!r}")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {', '.join(WEIGHTINGS)}; got {weighting!r}")
    if isinstance(gamma, bool) or not isinstance(gamma, int | float) or not 0 < gamma <= 1e4:
        raise ValueError(f"snr_gamma (γ) must be a number in (0, 10000]; got {gamma!r}")


def target_multiple(prediction: str, snr: torch.Tensor) -> torch.Tensor:
    """‖target error‖² / ‖x0 error‖²: SNR (ε), 1 (x0), SNR + 1 (v)."""
    return {"eps": snr, "x0": torch.ones_like(snr), "v": snr + 1.0}[prediction]


def x0_weight(prediction: str, weighting: str, snr: torch.Tensor, gamma: float = DEFAULT_GAMMA) -> torch.Tensor:
    """λ(t): the weight the loss puts on ‖x̂0 − x0‖² at each SNR."""
    if weighting == "uniform":
        return target_multiple(prediction, snr)
    if weighting == "min-snr":
        return snr.clamp(max=gamma)
    return snr * gamma / (snr + gamma)


def loss_weight(prediction: str, weighting: str, snr: torch.Tensor, gamma: float = DEFAULT_GAMMA) -> torch.Tensor:
    """w(t) on the target's squared error: λ / the target's multiple (1 for "uniform")."""
    return x0_weight(prediction, weighting, snr, gamma) / target_multiple(prediction, snr)


def training_target(prediction: str, x0: torch.Tensor, eps: torch.Tensor, a: torch.Tensor,
                    s: torch.Tensor) -> torch.Tensor:
    """What the network is trained to output for z_t = a·x0 + s·ε."""
    if prediction == "eps":
        return eps
    if prediction == "x0":
        return x0
    return a * eps - s * x0


def eps_from_output(prediction: str, z: torch.Tensor, output: torch.Tensor, a: torch.Tensor | float,
                    s: torch.Tensor | float) -> torch.Tensor:
    """ε̂ from the network's output at z_t."""
    if prediction == "eps":
        return output
    if prediction == "x0":
        return (z - a * output) / s
    return s * z + a * output


class EpsView(nn.Module):
    """A network that predicts x0 or v, seen as one that predicts ε: called as model(z_t, t/T[, …]) like any
    noise model, so every sampler (written for ε̂) runs it unchanged."""

    def __init__(self, model: nn.Module, prediction: str, alpha_bars: torch.Tensor) -> None:
        super().__init__()
        self.model, self.prediction = model, prediction
        self.register_buffer("alpha_bars", alpha_bars.float().clone(), persistent=False)
        self.T = len(alpha_bars) - 1

    def forward(self, z: torch.Tensor, t_frac: torch.Tensor, *args: object) -> torch.Tensor:
        t = (t_frac.float() * self.T).round().long().clamp(0, self.T)
        ab = self.alpha_bars.to(z.device)[t].view(-1, *([1] * (z.dim() - 1)))
        out = self.model(z, t_frac, *args).float()
        return eps_from_output(self.prediction, z.float(), out, ab.sqrt(), (1.0 - ab).sqrt())


def weighting_curves(choices: list[tuple[str, str]], log_snrs: torch.Tensor,
                     gamma: float = DEFAULT_GAMMA) -> dict[str, torch.Tensor]:
    """{"ε · uniform": λ at each log-SNR, …} for (prediction, weighting) pairs: the weight each choice puts on
    ‖x̂0 − x0‖² across noise levels (what the Schedules page plots). ValueError for an unknown choice."""
    snr = log_snrs.double().exp()
    curves = {}
    for prediction, weighting in choices:
        validate_target(prediction, weighting, gamma)
        curves[f"{prediction} · {weighting}"] = x0_weight(prediction, weighting, snr, gamma)
    return curves
