"""Editing with a noise model, reusing its samplers: SDEdit (noise an image to a strength s, denoise it back),
re-noising a state by n steps (the Reverse diffusion page's Diffuse ↑), and turning a drawing into a digit.

SDEdit (Meng et al. 2022): t = round(s·T), z_t = √ᾱ_t·x + √(1−ᾱ_t)·ε, then the reverse run from t. The signal
left at t is √ᾱ_t (SNR = ᾱ_t/(1−ᾱ_t)): what the model must keep; the rest it invents.
Re-noising by n steps draws z_{t+n} ~ q(z_{t+n} | z_t) = N(√(ᾱ_{t+n}/ᾱ_t)·z_t, (1 − ᾱ_{t+n}/ᾱ_t)·I).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from diffusion_core.io.checkpoints import LoadedCheckpoint
from diffusion_core.process import GaussianProcess, SamplerChoice
from diffusion_core.samplers import run_to_end
from diffusion_core.sampling import checkpoint_frames

MAX_STRENGTHS = 8


def noise_model(checkpoint: LoadedCheckpoint) -> GaussianProcess:
    """The checkpoint's process, which must be a noise model (ValueError naming what it is otherwise)."""
    if not checkpoint.process.noise_levels:
        raise ValueError(f"editing by noising needs a noise model; {checkpoint.path.stem} is a "
                         f"{checkpoint.process.type} model")
    return checkpoint.process


def strength_step(process: GaussianProcess, strength: float) -> int:
    """t = round(s·T) for a strength s in [0, 1] (ValueError outside)."""
    if isinstance(strength, bool) or not isinstance(strength, int | float) or not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be a number from 0 to 1; got {strength!r}")
    return int(round(strength * process.T))


def signal_left(process: GaussianProcess, t: int) -> dict:
    """{"t", "signal": α_t (the share of the image's amplitude left in z_t = α_t·x + σ_t·ε), "snr": α_t²/σ_t²}."""
    a, s = process.levels(t)
    return {"t": t, "signal": a, "snr": math.inf if s == 0 else (a / s) ** 2}


def noised(process: GaussianProcess, x: torch.Tensor, t: int, seed: int = 0) -> torch.Tensor:
    """z_t = √ᾱ_t·x + √(1−ᾱ_t)·ε for data-space images x (N×C×H×W), ε drawn with `seed`."""
    if t == 0:
        return x.float().clone()
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    return process.diffuse(x.float(), 0, t, eps)


def renoise(process: GaussianProcess, z_t: torch.Tensor, t: int, up: int, seed: int = 0) -> tuple[torch.Tensor, int]:
    """(z_{t+n}, t + n) ~ q(z_{t+n} | z_t) with n = up (capped at T): the forward process continued from z_t."""
    if isinstance(up, bool) or not isinstance(up, int) or up < 1:
        raise ValueError(f"diffuse by a whole number of steps ≥ 1; got {up!r}")
    if not 0 <= t < process.T:
        raise ValueError(f"z_t must be at a t from 0 to T − 1 = {process.T - 1} to diffuse further; got t = {t}")
    target = min(process.T, t + up)
    eps = torch.randn(z_t.shape, generator=torch.Generator().manual_seed(seed))
    return process.diffuse(z_t.float(), t, target, eps), target


def run_from(checkpoint: LoadedCheckpoint, z_t: torch.Tensor, t: int, choice: SamplerChoice) -> torch.Tensor:
    """The reverse run of `choice` from the state z_t at t (its steps capped at t) to samples."""
    steps = None if choice.steps is None else min(choice.steps, t)
    run = dataclasses.replace(choice, start=z_t, t_start=t, steps=steps)
    return run_to_end(checkpoint_frames(checkpoint, run, len(z_t))).samples


@dataclass
class SDEditResult:
    strength: float
    t: int
    signal: float  # √ᾱ_t
    snr: float
    noised: torch.Tensor  # z_t (N×C×H×W)
    edited: torch.Tensor  # the samples


def sdedit(checkpoint: LoadedCheckpoint, x: torch.Tensor, strength: float, choice: SamplerChoice) -> SDEditResult:
    """SDEdit of data-space images x at `strength` with the reverse run of `choice` (its seed draws the noise).
    Strength 0 returns x unchanged; strength 1 starts from (almost) pure noise, i.e. generation."""
    process = noise_model(checkpoint)
    if x.dim() != 4 or len(x) < 1:
        raise ValueError(f"images must be N×C×H×W; got {tuple(x.shape)}")
    t = strength_step(process, strength)
    z_t = noised(process, x, t, choice.seed)
    edited = x.float().clone() if t == 0 else run_from(checkpoint, z_t, t, choice)
    meter = signal_left(process, t)
    return SDEditResult(float(strength), t, meter["signal"], meter["snr"], z_t, edited)


def sdedit_strip(checkpoint: LoadedCheckpoint, x: torch.Tensor, strengths: list[float],
                 choice: SamplerChoice) -> list[SDEditResult]:
    """SDEdit of one image (1×C×H×W) at each strength, each with the same seed."""
    if not 1 <= len(strengths) <= MAX_STRENGTHS:
        raise ValueError(f"give 1 to {MAX_STRENGTHS} strengths; got {len(strengths)}")
    return [sdedit(checkpoint, x, s, choice) for s in strengths]


def drawing_to_digit(rgba: np.ndarray) -> torch.Tensor:
    """A canvas drawing (H×W×4 RGBA, dark strokes on white or on transparent) → a 1×1×28×28 data-space digit,
    framed as MNIST's are: the ink's bounding box scaled to fit 20×20, centred by its centre of mass.
    ValueError for an empty drawing."""
    from PIL import Image

    a = np.asarray(rgba, dtype=np.float32)
    if a.ndim != 3 or a.shape[2] < 3:
        raise ValueError(f"a drawing must be an H×W×RGB(A) image; got shape {a.shape}")
    alpha = a[..., 3] / 255.0 if a.shape[2] == 4 else np.ones(a.shape[:2], dtype=np.float32)
    ink = alpha * (1.0 - a[..., :3].mean(axis=2) / 255.0)  # dark, opaque pixels
    if a.shape[2] == 4 and ink.max() < 0.05 and alpha.min() < 0.5:  # light strokes on a transparent canvas
        ink = alpha
    if ink.max() < 0.05:
        raise ValueError("the drawing is empty: draw a digit first")
    rows, cols = np.nonzero(ink > 0.05)
    box = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    scale = 20.0 / max(box.shape)
    size = (max(1, round(box.shape[1] * scale)), max(1, round(box.shape[0] * scale)))
    small = np.asarray(Image.fromarray((box / box.max() * 255).astype(np.uint8)).resize(size, Image.LANCZOS),
                       dtype=np.float32) / 255.0
    digit = np.zeros((28, 28), dtype=np.float32)
    r0, c0 = (28 - small.shape[0]) // 2, (28 - small.shape[1]) // 2
    digit[r0:r0 + small.shape[0], c0:c0 + small.shape[1]] = small
    mass = digit.sum()
    cy, cx = (np.arange(28)[:, None] * digit).sum() / mass, (np.arange(28)[None, :] * digit).sum() / mass
    digit = np.roll(digit, (int(round(13.5 - cy)), int(round(13.5 - cx))), axis=(0, 1))
    return torch.from_numpy(np.clip(digit, 0.0, 1.0) - 0.5).view(1, 1, 28, 28)


def classify(classifier: torch.nn.Module, images: torch.Tensor) -> list[tuple[int, float]]:
    """(digit, confidence) the shipped classifier gives each data-space image."""
    from diffusion_core.evaluation.metrics import classifier_outputs
    from diffusion_core.io.images import to_unit_numpy

    _, probs = classifier_outputs(classifier, to_unit_numpy(images))
    return [(int(p.argmax()), float(p.max())) for p in probs]


def continuation(process: GaussianProcess, choice: SamplerChoice, z: torch.Tensor, t: int) -> SamplerChoice:
    """The reverse run from a re-noised state z at t with the settings of `choice`: its sampler on at most t
    steps, or — for a sampler that only runs all T steps (ancestral) — the quick DPM-Solver++(2M) SDE."""
    spec = process.sampler(choice.sampler)
    if spec.all_steps:
        quick = process.quick_choice()
        return dataclasses.replace(choice, sampler=quick.sampler, steps=min(quick.steps or t, t), start=z,
                                   t_start=t, spacing=None)
    steps = spec.timesteps(process, dataclasses.replace(choice, t_start=process.T))  # its steps from T
    return dataclasses.replace(choice, steps=min(len(steps), t), start=z, t_start=t)
