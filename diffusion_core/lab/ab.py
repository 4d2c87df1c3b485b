"""Same-seed A/B: two reverse runs that start from identical noise (the same seed: sample k draws from seed + k in
both), differing in one setting — sampler, steps, schedule (model), guidance — compared step by step."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diffusion_core.io.checkpoints import LoadedCheckpoint
from diffusion_core.lab.trajectory import Trajectory, record_trajectory
from diffusion_core.process import SamplerChoice
from diffusion_core.sampling import checkpoint_frames

MAX_FRAMES = 64


@dataclass
class ABRuns:
    a: Trajectory
    b: Trajectory
    progress: np.ndarray  # P points from 0 (the start) to 1 (the samples)
    frames: list[tuple[int, int]]  # the kept frame of A and of B nearest each point of progress
    difference: np.ndarray  # mean |x̂0_A − x̂0_B| (pixels in [0, 1]) at each point
    same_start: bool  # whether both started from the same state (same seed, same shape of start)


def ab_runs(ckpt_a: LoadedCheckpoint, choice_a: SamplerChoice, ckpt_b: LoadedCheckpoint, choice_b: SamplerChoice,
            n: int = 4, points: int = 32) -> ABRuns:
    """Both runs with their own settings on n images; ValueError unless they share the seed (the point of A/B)."""
    if choice_a.seed != choice_b.seed:
        raise ValueError(f"A and B must share the seed to start from the same noise; got {choice_a.seed} and "
                         f"{choice_b.seed}")
    a = record_trajectory(checkpoint_frames(ckpt_a, choice_a, n), MAX_FRAMES)
    b = record_trajectory(checkpoint_frames(ckpt_b, choice_b, n), MAX_FRAMES)
    progress = np.linspace(0.0, 1.0, points)
    frames = [(int(round(p * (len(a) - 1))), int(round(p * (len(b) - 1)))) for p in progress]
    difference = np.array([float(np.abs(a.x0[i] - b.x0[j]).mean()) for i, j in frames])
    same = a.z_data is not None and b.z_data is not None and a.z_data[0].shape == b.z_data[0].shape and bool(
        np.allclose(a.z_data[0], b.z_data[0]))
    return ABRuns(a, b, progress, frames, difference, same)
