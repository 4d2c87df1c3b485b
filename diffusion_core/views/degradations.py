"""What the Degradations page shows, computed here (the page only draws it):

- a degradation's tunable parameters and their defaults (for input widgets);
- its preview over t: the quantity its strength schedule drives (the blur's σ_t = 0.02 + 0.01·t in
  the report) and one image degraded at t = 0, T/10, …, T (the report's Figure 6);
- conditional restoration of real digits by every cold sampler, side by side, with RMSE / SSIM
  against the originals;
- unconditional samples from a black start (the report) and from the paper's mixture start, with the
  spread of each set, and why the black start collapses (start_comparison): every black start is the
  same image, so a deterministic sampler returns copies of one image (a spread of 0), and that image is
  unlike any real digit at t = T, so what it restores to need not be a digit at all.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.spatial.distance import pdist
from torch import nn

from diffusion_core.evaluation.restoration_metrics import restoration_scores
from diffusion_core.evaluation.spectra import radial_power_spectrum
from diffusion_core.io.checkpoints import LoadedCheckpoint
from diffusion_core.io.data import DatasetUnavailableError
from diffusion_core.io.images import to_unit_numpy
from diffusion_core.io.mixtures import dataset_mixture
from diffusion_core.process import SamplerChoice
from diffusion_core.process.cold import COLD_STARTS, black_start, conditional_start
from diffusion_core.process.degradations import DEGRADATIONS, Degradation, make_degradation, preview_strip
from diffusion_core.samplers import run_to_end
from diffusion_core.samplers.base import model_call
from diffusion_core.sampling import sample_checkpoint


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
    kind: str = "blur"

    @property
    def strip_title(self) -> str:
        """'x masked at t = 0, 2, …' — the heading of the image strip, true to the degradation."""
        return f"x {DEGRADATIONS[self.kind].done_to_x} at t = " + ", ".join(map(str, self.ts))


def degradation_preview(degradation: Degradation, image: torch.Tensor, ts: list[int] | None = None,
                        seed: int = 0) -> DegradationPreview:
    """The schedule curve and D(x, t) of one data-space image (C×H×W) at `ts` (default t = 0, T/10, …, T)."""
    label, values = degradation.strength_curve()
    ts, frames = preview_strip(degradation, image, ts, seed)
    return DegradationPreview(label, np.asarray(values, dtype=np.float64), ts, to_unit_numpy(frames),
                              degradation.kind)


def degradation_spectra(degradation: Degradation, images: torch.Tensor, ts: list[int] | None = None,
                        seed: int = 0) -> dict[int, np.ndarray]:
    """t → radial power spectrum of D(x, t) over data-space images N×C×H×W (default t = 0, T/4, T/2, 3T/4, T);
    hybrids draw their noise with `seed`. Blur removes high frequencies outright; noise raises a floor."""
    if ts is None:
        ts = sorted({round(degradation.T * i / 4) for i in range(5)})
    x = images.float()
    noise = degradation.draw_noise(tuple(x.shape), torch.Generator().manual_seed(seed), x.device)
    with torch.no_grad():
        return {int(t): radial_power_spectrum(degradation(x, int(t), noise)) for t in ts}


def cold_parts(checkpoint: LoadedCheckpoint) -> tuple[nn.Module, Degradation]:
    """(restorer R, degradation D) of a cold checkpoint; ValueError for a noise model."""
    if not checkpoint.process.degrades:
        raise ValueError(f"this is a {checkpoint.process.type} diffusion model; restorations need a "
                         "cold-diffusion model (one trained with a degradation, e.g. the report's blur)")
    return checkpoint.model, checkpoint.process.degradation


@dataclass
class Restorations:
    original: np.ndarray  # N×H×W pixels in [0, 1]
    degraded: np.ndarray  # x_t = D(x, t_start), the samplers' start, as pixels in [0, 1] (clipped)
    t_start: int
    restored: dict[str, np.ndarray]  # sampler → N×H×W in [0, 1] (clipped)
    scores: dict[str, dict[str, float]]  # sampler → {"rmse", "ssim"}: means over the N images
    steps: dict[str, int] = field(default_factory=dict)  # sampler → the network steps it took

    def panels(self) -> dict[str, np.ndarray]:
        """Titled images for one row: the original, x_t, then each restoration with its step count."""
        return {"original": self.original, f"degraded, t = {self.t_start}": self.degraded,
                **{f"{s} ({n} step{'s' if n != 1 else ''})": self.restored[s] for s, n in self.steps.items()}}


def restore(checkpoint: LoadedCheckpoint, x: torch.Tensor, samplers: tuple[str, ...] | None = None,
            steps: int | None = None, t_start: int | None = None, seed: int = 0) -> Restorations:
    """Conditional generation: degrade real data-space images x (N×C×H×W) to t_start (default T), restore
    them with each sampler (default: all the model's; `steps` for naive / improved; direct takes one) and
    score against x."""
    model, degradation = cold_parts(checkpoint)
    t = degradation.T if t_start is None else t_start
    if isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= degradation.T:
        raise ValueError(f"t_start (how far to degrade) must be an integer between 1 and T={degradation.T}; got {t!r}")
    x = x.float()
    x_t = conditional_start(degradation, x, seed, t)
    original = to_unit_numpy(x)
    restored, scores, taken = {}, {}, {}
    for sampler in checkpoint.process.samplers if samplers is None else samplers:
        choice = SamplerChoice(sampler, steps, seed=seed, start=x_t, t_start=t)
        restored[sampler] = to_unit_numpy(run_to_end(checkpoint.process.frames(model, choice, len(x))).samples)
        scores[sampler] = restoration_scores(restored[sampler], original)
        taken[sampler] = checkpoint.process.step_count(choice)
    return Restorations(original, to_unit_numpy(x_t), t, restored, scores, taken)


def mean_pairwise_distance(images01: np.ndarray) -> float:
    """Spread of a sample set: the mean RMSE √(mean (a − b)²) over all pairs of images (0: all identical)."""
    a = np.asarray(images01, dtype=np.float64).reshape(len(images01), -1)
    if len(a) < 2:
        raise ValueError(f"the spread needs at least 2 images; got {len(a)}")
    return float((pdist(a) / np.sqrt(a.shape[1])).mean())


def unconditional_samples(checkpoint: LoadedCheckpoint, sampler: str = "improved", n: int = 8, seed: int = 0,
                          steps: int | None = None, starts: tuple[str, ...] = COLD_STARTS) -> dict[str, np.ndarray]:
    """Samples of a cold model from each start ("black", "mixture"), same seed, as pixels in [0, 1]. The mixture's
    run starts at the degradation's generation_t, so it takes at most that many of the `steps`."""
    cold_parts(checkpoint)
    return {start: to_unit_numpy(sample_checkpoint(checkpoint, SamplerChoice(sampler, steps, seed=seed, start=start),
                                                   n).samples)
            for start in starts}


BLANK_BELOW = 0.2  # a sample whose brightest pixel is under this is an empty (black) square


@dataclass
class StartComparison:
    """Why the black start collapses, in pictures and numbers (for a cold model)."""

    starts: dict[str, np.ndarray]  # "black start x_T", "real digits at t = T", "mixture start x_T": N×H×W in [0, 1]
    first_guess: dict[str, np.ndarray]  # R(x_T, T) from the black start and from real digits at t = T
    black_spread: float  # mean pairwise RMSE of the black-start samples (0: all the same image)
    black_brightest: float  # the brightest pixel of any black-start sample
    real_T_mean: float  # mean brightness of real digits at t = T (what the model saw there in training)
    black_T_mean: float  # mean brightness of the black start

    def explanation(self, n: int, kind: str) -> str:
        """What the black-start samples are, and why, in plain words true to the numbers."""
        same = self.black_spread < 1e-6
        what = ("empty (black) squares" if self.black_brightest < BLANK_BELOW else
                "one image" if same else "images that barely differ")
        first = (f"All {n} black-start samples begin from one image, x_T = D(black, T), the same for every sample"
                 + (", and the sampler is deterministic, so they end as one image too (spread 0)." if same else
                    " (this degradation adds noise, so they differ a little)."))
        verb = DEGRADATIONS[kind].done_to_x
        if abs(self.real_T_mean - self.black_T_mean) < 0.02:
            unlike = (f" Real digits {verb} to t = T look the same (mean brightness {self.real_T_mean:.2f}, the black "
                      f"start {self.black_T_mean:.2f}), so nothing in the start tells the model which digit to draw")
        else:
            unlike = (f" That start is unlike what the model saw at t = T in training: real digits {verb} to t = T "
                      f"have a mean brightness of {self.real_T_mean:.2f}, the black start {self.black_T_mean:.2f}")
        unlike += (f". Compare the model's first guess R(x_T, T) from each (second row). The walk back ends at {what} "
                   f"(brightest pixel {self.black_brightest:.2f}).")
        return first + unlike + (" The mixture start draws a different x_T for each sample from a fit to real "
                                 "degraded digits, so each walk back starts somewhere a digit could have come from.")


def start_comparison(checkpoint: LoadedCheckpoint, black_samples: np.ndarray, real: torch.Tensor,
                     n: int = 4, seed: int = 0) -> StartComparison:
    """The black start, real digits at t = T and the mixture start side by side, with the restorer's
    first guess R(x_T, T) from the black start and from the real digits; `black_samples` are the
    black-start samples already drawn (pixels in [0, 1]) and `real` data-space test digits N×C×H×W."""
    model, degradation = cold_parts(checkpoint)
    real = real[:n].float()
    n = len(real)
    noise = degradation.draw_noise(tuple(real.shape), torch.Generator().manual_seed(seed), "cpu")
    black = black_start(degradation, n, tuple(real.shape[1:]), noise)
    real_T = degradation(real, degradation.T, noise)
    try:
        mixture = dataset_mixture(degradation, checkpoint.config.get("dataset", "mnist"), t=degradation.T)
        mix = mixture.sample(n, torch.Generator().manual_seed(seed))
    except DatasetUnavailableError:  # no training digits here: show the other two
        mix = None
    with torch.no_grad():
        guess_black = model_call(model, black, degradation.T, degradation.T)
        guess_real = model_call(model, real_T, degradation.T, degradation.T)
    starts = {"black start x_T = D(black, T)": to_unit_numpy(black),
              "real digits at t = T": to_unit_numpy(real_T)}
    if mix is not None:
        starts["mixture start x_T"] = to_unit_numpy(mix)
    images = np.asarray(black_samples, dtype=np.float64)
    return StartComparison(
        starts=starts,
        first_guess={"R(x_T, T) from the black start": to_unit_numpy(guess_black),
                     "R(x_T, T) from real digits at t = T": to_unit_numpy(guess_real)},
        black_spread=mean_pairwise_distance(images) if len(images) > 1 else 0.0,
        black_brightest=float(images.max()) if images.size else 0.0,
        real_T_mean=float(to_unit_numpy(real_T).mean()), black_T_mean=float(to_unit_numpy(black).mean()),
    )
