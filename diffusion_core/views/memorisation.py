"""The Evaluate page's memorisation view: samples of a model (or of the ideal denoiser over its training set),
each with its nearest training digits in pixel and classifier-feature space, and the novelty of the samples
against held-out real digits (evaluation/memorisation.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from diffusion_core.evaluation.memorisation import SPACES, IdealDenoiser, embed, nearest_training, novelty
from diffusion_core.io.checkpoints import LoadedCheckpoint
from diffusion_core.io.data import Dataset
from diffusion_core.io.images import to_unit_numpy
from diffusion_core.process import GaussianProcess, SamplerChoice
from diffusion_core.process.schedules import preset_schedule
from diffusion_core.sampling import sample, sample_checkpoint

IDEAL = "ideal denoiser"  # the name the page gives the ideal denoiser over the training set
MAX_SAMPLES = 256


@dataclass
class MemorisationView:
    generated: np.ndarray  # N×H×W in [0, 1]
    train: np.ndarray  # the training digits (M×H×W in [0, 1]), which the indices point into
    neighbours: dict[str, tuple[np.ndarray, np.ndarray]]  # space → (indices N×k, distances N×k)
    novelty: dict[str, dict]  # space → evaluation.memorisation.novelty
    choice: str  # how the samples were drawn


def ideal_sample(train: torch.Tensor, n: int, seed: int = 0) -> np.ndarray:
    """n samples of the ideal denoiser over `train` (data space), with the app's quick sampler on the report's
    default schedule."""
    process = GaussianProcess(preset_schedule("default"))
    model = IdealDenoiser(train, process.schedule.alpha_bars)
    choice = process.quick_choice()
    return to_unit_numpy(sample(process, model, SamplerChoice(choice.sampler, choice.steps, seed=seed), n,
                                precision="fp32").samples)


def training_vectors(train: Dataset, classifier: nn.Module) -> dict[str, torch.Tensor]:
    """The training digits in each space (pixels, classifier features): computed once, reused by every view."""
    train01 = to_unit_numpy(train.images)
    return {space: embed(train01, space, classifier) for space in SPACES}


def memorisation_view(checkpoint: LoadedCheckpoint | None, train: Dataset, heldout: Dataset, classifier: nn.Module,
                      n: int = 32, seed: int = 0, k: int = 3,
                      vectors: dict[str, torch.Tensor] | None = None) -> MemorisationView:
    """n samples of `checkpoint` (None: the ideal denoiser over `train`) with their k nearest training digits and
    their novelty against n held-out digits, in both spaces (`vectors`: training_vectors, to reuse)."""
    if isinstance(n, bool) or not isinstance(n, int) or not 2 <= n <= MAX_SAMPLES:
        raise ValueError(f"draw 2 to {MAX_SAMPLES} samples; got {n!r}")
    if checkpoint is None:
        generated = ideal_sample(train.images, n, seed)
        how = f"{IDEAL} over the {len(train):,} training digits, {GaussianProcess.QUICK_SAMPLER}"
    else:
        choice = checkpoint.process.quick_choice()
        choice = SamplerChoice(choice.sampler, choice.steps, seed=seed)
        generated = to_unit_numpy(sample_checkpoint(checkpoint, choice, n).samples)
        how = choice.describe()
    train01, held01 = to_unit_numpy(train.images), to_unit_numpy(heldout.images[:n])
    vectors = vectors or training_vectors(train, classifier)
    neighbours, scores = {}, {}
    for space in SPACES:
        neighbours[space] = nearest_training(generated, train01, k, space, classifier, vectors[space])
        scores[space] = novelty(generated, train01, held01, space, classifier, vectors[space])
    return MemorisationView(generated, train01, neighbours, scores, how)
