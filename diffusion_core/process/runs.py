"""What a reverse run yields and draws, below every process and sampler: its frames (t, z_t, x̂0), per-sample seeds
and the noise they draw, the checks on a seed and a sample count, and one network call at one timestep."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

MAX_SAMPLES = 4096


@dataclass(frozen=True)
class SamplerStep:
    """One frame of a reverse trajectory: the state z_t and the model's x̂0 from it.

    The last frame has t = 0 and z = x̂0 = the final sample.
    """

    t: int
    z: torch.Tensor
    x0_hat: torch.Tensor


def in_inference_mode(steps: Iterator[SamplerStep]) -> Iterator[SamplerStep]:
    """Advance a step generator with torch.inference_mode() active only while it computes."""
    while True:
        with torch.inference_mode():
            try:
                step = next(steps)
            except StopIteration:
                return
        yield step


def validate_sample_count(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SAMPLES:
        raise ValueError(f"number of samples must be an integer between 1 and {MAX_SAMPLES}; got {n!r}")


def validate_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be a non-negative integer below 2**63; got {seed!r}")


class SeedBatch:
    """Per-sample seeds: sample k of a batch draws all its randomness from its own generator, seeded seed + k,
    so an image depends only on its seed — not on the batch size or its place in the batch."""

    def __init__(self, seed: int, n: int) -> None:
        validate_seed(seed)
        validate_seed(seed + n - 1)
        self.seeds = list(range(seed, seed + n))
        self.seed, self.generators = seed, [torch.Generator().manual_seed(s) for s in self.seeds]

    @classmethod
    def of(cls, seeds: Sequence[int]) -> SeedBatch:
        """One generator per given seed: several runs' samples in one batch (sample k of run r is seed_r + k),
        each image still the one its own seed gives alone."""
        if not seeds:
            raise ValueError("a batch needs at least one seed")
        for s in seeds:
            validate_seed(s)
        batch = cls.__new__(cls)
        batch.seeds, batch.seed = list(seeds), seeds[0]
        batch.generators = [torch.Generator().manual_seed(s) for s in batch.seeds]
        return batch

    def __len__(self) -> int:
        return len(self.generators)

    def rows(self, draw) -> torch.Tensor:
        """torch.cat of draw(generator) over the samples' generators (each draw one sample's rows)."""
        return torch.cat([draw(g) for g in self.generators])


def seeded_noise(shape: tuple[int, ...], generator: torch.Generator | SeedBatch,
                 device: torch.device | str) -> torch.Tensor:
    """N(0, I) drawn on the CPU from `generator` (a SeedBatch: row k from sample k's own), then moved: the same
    seed gives the same numbers on every device."""
    if isinstance(generator, SeedBatch):
        if shape[0] != len(generator):
            raise ValueError(f"{len(generator)} per-sample seeds cannot draw noise for {shape[0]} samples")
        return generator.rows(lambda g: torch.randn((1, *shape[1:]), generator=g)).to(device)
    return torch.randn(shape, generator=generator).to(device)


def model_call(model: nn.Module, z: torch.Tensor, t: int, T: int) -> torch.Tensor:
    """g(z, t/T) for a batch at one timestep, returned in float32."""
    tt = torch.full((z.shape[0],), t / T, device=z.device, dtype=torch.float32)
    return model(z, tt).float()
