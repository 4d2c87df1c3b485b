"""Students' reverse-diffusion runs merged into one batch (#30), as services/batching.py merges their Generate
requests: each student's slice of every frame goes to their own live view and recorder (views/reverse.py), so each
steps through their own trajectory — the images their seeds give alone — and one who leaves drops out.

    ticket = submit_trajectory(queue, ckpt, choice, n, live)   # result: (Trajectory, seconds the run took)
"""

from __future__ import annotations

import time
from contextlib import closing
from dataclasses import dataclass

import numpy as np

from diffusion_core.io.checkpoints import LoadedCheckpoint
from diffusion_core.process import SamplerChoice
from diffusion_core.samplers import SamplerStep
from diffusion_core.sampling import checkpoint_frames
from diffusion_core.services.batching import SampleRequest, merge_plan
from diffusion_core.services.compute_process import merged_frames
from diffusion_core.services.work_queue import Ticket, WorkQueue
from diffusion_core.views.reverse import (
    DEFAULT_MAX_FRAMES,
    LiveView,
    RunStopped,
    Trajectory,
    TrajectoryRecorder,
    record_trajectory,
)


@dataclass(frozen=True)
class TrajectoryRequest:
    """One student's reverse-diffusion run: their images (seeds), the page's live view of it, frames to keep."""

    request: SampleRequest
    live: LiveView
    max_frames: int


def trajectories_merged(ckpt: LoadedCheckpoint, choice: SamplerChoice, requests: list[TrajectoryRequest],
                        precision: str = "auto") -> list[tuple[Trajectory, float]]:
    """Every request's trajectory (and the seconds the run took) from one reverse run over all their images: each
    frame split by request into its live view and recorder. A request whose page stopped it (a rerun, a closed
    tab) is dropped; RunStopped once all of them are."""
    began = time.perf_counter()
    seeds = [r.request.seed + k for r in requests for k in range(r.request.n)]
    bounds = np.cumsum([0] + [r.request.n for r in requests]).tolist()
    recorders = [TrajectoryRecorder(r.max_frames) for r in requests]
    with closing(merged_frames(ckpt, choice, seeds, precision)) as frames:  # closed: the child stops at once
        for index, frame in enumerate(frames):
            if all(r.live.stopped for r in requests):
                raise RunStopped(f"every page stopped its run at t = {frame.t}")
            for r, recorder, a, b in zip(requests, recorders, bounds, bounds[1:], strict=False):
                part = SamplerStep(frame.t, frame.z[a:b], frame.x0_hat[a:b])
                r.live.offer(index, part)
                recorder.add(part)
    seconds = time.perf_counter() - began
    return [(recorder.result(), seconds) for recorder in recorders]


class _MergedTrajectories:
    def __init__(self, ckpt: LoadedCheckpoint, choice: SamplerChoice, precision: str) -> None:
        self.ckpt, self.choice, self.precision = ckpt, choice, precision

    def __call__(self, requests: list[TrajectoryRequest]) -> list[tuple[Trajectory, float]]:
        return trajectories_merged(self.ckpt, self.choice, requests, self.precision)


def submit_trajectory(queue: WorkQueue, ckpt: LoadedCheckpoint, choice: SamplerChoice, n: int, live: LiveView,
                      max_frames: int = DEFAULT_MAX_FRAMES, precision: str = "auto") -> Ticket:
    """Queue one reverse-diffusion run of n images that merges with others of the same model and settings (a run
    from given states runs alone); its result is (the Trajectory, the seconds it computed)."""
    item = TrajectoryRequest(SampleRequest(choice.seed, n), live, max_frames)
    plan = merge_plan(ckpt, choice, n)
    if plan is None:
        return queue.submit(_trajectory_alone, ckpt, choice, item, precision)
    settings, max_batch = plan
    return queue.submit_batched((settings, precision, "trajectory"), item, n,
                                _MergedTrajectories(ckpt, choice, precision), max_batch)


def _trajectory_alone(ckpt: LoadedCheckpoint, choice: SamplerChoice, item: TrajectoryRequest,
                      precision: str) -> tuple[Trajectory, float]:
    began = time.perf_counter()
    frames = checkpoint_frames(ckpt, choice, item.request.n, precision=precision)
    return record_trajectory(item.live.watch(frames), item.max_frames), time.perf_counter() - began
