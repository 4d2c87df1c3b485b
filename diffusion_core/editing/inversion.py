"""Inversion, round trips and interpolation with a noise model: DDIM / probability-flow ODE encoding of real
digits to z_T and decoding back (how much survives, against the number of steps), and paths between two
noises — lerp against slerp, with ‖z‖ along the path (Gaussian noise in d dimensions lies near ‖z‖ = √d, so
the midpoint of a straight line, ‖z‖ ≈ √(d/2), is a noise the model never saw)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from diffusion_core.editing.sdedit import noise_model
from diffusion_core.io.checkpoints import LoadedCheckpoint
from diffusion_core.models.guidance import NO_LABEL, ClassGuided, is_conditional, sample_labels
from diffusion_core.samplers import in_inference_mode, run_to_end
from diffusion_core.samplers.ddim import ddim_inversion, sample_ddim

MAX_STEPS = 500
INTERPOLATIONS = ("lerp", "slerp")


def network(checkpoint: LoadedCheckpoint, n: int, digit: int | None) -> nn.Module:
    """The network for n images as it predicts: unconditional (or `digit`) for a class-conditional model."""
    model = checkpoint.model.eval()
    if is_conditional(model):
        model = ClassGuided(model, sample_labels(n, NO_LABEL if digit is None else digit, model.num_classes), 0.0)
    return model


def eps_network(checkpoint: LoadedCheckpoint, n: int, digit: int | None) -> nn.Module:
    """The network as ε̂(z, t/T) for n images (see network)."""
    return noise_model(checkpoint).eps_model(network(checkpoint, n, digit)).eval()


def _steps(checkpoint: LoadedCheckpoint, steps: int) -> list[int]:
    process = noise_model(checkpoint)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= min(MAX_STEPS, process.T):
        raise ValueError(f"steps must be a whole number from 1 to {min(MAX_STEPS, process.T)}; got {steps!r}")
    return process.timesteps("uniform", process.T, steps)  # decreasing, from T


def invert(checkpoint: LoadedCheckpoint, x: torch.Tensor, steps: int = 50, digit: int | None = None) -> torch.Tensor:
    """z_T of data-space images x (N×C×H×W) by DDIM inversion on `steps` uniform steps."""
    ts = _steps(checkpoint, steps)
    D = noise_model(checkpoint).view(network(checkpoint, len(x), digit))
    with torch.inference_mode():
        return ddim_inversion(D, x, list(reversed(ts)))


def decode(checkpoint: LoadedCheckpoint, z_T: torch.Tensor, steps: int = 50, digit: int | None = None) -> torch.Tensor:
    """DDIM (η = 0) from z_T on the same `steps` uniform steps as invert."""
    ts = _steps(checkpoint, steps)
    D = noise_model(checkpoint).view(network(checkpoint, len(z_T), digit))
    return run_to_end(in_inference_mode(sample_ddim(D, z_T.float(), ts, torch.Generator(), eta=0.0))).samples


@dataclass
class RoundTrip:
    steps: list[int]
    rmse: list[float]  # per step count: root mean squared error of decode(invert(x)) against x (data space)
    reconstructions: dict[int, torch.Tensor]  # steps → decoded images
    z_T: dict[int, torch.Tensor]


def round_trips(checkpoint: LoadedCheckpoint, x: torch.Tensor, step_counts: list[int],
                digit: int | None = None, on_progress: Callable[[int, int], None] | None = None) -> RoundTrip:
    """Encode x to z_T and decode it back at each step count: the reconstruction error against steps;
    on_progress(done, total) after each."""
    if not 1 <= len(step_counts) <= 8:
        raise ValueError(f"give 1 to 8 step counts; got {len(step_counts)}")
    out = RoundTrip([], [], {}, {})
    for steps in step_counts:
        z = invert(checkpoint, x, steps, digit)
        back = decode(checkpoint, z, steps, digit)
        out.steps.append(steps)
        out.rmse.append(float(((back - x.float()) ** 2).mean().sqrt()))
        out.reconstructions[steps], out.z_T[steps] = back, z
        if on_progress is not None:
            on_progress(len(out.steps), len(step_counts))
    return out


def interpolate(z_a: torch.Tensor, z_b: torch.Tensor, points: int = 9, mode: str = "slerp") -> torch.Tensor:
    """`points` states from z_a to z_b (each C×H×W), straight (lerp) or along the great circle (slerp, which keeps
    ‖z‖ near √d when both ends are typical noise). ValueError for identical ends under slerp's angle 0: they give
    `points` copies, which is said."""
    if mode not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}; got {mode!r}")
    if isinstance(points, bool) or not isinstance(points, int) or not 2 <= points <= 32:
        raise ValueError(f"points must be a whole number from 2 to 32; got {points!r}")
    if z_a.shape != z_b.shape:
        raise ValueError(f"the two ends differ in shape: {tuple(z_a.shape)} and {tuple(z_b.shape)}")
    w = torch.linspace(0, 1, points).view(-1, *([1] * z_a.dim()))
    a, b = z_a.double(), z_b.double()
    if mode == "lerp":
        return ((1 - w) * a + w * b).float()
    cos = float((a * b).sum() / (a.norm() * b.norm()).clamp(min=1e-12))
    omega = math.acos(max(-1.0, min(1.0, cos)))
    if omega < 1e-6:  # identical directions: the great circle is a point; fall back to the straight line
        return ((1 - w) * a + w * b).float()
    return ((torch.sin((1 - w) * omega) * a + torch.sin(w * omega) * b) / math.sin(omega)).float()


def norms_over_sqrt_d(path: torch.Tensor) -> list[float]:
    """‖z‖/√d of each state of a path (1 for typical Gaussian noise)."""
    d = path[0].numel()
    return (path.double().flatten(1).norm(dim=1) / math.sqrt(d)).tolist()


def noise_ends(seeds: tuple[int, int], shape: tuple[int, ...] = (1, 28, 28)) -> torch.Tensor:
    """Two Gaussian noises z_T (2×C×H×W), one per seed."""
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(s)) for s in seeds])


def interpolation_paths(checkpoint: LoadedCheckpoint, ends: torch.Tensor, points: int = 9,
                        steps: int = 50, on_progress: Callable[[int, int], None] | None = None) -> dict[str, dict]:
    """For lerp and slerp between the two states `ends` (2×C×H×W z_T's): {mode: {"z": the path, "images": each
    state decoded by DDIM on `steps` steps, "norms": ‖z‖/√d along it}}. ValueError for identical ends."""
    if len(ends) != 2:
        raise ValueError(f"an interpolation needs exactly two ends; got {len(ends)}")
    if torch.equal(ends[0], ends[1]):
        raise ValueError("the two ends are the same state: every point of the path would be that one image; "
                         "choose two different seeds or digits")
    out = {}
    for mode in INTERPOLATIONS:
        path = interpolate(ends[0], ends[1], points, mode)
        out[mode] = {"z": path, "images": decode(checkpoint, path, steps), "norms": norms_over_sqrt_d(path)}
        if on_progress is not None:
            on_progress(len(out), len(INTERPOLATIONS))
    return out
