"""What the Degradations page shows, computed here (the page only draws it):

- a degradation's tunable parameters and their defaults (for input widgets);
- its preview over t: the quantity its strength schedule drives (the blur's σ_t = 0.02 + 0.01·t in
  the report) and one image degraded at t = 0, T/10, …, T (the report's Figure 6);
- conditional restoration of real digits by every cold sampler, side by side, with RMSE / SSIM
  against the originals;
- unconditional samples from a black start (the report) and from the paper's mixture start, with the
  spread of each set (the black start is one image, so a deterministic sampler returns copies of one
  digit: a spread of 0 — the collapse the report saw).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.distance import pdist
from torch import nn

from .checkpoints import LoadedCheckpoint
from .cold import COLD_SAMPLERS, COLD_STARTS, cold_steps, conditional_start
from .degradations import Degradation, degradation_from_config, make_degradation, preview_strip
from .images import to_unit_numpy
from .restoration_metrics import restoration_scores
from .samplers import run_to_end
from .sampling import sample_checkpoint


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of a degradation kind besides T and the schedule."""

    name: str
    default: float | int | None  # None: optional (e.g. kernel_size: the whole image)
    integer: bool


def degradation_parameters(kind: str) -> list[ParamSpec]:
    """The parameters make_degradation(kind, T, schedule, **params) accepts, with their defaults."""
    deg = make_degradation(kind)  # refuses an unknown kind
    signature = inspect.signature(type(deg).__init__)
    specs = []
    for name, default in deg.params.items():
        annotation = str(signature.parameters[name].annotation)
        specs.append(ParamSpec(name, default, integer="int" in annotation and "float" not in annotation))
    return specs


@dataclass
class DegradationPreview:
    label: str  # what the schedule drives, e.g. "blur σ_t"
    curve: np.ndarray  # its value at t = 0..T
    ts: list[int]
    frames: np.ndarray  # len(ts)×H×W: D(x, t) as pixels in [0, 1]


def degradation_preview(degradation: Degradation, image: torch.Tensor, ts: list[int] | None = None,
                        seed: int = 0) -> DegradationPreview:
    """The schedule curve and D(x, t) of one data-space image (C×H×W) at `ts` (default t = 0, T/10, …, T)."""
    label, values = degradation.strength_curve()
    ts, frames = preview_strip(degradation, image, ts, seed)
    return DegradationPreview(label, np.asarray(values, dtype=np.float64), ts, to_unit_numpy(frames))


def cold_parts(checkpoint: LoadedCheckpoint) -> tuple[nn.Module, Degradation]:
    """(restorer R, degradation D) of a cold checkpoint; ValueError for a noise model."""
    diffusion = checkpoint.config.get("diffusion", {})
    if diffusion.get("type") != "cold":
        raise ValueError(f"this is a {diffusion.get('type', 'unknown')} diffusion model; restorations need a "
                         "cold-diffusion model (one trained with a degradation, e.g. the report's blur)")
    return checkpoint.model, degradation_from_config(diffusion["degradation"])


@dataclass
class Restorations:
    original: np.ndarray  # N×H×W pixels in [0, 1]
    degraded: np.ndarray  # x_t = D(x, t_start), the samplers' start, as pixels in [0, 1] (clipped)
    t_start: int
    restored: dict[str, np.ndarray]  # sampler → N×H×W in [0, 1] (clipped)
    scores: dict[str, dict[str, float]]  # sampler → {"rmse", "ssim"}: means over the N images


def restore(checkpoint: LoadedCheckpoint, x: torch.Tensor, samplers: tuple[str, ...] = COLD_SAMPLERS,
            steps: int | None = None, t_start: int | None = None, seed: int = 0) -> Restorations:
    """Conditional generation: degrade real data-space images x (N×C×H×W) to t_start (default T), restore
    them with each sampler (`steps` for naive / improved; direct takes one) and score against x."""
    model, degradation = cold_parts(checkpoint)
    t = degradation.T if t_start is None else t_start
    if isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= degradation.T:
        raise ValueError(f"t_start (how far to degrade) must be an integer between 1 and T={degradation.T}; got {t!r}")
    x = x.float()
    x_t = conditional_start(degradation, x, seed, t)
    original = to_unit_numpy(x)
    restored, scores = {}, {}
    for sampler in samplers:
        frames = cold_steps(model, degradation, sampler, x_t, len(x), seed,
                            None if sampler == "direct" else steps, t_start=t)
        restored[sampler] = to_unit_numpy(run_to_end(frames, ()).samples)
        scores[sampler] = restoration_scores(restored[sampler], original)
    return Restorations(original, to_unit_numpy(x_t), t, restored, scores)


def mean_pairwise_distance(images01: np.ndarray) -> float:
    """Spread of a sample set: the mean RMSE √(mean (a − b)²) over all pairs of images (0: all identical)."""
    a = np.asarray(images01, dtype=np.float64).reshape(len(images01), -1)
    if len(a) < 2:
        raise ValueError(f"the spread needs at least 2 images; got {len(a)}")
    return float((pdist(a) / np.sqrt(a.shape[1])).mean())


def unconditional_samples(checkpoint: LoadedCheckpoint, sampler: str = "improved", n: int = 8, seed: int = 0,
                          steps: int | None = None, starts: tuple[str, ...] = COLD_STARTS) -> dict[str, np.ndarray]:
    """Samples of a cold model from each start ("black", "mixture"), same seed, as pixels in [0, 1]."""
    cold_parts(checkpoint)
    return {start: to_unit_numpy(sample_checkpoint(checkpoint, sampler, n, seed,
                                                   None if sampler == "direct" else steps, start=start).samples)
            for start in starts}
