"""A class's sampling requests computed together (#30): students who ask the same model for the same sampler
settings at the same time are served by one network batch, and a request asked before is answered from a
bounded cache.

Why it is exact: every image draws its randomness (and, for a class-conditional model, its label) from its own
seed alone (process.runs.SeedBatch), so a student's 16 images at seed s are the same whether computed alone or as
rows 32–47 of a merged batch (equal to float rounding: the network's batched arithmetic may sum in another order).
Why it pays: a network call costs far less per image at batch 160 than at batch 16 on a CPU.

    ticket = submit_samples(queue, ckpt, choice, n)      # a work_queue Ticket; its result: n images (a tensor)
    hit = sample_cache().get(sample_key(ckpt, choice, n))  # or None

Reverse-diffusion runs merge the same way (views/merged_runs.py).

Runs from given states (an edit's start) are not merged: their starts are their own.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

import torch

from diffusion_core.io.checkpoints import LoadedCheckpoint
from diffusion_core.io.files import env_int
from diffusion_core.process import SamplerChoice
from diffusion_core.samplers import run_to_end
from diffusion_core.sampling import checkpoint_frames
from diffusion_core.services.compute_process import last_note, merged_frames
from diffusion_core.services.work_queue import Ticket, WorkQueue

MAX_BATCH_ENV = "DIFFUSION_LAB_MAX_BATCH"  # images one merged network batch may hold (default 256)
CACHE_ENV = "DIFFUSION_LAB_SAMPLE_CACHE"  # sampling results the cache keeps (default 64; 0: no cache)
DEFAULT_MAX_BATCH, DEFAULT_CACHE = 256, 64


@dataclass(frozen=True)
class SampleRequest:
    """One student's run: n images from per-sample seeds seed, seed + 1, …"""

    seed: int
    n: int


def settings_key(ckpt: LoadedCheckpoint, choice: SamplerChoice) -> Hashable | None:
    """What runs must share to be computed as one batch: the model (its file and weights) and every setting of
    the choice but the seed; None for a run that cannot merge (it starts from given states)."""
    if choice.start.states is not None:
        return None
    return (str(ckpt.path), ckpt.config.get("weights_sha256"), choice.sampler, choice.steps, choice.start.name,
            choice.digit, choice.guidance, choice.t_start, choice.spacing, choice.rho,
            tuple(sorted(choice.knobs.items())))


def sample_key(ckpt: LoadedCheckpoint, choice: SamplerChoice, n: int) -> Hashable | None:
    """The cache's key of one run: its settings, seed and n (None: not cacheable)."""
    settings = settings_key(ckpt, choice)
    return None if settings is None else (settings, choice.seed, n)


def sample_merged(ckpt: LoadedCheckpoint, choice: SamplerChoice, requests: list[SampleRequest],
                  precision: str = "auto") -> list[torch.Tensor]:
    """Every request's images from one reverse run over all of them (choice's seed unused: each request's own)."""
    seeds = [r.seed + k for r in requests for k in range(r.n)]
    samples = run_to_end(merged_frames(ckpt, choice, seeds, precision, final_only=True)).samples
    return list(torch.split(samples, [r.n for r in requests]))


class SampleCache:
    """A bounded, thread-safe least-recently-used map from sample_key to images."""

    def __init__(self, capacity: int = DEFAULT_CACHE) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
            raise ValueError(f"capacity must be a whole number ≥ 0; got {capacity!r}")
        self.capacity, self.hits, self.misses = capacity, 0, 0
        self._items: OrderedDict[Hashable, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable | None) -> torch.Tensor | None:
        with self._lock:
            if key is None or key not in self._items:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return self._items[key]

    def put(self, key: Hashable | None, value: torch.Tensor) -> None:
        if key is None or self.capacity == 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


_cache_lock = threading.Lock()
_cache: SampleCache | None = None


def sample_cache() -> SampleCache:
    """The process-wide cache (DIFFUSION_LAB_SAMPLE_CACHE entries), created on first use."""
    global _cache
    with _cache_lock:
        if _cache is None:
            _cache = SampleCache(env_int(CACHE_ENV, DEFAULT_CACHE, minimum=0))
        return _cache


class _Merged:
    """run_many for the work queue: one model and settings, the requests of those who asked together."""

    def __init__(self, ckpt: LoadedCheckpoint, choice: SamplerChoice, precision: str) -> None:
        self.ckpt, self.choice, self.precision = ckpt, choice, precision

    def __call__(self, requests: list[SampleRequest]) -> list[torch.Tensor]:
        results = sample_merged(self.ckpt, self.choice, requests, self.precision)
        self.note = last_note()  # e.g. on the Ray cluster: the queue hands it to each ticket
        for request, images in zip(requests, results, strict=True):
            sample_cache().put(sample_key(self.ckpt, dataclasses.replace(self.choice, seed=request.seed),
                                          request.n), images)
        return results


def merge_plan(ckpt: LoadedCheckpoint, choice: SamplerChoice, n: int) -> tuple[Hashable, int] | None:
    """(the settings key, the largest batch) for a run that may merge; None for one that runs alone (given
    states, or more images than one merged batch holds)."""
    settings = settings_key(ckpt, choice)
    max_batch = env_int(MAX_BATCH_ENV, DEFAULT_MAX_BATCH)
    return None if settings is None or n > max_batch else (settings, max_batch)


def submit_samples(queue: WorkQueue, ckpt: LoadedCheckpoint, choice: SamplerChoice, n: int,
                   precision: str = "auto") -> Ticket:
    """Queue one run of n images so that it merges with others asking the same model and settings (a run that
    cannot merge is queued alone; a merged batch goes on to a configured Ray cluster: services/ray_serve.py). The
    ticket's result is the n images; its `note` says where they were computed when not here."""
    plan = merge_plan(ckpt, choice, n)
    if plan is None:
        return queue.submit(_alone, ckpt, choice, n, precision)
    settings, max_batch = plan
    return queue.submit_batched((settings, precision), SampleRequest(choice.seed, n), n,
                                _Merged(ckpt, choice, precision), max_batch)


def _alone(ckpt: LoadedCheckpoint, choice: SamplerChoice, n: int, precision: str) -> torch.Tensor:
    return run_to_end(checkpoint_frames(ckpt, choice, n, precision=precision)).samples
