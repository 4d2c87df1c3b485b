"""The Ray Serve deployment that samples one model for every app server of a class (#30): imported only where
Ray is installed and configured (services/ray_serve.py deploys it; the replicas import it).

Each replica loads the checkpoint from its file — a folder every Ray node reads (the same path) — and checks its
weights' hash. Requests are (sampler settings, seeds) — an app server's merged batch; `@serve.batch` gathers those
that arrive together
(up to DIFFUSION_LAB_MAX_BATCH images), and those with the same settings run as one batch of per-sample seeds
(as services/batching.py merges them): each request gets exactly the images its seeds give alone.
"""

from __future__ import annotations

import dataclasses
import os
from collections import defaultdict

import numpy as np
import torch
from ray import serve

from diffusion_core.io.checkpoints import CheckpointError, load_checkpoint
from diffusion_core.io.files import env_int
from diffusion_core.process import SamplerChoice
from diffusion_core.samplers import run_to_end
from diffusion_core.sampling import checkpoint_frames

BATCH_WAIT_S = 0.05  # as the embedded queue's DIFFUSION_LAB_BATCH_WAIT_MS


@serve.deployment(max_ongoing_requests=256, graceful_shutdown_timeout_s=5, health_check_period_s=2)
class ModelSampler:
    """One model's sampling: `sample((choice, seeds))` → (the images as a float32 array, (requests, images) of
    the run it shared)."""

    def __init__(self, path: str, sha: str, precision: str = "auto", threads: int = 1) -> None:
        os.environ["DIFFUSION_LAB_COMPUTE"] = "thread"  # a replica is its own process already
        torch.set_num_threads(threads)
        self.ckpt = load_checkpoint(path)
        if self.ckpt.config.get("weights_sha256") != sha:
            raise CheckpointError(f"{path} on this Ray node holds other weights than the app server's "
                                  f"(sha256 {sha[:12]}…): give every node the same checkpoints folder")
        self.precision = precision

    def pid(self) -> int:
        """This replica's process id (the fault tests kill it)."""
        return os.getpid()

    @serve.batch(max_batch_size=env_int("DIFFUSION_LAB_MAX_BATCH", 256), batch_wait_timeout_s=BATCH_WAIT_S,
                 batch_size_fn=lambda items: sum(len(seeds) for _, seeds in items))
    async def sample(self, items: list[tuple[SamplerChoice, list[int]]]) -> list[tuple[np.ndarray, tuple[int, int]]]:
        """Each item (settings, per-sample seeds) → (its images, (items, images) of the run it shared)."""
        groups: dict[str, list[int]] = defaultdict(list)
        for index, (choice, _) in enumerate(items):
            groups[repr(dataclasses.replace(choice, seed=0))].append(index)  # the same settings: one run
        out: list = [None] * len(items)
        for indices in groups.values():
            seeds = [seed for i in indices for seed in items[i][1]]
            frames = checkpoint_frames(self.ckpt, items[indices[0]][0], len(seeds), precision=self.precision,
                                       seeds=seeds)
            images = torch.split(run_to_end(frames).samples, [len(items[i][1]) for i in indices])
            for i, part in zip(indices, images, strict=True):
                out[i] = (part.numpy(), (len(indices), len(seeds)))
        return out
