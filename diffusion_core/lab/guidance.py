"""Steering a noise model to a digit or away from a loss (#16 item 5): classifier guidance with the noise-aware
classifier (models/classifier_guidance.py) on any noise model — a class-conditional one is steered from its
unconditional ε — beside classifier-free guidance of the class-conditional model, and the fidelity–diversity
curve over the scale w."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from diffusion_core.evaluation.metrics import (
    class_entropy,
    class_histogram,
    classifier_outputs,
    confident_fraction,
    fid_from_features,
)
from diffusion_core.io.checkpoints import LoadedCheckpoint
from diffusion_core.io.images import to_unit_numpy
from diffusion_core.lab.editing import noise_model
from diffusion_core.lab.inversion import eps_network
from diffusion_core.models.classifier_guidance import GradientGuided, target_loss
from diffusion_core.models.guidance import is_conditional
from diffusion_core.process import SamplerChoice
from diffusion_core.sampling import sample, sample_checkpoint

KINDS = ("classifier", "classifier-free", "ink", "thickness")
SAMPLER, STEPS = "dpm++2m-sde", 20


def digits_for(n: int, digit: int | None) -> torch.Tensor:
    """The digit each of n samples is steered to: `digit`, or 0–9 in turn."""
    return torch.full((n,), digit, dtype=torch.long) if digit is not None else torch.arange(n) % 10


def guided_model(checkpoint: LoadedCheckpoint, kind: str, scale: float, labels: torch.Tensor | None = None,
                 noisy_classifier: nn.Module | None = None, target: float = 0.15) -> nn.Module:
    """The checkpoint's network as ε̂ steered by `kind` ("classifier" towards `labels`, "ink"/"thickness" towards
    `target`) at scale w. ValueError when the classifier's schedule is not the model's."""
    process = noise_model(checkpoint)
    base = eps_network(checkpoint, len(labels) if labels is not None else 1, None)  # unconditional ε
    if kind == "classifier":
        if noisy_classifier is None:
            raise ValueError("classifier guidance needs the noise-aware classifier (python -m diffusion_core "
                             "train-noisy-classifier)")
        theirs = getattr(noisy_classifier, "alpha_bars", None)
        if theirs is None or len(theirs) != len(process.schedule.alpha_bars) or not torch.allclose(
                theirs.float(), process.schedule.alpha_bars.float(), atol=1e-6):
            raise ValueError(f"the noise-aware classifier was trained on the report's default schedule; "
                             f"{checkpoint.path.stem} uses {process.describe()}")
        return GradientGuided(base, process.schedule.alpha_bars, scale, classifier=noisy_classifier, labels=labels)
    if kind in ("ink", "thickness"):
        return GradientGuided(base, process.schedule.alpha_bars, scale, loss=target_loss(kind, target))
    raise ValueError(f"guidance must be one of classifier, ink, thickness here; got {kind!r}")


def guided_samples(checkpoint: LoadedCheckpoint, kind: str, scale: float, n: int = 8, digit: int | None = None,
                   seed: int = 0, noisy_classifier: nn.Module | None = None, target: float = 0.15) -> torch.Tensor:
    """n samples steered by `kind` at scale w (classifier-free: the class-conditional model's own guidance)."""
    if kind not in KINDS:
        raise ValueError(f"guidance must be one of {', '.join(KINDS)}; got {kind!r}")
    labels = digits_for(n, digit)
    if kind == "classifier-free":
        if not is_conditional(checkpoint.model):
            raise ValueError(f"classifier-free guidance needs a class-conditional model; {checkpoint.path.stem} "
                             "is not one")
        choice = SamplerChoice(SAMPLER, STEPS, seed=seed, digit=digit, guidance=float(scale))
        return sample_checkpoint(checkpoint, choice, n).samples
    model = guided_model(checkpoint, kind, scale, labels, noisy_classifier, target)
    return sample(noise_model(checkpoint), model, SamplerChoice(SAMPLER, STEPS, seed=seed), n,
                  precision="fp32").samples


def guidance_curve(checkpoint: LoadedCheckpoint, kind: str, scales: list[float], n: int, classifier: nn.Module,
                   reference, noisy_classifier: nn.Module | None = None, seed: int = 0,
                   on_progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """Fidelity against diversity over the scale w: for each w, n samples steered to the digits 0–9 in turn, with
    the shipped classifier's confident share and mean confidence in the asked digit (fidelity), the entropy of
    its predicted classes and the classifier-FID against `reference` (diversity)."""
    if not scales or len(scales) > 12 or any(not (isinstance(w, int | float) and math.isfinite(w)) for w in scales):
        raise ValueError(f"give 1 to 12 guidance scales; got {scales!r}")
    rows = []
    for i, w in enumerate(scales):
        images = guided_samples(checkpoint, kind, float(w), n, None, seed, noisy_classifier)
        feats, probs = classifier_outputs(classifier, to_unit_numpy(images))
        asked = digits_for(n, None).numpy()
        rows.append({"w": float(w), "confident": confident_fraction(probs),
                     "asked": float(np.mean(probs[np.arange(n), asked])),
                     "entropy": class_entropy(class_histogram(probs.argmax(1))),
                     "fid": fid_from_features(feats, reference), "n": n})
        if on_progress is not None:
            on_progress(i + 1, len(scales))
    return rows
