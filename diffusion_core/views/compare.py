"""Same-seed A/B: two reverse runs that start from identical noise (the same seed: sample k draws from seed + k in
both), differing in one setting — sampler, steps, spacing, guidance, model — compared step by step, aligned by t."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diffusion_core.io.checkpoints import LoadedCheckpoint
from diffusion_core.process import SamplerChoice
from diffusion_core.sampling import checkpoint_frames
from diffusion_core.views.reverse import Trajectory, record_trajectory

MAX_FRAMES = 64


@dataclass
class ABRuns:
    a: Trajectory
    b: Trajectory
    ts: list[int]  # the points compared, by timestep t from T down to 0: every t either run kept (at most `points`)
    frames: list[tuple[int, int]]  # at each t: the kept frame of A and of B nearest that t
    difference: np.ndarray  # mean |x̂0_A − x̂0_B| (pixels in [0, 1]) at each t
    same_start: bool  # whether both started from the same state (same seed, same shape of start)


def _nearest(ts: list[int], t: int) -> int:
    """The kept frame whose timestep is nearest t (the later one on a tie: the run has got that far)."""
    return min(range(len(ts)), key=lambda k: (abs(ts[k] - t), ts[k]))


def aligned_timesteps(ts_a: list[int], ts_b: list[int], points: int) -> list[int]:
    """The timesteps to compare: every t kept by A or B, from the highest down to 0, thinned to at most `points`
    (the first and the last kept)."""
    ts = sorted(set(ts_a) | set(ts_b), reverse=True)
    if len(ts) <= points:
        return ts
    picks = np.unique(np.round(np.linspace(0, len(ts) - 1, points)).astype(int))
    return [ts[k] for k in picks]


def ab_runs(ckpt_a: LoadedCheckpoint, choice_a: SamplerChoice, ckpt_b: LoadedCheckpoint, choice_b: SamplerChoice,
            n: int = 4, points: int = 64) -> ABRuns:
    """Both runs with their own settings on n images; ValueError unless they share the seed (the point of A/B).
    They are compared at the same t: a run with fewer steps shows its frame nearest that t."""
    if choice_a.seed != choice_b.seed:
        raise ValueError(f"A and B must share the seed to start from the same noise; got {choice_a.seed} and "
                         f"{choice_b.seed}")
    a = record_trajectory(checkpoint_frames(ckpt_a, choice_a, n), MAX_FRAMES)
    b = record_trajectory(checkpoint_frames(ckpt_b, choice_b, n), MAX_FRAMES)
    ts = aligned_timesteps(a.ts, b.ts, points)
    frames = [(_nearest(a.ts, t), _nearest(b.ts, t)) for t in ts]
    difference = np.array([float(np.abs(a.x0[i] - b.x0[j]).mean()) for i, j in frames])
    same = a.z_data is not None and b.z_data is not None and a.z_data[0].shape == b.z_data[0].shape and bool(
        np.allclose(a.z_data[0], b.z_data[0]))
    return ABRuns(a, b, ts, frames, difference, same)


def _effective(choice: SamplerChoice) -> dict[str, object]:
    """The settings of a run as a learner reads them (the sampler's own spacing named, knobs only where used)."""
    from diffusion_core.samplers import sampler_spec

    out: dict[str, object] = {"sampler": choice.sampler, "steps": choice.steps}
    try:
        spec = sampler_spec(choice.sampler)
    except ValueError:
        return out
    if not (spec.all_steps or spec.one_step):
        out["spacing"] = choice.spacing or spec.spacing
        if out["spacing"] == "karras":
            out["ρ"] = choice.rho
    for knob in spec.knobs:
        out[knob.symbol or knob.name] = choice.knobs.get(knob.name, knob.default)
    if choice.start.name is not None:
        out["start"] = choice.start.name
    out["digit"] = "every class in turn" if choice.digit is None else choice.digit
    out["guidance w"] = "the model's" if choice.guidance is None else choice.guidance
    return out


def differing_settings(model_a: str, choice_a: SamplerChoice, model_b: str, choice_b: SamplerChoice
                       ) -> list[str]:
    """Every setting in which B differs from A, as "name: A → B" (the model first); [] when they are the same."""
    left, right = {"model": model_a, **_effective(choice_a)}, {"model": model_b, **_effective(choice_b)}
    missing = "—"
    out = []
    for name in dict.fromkeys([*left, *right]):
        a, b = left.get(name, missing), right.get(name, missing)
        if a == b or {a, b} == {missing, 0.0}:  # a knob one sampler lacks, at its neutral 0 in the other: no change
            continue
        out.append(f"{name}: {a} → {b}")
    return out
