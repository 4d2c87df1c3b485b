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

from diffusion_core.editing.inversion import eps_network
from diffusion_core.editing.sdedit import noise_model
from diffusion_core.evaluation.metrics import (
    class_entropy,
    class_histogram,
    classifier_outputs,
    confident_fraction,
    fid_from_features,
    within_class_spread,
)
from diffusion_core.io.checkpoints import LoadedCheckpoint
from diffusion_core.io.images import to_unit_numpy
from diffusion_core.models.classifier_guidance import GradientGuided, target_loss
from diffusion_core.models.guidance import is_conditional
from diffusion_core.process import SamplerChoice
from diffusion_core.sampling import sample, sample_checkpoint

KINDS = ("classifier", "classifier-free", "ink", "thickness")
SAMPLER, STEPS = "dpm++2m-sde", 20


def digits_for(n: int, digit: int | None) -> torch.Tensor:
    """The digit each of n samples is steered to: `digit`, or 0–9 in turn."""
    return torch.full((n,), digit, dtype=torch.long) if digit is not None else torch.arange(n) % 10


def on_classifier_schedule(noisy_classifier: nn.Module | None, alpha_bars: torch.Tensor) -> bool:
    """Whether a model's ᾱ_t are the noise-aware classifier's (it was trained on one schedule only)."""
    theirs = getattr(noisy_classifier, "alpha_bars", None)
    return theirs is not None and len(theirs) == len(alpha_bars) and torch.allclose(
        theirs.float(), alpha_bars.float(), atol=1e-6)


def guided_model(checkpoint: LoadedCheckpoint, kind: str, scale: float, labels: torch.Tensor | None = None,
                 noisy_classifier: nn.Module | None = None, target: float = 0.15) -> nn.Module:
    """The checkpoint's network as ε̂ steered by `kind` ("classifier" towards `labels`, "ink"/"thickness" towards
    `target`) at scale w. ValueError when the classifier's schedule is not the model's."""
    process = noise_model(checkpoint)
    if not process.guidable:
        raise ValueError(f"guidance by a classifier or a loss is written for noise models on a β schedule (on ε̂ and "
                         f"ᾱ_t); {checkpoint.path.stem} is a {process.model_noun}: sample it unguided, or train a "
                         "class-conditional one for classifier-free guidance")
    base = eps_network(checkpoint, len(labels) if labels is not None else 1, None)  # unconditional ε
    if kind == "classifier":
        if noisy_classifier is None:
            raise ValueError("classifier guidance needs the noise-aware classifier (python -m diffusion_core "
                             "train-noisy-classifier)")
        if not on_classifier_schedule(noisy_classifier, process.schedule.alpha_bars):
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
    return sample(noise_model(checkpoint).predicting_eps(), model, SamplerChoice(SAMPLER, STEPS, seed=seed), n,
                  precision="fp32").samples


CURVE_KINDS = ("classifier-free", "classifier")  # the Evaluate page's choice, the first its default
PREFERRED = {"classifier-free": ("default-unet",), "classifier": ("uncond-unet", "quick-unet")}


def cannot_guide(config: dict, kind: str, noisy_classifier: nn.Module | None = None) -> str | None:
    """Why a checkpoint (its config) cannot be guided by `kind`, or None when it can: classifier-free guidance
    needs a class-conditional noise model; classifier guidance a noise model on the noise-aware classifier's
    schedule (and the classifier)."""
    from diffusion_core.process import GaussianProcess
    from diffusion_core.process.schedules import schedule_from_config

    diffusion = config.get("diffusion") or {}
    if diffusion.get("type") != GaussianProcess.type:
        return f"guidance steers noise models; a {diffusion.get('type', 'model without a process')} model has no ε"
    if kind == "classifier-free":
        if not ((config.get("model") or {}).get("params") or {}).get("num_classes"):
            return "classifier-free guidance needs a class-conditional model (trained with --conditional)"
        return None
    if kind != "classifier":
        raise ValueError(f"guidance must be one of {', '.join(CURVE_KINDS)}; got {kind!r}")
    if getattr(noisy_classifier, "alpha_bars", None) is None:
        return "classifier guidance needs the noise-aware classifier (python -m diffusion_core train-noisy-classifier)"
    try:
        ours = schedule_from_config(diffusion.get("schedule") or {}).alpha_bars
    except (ValueError, TypeError, KeyError) as exc:
        return f"its schedule cannot be read ({exc})"
    if not on_classifier_schedule(noisy_classifier, ours):
        return "the noise-aware classifier was trained on the report's default schedule (linear β 1e-4 → 0.02, " \
               "T = 1000); this model uses another"
    return None


def preferred_model(names: list[str], kind: str) -> str:
    """The model a guidance curve opens on: a shipped one that shows the trade-off (classifier-free: the
    conditional default-unet; classifier: an unconditional U-Net, whose w = 0 is a real model, not a
    conditional model's weaker null-label mode), else the first."""
    return next((n for n in PREFERRED.get(kind, ()) if n in names), names[0])


def real_variety(classifier: nn.Module) -> float:
    """Real digits' own variety within a class: the spread of the classifier's features of the MNIST test digits
    within each class (what guidance_curve's `reference_spread` divides a curve's spread by)."""
    from diffusion_core.io.data import load_dataset

    test = load_dataset("mnist", "test", download=False)
    feats, _ = classifier_outputs(classifier, to_unit_numpy(test.images))
    return within_class_spread(feats, test.labels.numpy())


def w0_meaning(kind: str, conditional: bool) -> str:
    """What the w = 0 point of a curve is."""
    if kind == "classifier-free":
        return "w = 0 is the conditional model ε(z_t, t, y) without guidance"
    if conditional:
        return "w = 0 is this conditional model's null-label (unconditional) mode, which it learned only on its " \
               "dropped labels, so it is weaker than the model with labels"
    return "w = 0 is the unconditional model, not steered"


def describe_curve(rows: list[dict]) -> str:
    """What the curve shows, read from its rows (sorted by w): how fidelity, variety and FID move from the
    smallest to the largest w, and where FID is lowest."""
    rows = sorted(rows, key=lambda r: r["w"])
    a, b = rows[0], rows[-1]

    def move(key: str, fmt: str) -> str:
        x, y = a[key], b[key]
        verb = "rises" if y > x * 1.02 + 1e-9 else "falls" if y < x * 0.98 - 1e-9 else "stays"
        return f"{verb} from {x:{fmt}} to {y:{fmt}}" if verb != "stays" else f"stays near {x:{fmt}}"

    best = min(rows, key=lambda r: r["fid"])
    where = ("at the smallest w" if best is a else "at the largest w" if best is b else "in between")
    text = (f"From w = {a['w']:g} to w = {b['w']:g}: the confident share {move('confident', '.0%')}; ")
    if a.get("variety") is not None:
        text += f"the variety within a digit {move('variety', '.2f')} (1 = as varied as real digits); "
    text += (f"the classifier-FID {move('fid', '.1f')}, lowest {where} (w = {best['w']:g}, {best['fid']:.1f}; "
             f"n = {best['n']} per point")
    return text + (", biased high below 1,000)." if best["n"] < 1000 else ").")


def guidance_curve(checkpoint: LoadedCheckpoint, kind: str, scales: list[float], n: int, classifier: nn.Module,
                   reference, noisy_classifier: nn.Module | None = None, seed: int = 0,
                   on_progress: Callable[[int, int], None] | None = None,
                   reference_spread: float | None = None) -> list[dict]:
    """Fidelity against diversity over the scale w: for each w, n samples steered to the digits 0–9 in turn, with
    the shipped classifier's confident share and mean confidence in the asked digit (fidelity), the spread of
    its features within each asked digit over `reference_spread` (real digits' within-class spread: variety),
    the entropy of its predicted classes and the classifier-FID against `reference`."""
    if not scales or len(scales) > 12 or any(not (isinstance(w, int | float) and math.isfinite(w)) for w in scales):
        raise ValueError(f"give 1 to 12 guidance scales; got {scales!r}")
    rows = []
    for i, w in enumerate(scales):
        images = guided_samples(checkpoint, kind, float(w), n, None, seed, noisy_classifier)
        feats, probs = classifier_outputs(classifier, to_unit_numpy(images))
        asked = digits_for(n, None).numpy()
        rows.append({"w": float(w), "confident": confident_fraction(probs),
                     "asked": float(np.mean(probs[np.arange(n), asked])),
                     "variety": None if reference_spread is None else within_class_spread(feats, asked)
                     / reference_spread,
                     "entropy": class_entropy(class_histogram(probs.argmax(1))),
                     "fid": fid_from_features(feats, reference), "n": n})
        if on_progress is not None:
            on_progress(i + 1, len(scales))
    return rows
