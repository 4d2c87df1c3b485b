"""Timers for the speed benchmark: training throughput, sampling, single reverse steps, FLOPs, a
matmul ceiling, peak memory. Every timing is the median of `repeats` runs after `warmup` runs."""

from __future__ import annotations

import copy
import math
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.flop_counter import FlopCounterMode

from diffusion_core.io.checkpoints import LoadedCheckpoint
from diffusion_core.process import GaussianProcess, SamplerChoice
from diffusion_core.process.schedules import NoiseSchedule
from diffusion_core.sampling import checkpoint_frames, sample_checkpoint
from diffusion_core.training.objectives import Objective
from diffusion_core.training.precision import with_precision

from .reference import DDPM, train_step

LR = 2e-4  # the report's Adam learning rate


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median wall time in seconds of each fn over `repeats` calls after `warmup` untimed ones, timed in
    rounds (a, b, c, a, b, c, …) so that a machine whose load changes during the run slows every
    contender alike."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be ≥ 1 and warmup ≥ 0; got repeats={repeats}, warmup={warmup}")
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of fn() in seconds over `repeats` calls, after `warmup` untimed calls."""
    return interleaved_medians({"fn": fn}, repeats, warmup)["fn"]


def reference_ddpm(network: nn.Module, schedule: NoiseSchedule) -> DDPM:
    """The report's DDPM around a copy of `network` with PyTorch's default (NCHW) weight layout, as the
    report's code would hold it — so the U-Net's channels-last fast path is not in the reference."""
    if schedule.kind != "linear":
        raise ValueError(f"the reference implements only the report's linear schedule; this model uses "
                         f"{schedule.kind!r}. Benchmark a model trained with a linear schedule (e.g. --preset default)")
    literal = copy.deepcopy(network).to(memory_format=torch.contiguous_format)
    return DDPM(literal, (schedule.beta1, schedule.beta2), schedule.T)


# --------------------------------------------------------------------------------------- training


@dataclass
class TrainRun:
    images_per_s: float
    step_s: float  # median seconds per optimiser step
    final_loss: float  # mean loss of the last timed group of steps
    steps: int  # optimiser steps taken in all (warm-up included)


def time_trainers(trainers: dict[str, Callable[[], float]], batch_size: int, steps_per_repeat: int, repeats: int,
                  warmup: int) -> dict[str, TrainRun]:
    """Images/s of training step functions: groups of `steps_per_repeat` steps, interleaved, median group time."""
    losses: dict[str, list[float]] = {k: [] for k in trainers}

    def group(k: str) -> Callable[[], None]:
        def run() -> None:
            losses[k][:] = [trainers[k]() for _ in range(steps_per_repeat)]
        return run

    t = interleaved_medians({k: group(k) for k in trainers}, repeats, warmup)
    return {k: TrainRun(batch_size * steps_per_repeat / t[k], t[k] / steps_per_repeat,
                        sum(losses[k]) / len(losses[k]), (repeats + warmup) * steps_per_repeat) for k in trainers}


def reference_trainer(network: nn.Module, schedule: NoiseSchedule, images: torch.Tensor, batch_size: int,
                      seed: int) -> Callable[[], float]:
    """The report's loop: a shuffling DataLoader, Adam, ddpm(x).backward() — on its own copy of `network`."""
    ddpm = reference_ddpm(network, schedule).train()
    optim = torch.optim.Adam(ddpm.parameters(), lr=LR)
    loader = DataLoader(TensorDataset(images), batch_size=batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(seed))
    gen = torch.Generator().manual_seed(seed)
    batches = iter(loader)

    def step() -> float:
        nonlocal batches
        try:
            (x,) = next(batches)
        except StopIteration:
            batches = iter(loader)
            (x,) = next(batches)
        return train_step(ddpm, optim, x, gen)

    return step


def fast_trainer(network: nn.Module, schedule: NoiseSchedule, images: torch.Tensor, batch_size: int, seed: int,
                 precision: str) -> Callable[[], float]:
    """diffusion_core's training step as training.train runs it: Objective.loss on the precision
    wrapper, batches gathered by a seeded permutation, Adam — on its own copy of `network`."""
    model = copy.deepcopy(network).train()
    trained = with_precision(model, precision, "cpu")
    objective = Objective(GaussianProcess(schedule))
    optim = torch.optim.Adam(model.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(seed)
    n_batches = len(images) // batch_size
    state = {"perm": torch.randperm(len(images), generator=gen), "b": 0}

    def step() -> float:
        if state["b"] == n_batches:
            state["perm"], state["b"] = torch.randperm(len(images), generator=gen), 0
        b = state["b"]
        x = images[state["perm"][b * batch_size:(b + 1) * batch_size]]
        state["b"] += 1
        loss = objective.loss(trained, x, gen)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        return loss.item()

    return step


def count_flops(fn: Callable[[], object]) -> int:
    """Floating-point operations (matmuls and convolutions, forward and backward) of one call."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def train_step_flops(network: nn.Module, schedule: NoiseSchedule, batch_size: int, seed: int = 0) -> int:
    """FLOPs of one training step (loss forward + backward) of `network` at `batch_size`."""
    ddpm = reference_ddpm(network, schedule)
    x = torch.rand(batch_size, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) - 0.5
    return count_flops(lambda: ddpm(x, torch.Generator().manual_seed(seed)).backward())


# --------------------------------------------------------------------------------------- sampling


def reference_sampler(ddpm: DDPM, n: int, seed: int) -> Callable[[], torch.Tensor]:
    """Algorithm 2 (all T steps) drawing n images."""
    ddpm.eval()
    return lambda: ddpm.sample(n, (1, 28, 28), "cpu", torch.Generator().manual_seed(seed))


def fast_sampler(ckpt: LoadedCheckpoint, sampler: str, steps: int | None, n: int, seed: int) -> Callable[[], object]:
    """diffusion_core's sampler on the app's path (sampling.sample_checkpoint) drawing n images."""
    return lambda: sample_checkpoint(ckpt, SamplerChoice(sampler, steps, seed=seed), n)


def reference_step(ddpm: DDPM, batch: int, seed: int = 0) -> Callable[[], torch.Tensor]:
    """One step of the reference Algorithm 2 loop at t = T/2 on `batch` images (under torch.no_grad)."""
    ddpm.eval()
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, 1, 28, 28, generator=gen)
    i = max(ddpm.n_T // 2, 2)

    def step() -> torch.Tensor:
        with torch.no_grad():
            return ddpm.reverse_step(z, i, gen)

    return step


def fast_step(ckpt: LoadedCheckpoint, batch: int, calls: int, seed: int = 0) -> Callable[[], object]:
    """One frame of diffusion_core's ancestral sampler (what the step-through page advances by): the
    update from the previous frame plus one model call, under inference_mode. Good for `calls` calls."""
    T = ckpt.config["diffusion"]["schedule"]["T"]
    if calls + 1 > T:
        raise ValueError(f"timing {calls} single steps needs T > {calls}; the model has T={T}")
    frames = checkpoint_frames(ckpt, SamplerChoice("ancestral", seed=seed), batch)
    next(frames)  # the first frame (z_T and its model call) is not a full step
    return lambda: next(frames)


# ------------------------------------------------------------------------------ ceiling and memory


def matmul_gflops(n: int, dtype: torch.dtype, repeats: int, warmup: int = 1) -> float:
    """Peak GFLOP/s of an n×n @ n×n matmul (2n³ FLOPs) in `dtype` on the CPU: the best of `repeats`
    (a ceiling is what the machine can do, so the fastest run counts, not the median)."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(dtype)
    b = torch.randn(n, n, generator=gen).to(dtype)
    for _ in range(warmup):
        a @ b
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def peak_rss_mib() -> float:
    """Peak resident set size (ru_maxrss) of this process so far, in MiB."""
    scale = 1 / 2**20 if sys.platform == "darwin" else 1 / 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def process_peak_rss_mib(pid: int) -> float | None:
    """Peak RSS (VmHWM) of a running process, in MiB; None where /proc is unavailable. (RUSAGE_CHILDREN
    cannot be used for a child: Linux carries the parent's peak RSS into the child's through fork/exec.)"""
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None
