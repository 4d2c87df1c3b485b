"""Recording a reverse-diffusion run for step-through viewing, and exporting it (GIF, PNG, .npy).

A sampler yields one frame (t, z_t, x̂0) per step: T + 1 frames for the ancestral sampler, which at
T = 18,300 would not fit in a browser session. `record_trajectory` keeps a bounded, evenly spaced
subset by decimation: it keeps every `stride`-th frame and doubles the stride (dropping every other
kept frame) whenever more than `max_frames` are held, so memory stays bounded without knowing the
number of frames in advance. The first and the last frame (t = 0, the samples) are always kept.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .images import make_grid, png_bytes, to_unit_numpy
from .samplers import SamplerStep

DEFAULT_MAX_FRAMES = 128


@dataclass
class Trajectory:
    """Kept frames of one reverse run, as [0, 1] pixels: z[k] and x0[k] are N×H×W at timestep ts[k]."""

    ts: list[int]
    z: np.ndarray  # K×N×H×W
    x0: np.ndarray  # K×N×H×W
    total_frames: int  # frames the sampler produced (≥ len(ts))

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def samples(self) -> np.ndarray:
        """The final images (N×H×W in [0, 1]): z at t = 0."""
        return self.z[-1]


def record_trajectory(frames: Iterable[SamplerStep], max_frames: int = DEFAULT_MAX_FRAMES) -> Trajectory:
    """Consume sampler frames, keeping at most max_frames + 1 evenly spaced ones (plus the last)."""
    if isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 2:
        raise ValueError(f"max_frames must be an integer ≥ 2; got {max_frames!r}")
    kept: list[tuple[int, int, np.ndarray, np.ndarray]] = []  # (frame index, t, z, x̂0)
    stride, index, last = 1, -1, None
    for index, frame in enumerate(frames):
        last = frame
        if index % stride:
            continue
        kept.append((index, frame.t, to_unit_numpy(frame.z), to_unit_numpy(frame.x0_hat)))
        if len(kept) > max_frames:
            stride *= 2
            kept = [k for k in kept if k[0] % stride == 0]
    if last is None:
        raise ValueError("the sampler produced no frames")
    if kept[-1][0] != index:
        kept.append((index, last.t, to_unit_numpy(last.z), to_unit_numpy(last.x0_hat)))
    return Trajectory(
        ts=[k[1] for k in kept],
        z=np.stack([k[2] for k in kept]),
        x0=np.stack([k[3] for k in kept]),
        total_frames=index + 1,
    )


def side_by_side(z01: np.ndarray, x01: np.ndarray, nrow: int | None = None, gap: int = 6) -> np.ndarray:
    """One image: the grid of z_t, a gap, the grid of x̂0 (both N×H×W in [0, 1])."""
    a, b = make_grid(z01, nrow), make_grid(x01, nrow)
    return np.concatenate([a, np.ones((a.shape[0], gap), dtype=np.float32), b], axis=1)


def trajectory_gif(traj: Trajectory, scale: int = 3, duration_ms: int = 80, hold_last_ms: int = 1500) -> bytes:
    """An animated GIF of the kept frames: z_t beside x̂0, looping, pausing on the final samples."""
    if not 1 <= scale <= 8:
        raise ValueError(f"scale must be between 1 and 8; got {scale}")
    images = []
    for k in range(len(traj)):
        frame = (np.clip(side_by_side(traj.z[k], traj.x0[k]), 0, 1) * 255).round().astype(np.uint8)
        img = Image.fromarray(frame, mode="L")
        images.append(img.resize((img.width * scale, img.height * scale), Image.NEAREST))
    durations = [duration_ms] * (len(images) - 1) + [hold_last_ms]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0)
    return buf.getvalue()


def samples_png(images01: np.ndarray, scale: int = 2) -> bytes:
    """A PNG grid of N×H×W images in [0, 1]."""
    return png_bytes(make_grid(images01), scale=scale)


def samples_npy(images01: np.ndarray) -> bytes:
    """N×H×W float32 in [0, 1] as .npy bytes (no pickle)."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(images01, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()
