"""What a training run optimises and how it previews samples: the process's loss (also recorded by noise level,
in LOSS_BUCKETS buckets of t/T), and a quick reverse run of the process's preview choice (a fast sampler; cold:
from a mixture fitted to the images seen)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from diffusion_core.process import DiffusionProcess, process_from_config
from diffusion_core.samplers import run_to_end

PREVIEW_IMAGES = 300  # clean training images kept for a preview that starts from them (cold: its mixture)
LOSS_BUCKETS = 10  # the loss is also recorded by t in this many equal buckets of t/T


class Objective:
    """The loss of `process` on each batch; previews with process.preview_choice over the first
    PREVIEW_IMAGES training images this objective has seen."""

    def __init__(self, process: DiffusionProcess, keep_images: int = PREVIEW_IMAGES) -> None:
        self.process = process
        self.keep_images = keep_images
        self._seen: list[torch.Tensor] = []
        self._sums = np.zeros(LOSS_BUCKETS)
        self._counts = np.zeros(LOSS_BUCKETS, dtype=np.int64)

    def loss(self, model: nn.Module, x: torch.Tensor, generator: torch.Generator,
             shard: slice = slice(None), y: torch.Tensor | None = None) -> torch.Tensor:
        """Draw the randomness for the whole batch x; return the mean loss over x[shard]
        (y: class labels of x for a class-conditional denoiser)."""
        n_seen = sum(len(s) for s in self._seen)
        if n_seen < self.keep_images:  # keep clean images for the preview (no randomness used)
            self._seen.append(x[: self.keep_images - n_seen].detach().cpu())
        loss, t, each = self.process.loss_terms(model, x, generator, shard, y)
        bucket = ((t.cpu() - 1) * LOSS_BUCKETS // self.process.T).clamp(0, LOSS_BUCKETS - 1).numpy()
        self._sums += np.bincount(bucket, weights=each.cpu().double().numpy(), minlength=LOSS_BUCKETS)
        self._counts += np.bincount(bucket, minlength=LOSS_BUCKETS)
        return loss

    def take_loss_by_t(self) -> dict:
        """{"loss_by_t": mean loss in each t/T bucket since the last call (None where empty), "loss_by_t_n": how
        many images each mean is over}; then starts afresh (one epoch's worth, on this process's shard)."""
        means = [float(s / c) if c else None for s, c in zip(self._sums, self._counts, strict=True)]
        row = {"loss_by_t": means, "loss_by_t_n": self._counts.tolist()}
        self._sums[:], self._counts[:] = 0.0, 0
        return row

    def preview(self, model: nn.Module, n: int, seed: int, device: torch.device | str) -> torch.Tensor:
        seen = torch.cat(self._seen) if self._seen else torch.empty(0)
        choice = self.process.preview_choice(seen, seed)
        return run_to_end(self.process.frames(model, choice, n, device)).samples


def objective_from_config(diffusion: dict, coupling: dict | None = None) -> Objective:
    """The objective of a "diffusion" config (on a teacher's coupling: its pairs' path; distil_steps N: at the N-step
    grid's times only);
    ValueError naming what is wrong in it."""
    process = process_from_config(diffusion)
    if coupling is not None:
        process = process.coupled(coupling["distil_steps"] or None)
    return Objective(process)
