"""The one sampling loop: any model of any process, with guidance, precision and progress.

A run is a SamplerChoice (sampler, steps, η, seed, start, digit, guidance) on a process and a network:
    frames = model_frames(process, model, choice, n)      # (t, z_t, x̂0), stepwise, for a page
    result = sample(process, model, choice, n)            # to the end
Checkpoints bring their process (LoadedCheckpoint.process): checkpoint_frames / sample_checkpoint.

Class-conditional models take choice.digit (None: every class in turn) and a classifier-free guidance
scale w (None: the checkpoint's own "guidance", else 0); see models/guidance.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from diffusion_core.io.checkpoints import LoadedCheckpoint
from diffusion_core.io.mixtures import dataset_mixture
from diffusion_core.models.guidance import ClassGuided, is_conditional, sample_labels
from diffusion_core.process import DiffusionProcess, SamplerChoice, Start
from diffusion_core.samplers import SampleResult, SamplerStep, run_to_end, validate_sample_count, validate_seed
from diffusion_core.training.precision import with_precision

__all__ = ["SamplerChoice", "checkpoint_frames", "model_frames", "sample", "sample_checkpoint", "sample_in_chunks"]


def model_frames(
    process: DiffusionProcess,
    model: nn.Module,
    choice: SamplerChoice,
    n: int = 16,
    device: torch.device | str = "cpu",
    precision: str = "auto",
    default_guidance: float = 0.0,
    dataset: str = "mnist",
    seeds: Sequence[int] | None = None,
) -> Iterator[SamplerStep]:
    """Frames (t, z_t, x̂0) of one reverse run. precision "auto": the network runs under bf16 autocast where the
    hardware does bf16 natively, else in fp32 ("fp32" opts out); the samplers' arithmetic stays float32.
    `seeds`: each sample's own seed (n of them), for several runs merged into one batch (services/batching.py)."""
    if choice.start.states is None:  # given states bring their own images
        validate_sample_count(n)
    validate_seed(choice.seed)  # both before a conditional model's labels, so a bad n is a ValueError naming it
    model = model.to(device)
    if is_conditional(model):
        w = default_guidance if choice.guidance is None else choice.guidance
        count = choice.start.count or n
        model = ClassGuided(model, sample_labels(count, choice.digit, model.num_classes, choice.seed, seeds), w)
    elif choice.digit is not None or choice.guidance is not None:
        raise ValueError("this model is not class-conditional: a digit and guidance need a model trained with "
                         "--conditional")
    model = with_precision(model, precision, device)
    fit = process.fitted_start(choice)  # a start fitted to training images (a cold mixture): loaded here
    if fit is not None:
        degradation, t = fit
        mixture = dataset_mixture(degradation, dataset, t=t)
        choice = dataclasses.replace(process.resolve(choice), start=Start(fitted=mixture))
    return process.frames(model, choice, n, device, seeds)


def sample(process: DiffusionProcess, model: nn.Module, choice: SamplerChoice, n: int = 16,
           on_step: Callable[[SamplerStep], None] | None = None, **options: object) -> SampleResult:
    """One reverse run to the end; on_step sees every frame (process.step_count(choice) of them have t > 0)."""
    return run_to_end(model_frames(process, model, choice, n, **options), on_step)


def checkpoint_frames(checkpoint: LoadedCheckpoint, choice: SamplerChoice, n: int = 16,
                      device: torch.device | str = "cpu", precision: str = "auto",
                      seeds: Sequence[int] | None = None) -> Iterator[SamplerStep]:
    """model_frames of a loaded checkpoint, with its process, default guidance and dataset."""
    return model_frames(checkpoint.process, checkpoint.model, choice, n, device, precision,
                        default_guidance=checkpoint.config.get("guidance", 0.0),
                        dataset=checkpoint.config.get("dataset", "mnist"), seeds=seeds)


def sample_checkpoint(checkpoint: LoadedCheckpoint, choice: SamplerChoice, n: int = 16,
                      device: torch.device | str = "cpu", precision: str = "auto",
                      on_step: Callable[[SamplerStep], None] | None = None) -> SampleResult:
    """One reverse run of a loaded checkpoint to the end (see sample)."""
    return run_to_end(checkpoint_frames(checkpoint, choice, n, device, precision), on_step)


def sample_in_chunks(checkpoint: LoadedCheckpoint, choice: SamplerChoice, n: int, chunk: int = 250,
                     device: torch.device | str = "cpu", precision: str = "auto") -> torch.Tensor:
    """The n samples of one seeded run, drawn `chunk` at a time so that n = 1000 never holds 1000 images'
    activations at once. Sample k keeps its own seed, choice.seed + k (the chunk from offset i starts at seed + i),
    so the result equals sample_checkpoint(checkpoint, choice, n): no image is drawn twice."""
    validate_sample_count(n)
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive number of samples; got {chunk!r}")
    return torch.cat([sample_checkpoint(checkpoint, dataclasses.replace(choice, seed=choice.seed + i),
                                        min(chunk, n - i), device, precision).samples for i in range(0, n, chunk)])
