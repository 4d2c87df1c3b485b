"""Recording reverse runs for step-through (bounded, evenly spaced frames) and the exports."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from diffusion_core.samplers import SamplerStep
from diffusion_core.trajectory import record_trajectory, samples_npy, samples_png, side_by_side, trajectory_gif


def frames(T: int, n: int = 2):
    """T+1 frames t = T..0 whose pixels encode t: z = t/T − 0.5 (so [0, 1] pixels = t/T), x̂0 = −z."""
    for t in range(T, -1, -1):
        z = torch.full((n, 1, 28, 28), t / T - 0.5)
        yield SamplerStep(t, z, -z)


def test_short_runs_keep_every_frame():
    traj = record_trajectory(frames(20), max_frames=128)
    assert traj.ts == list(range(20, -1, -1)) and traj.total_frames == 21
    assert traj.z.shape == (21, 2, 28, 28)
    np.testing.assert_allclose(traj.z[:, 0, 0, 0], np.arange(20, -1, -1) / 20, atol=1e-6)
    np.testing.assert_allclose(traj.x0[:, 0, 0, 0], 1 - np.arange(20, -1, -1) / 20, atol=1e-6)


@pytest.mark.parametrize("T,max_frames", [(1000, 128), (18300, 64), (129, 128), (300, 2)])
def test_long_runs_keep_bounded_evenly_spaced_frames_and_the_end(T, max_frames):
    traj = record_trajectory(frames(T, n=1), max_frames=max_frames)
    assert len(traj) <= max_frames + 1 and traj.total_frames == T + 1
    assert traj.ts[0] == T and traj.ts[-1] == 0
    gaps = np.diff(traj.ts[:-1])
    assert len(set(gaps.tolist())) <= 1  # one stride between kept frames (the last frame may be closer)
    stride = -gaps[0] if len(gaps) else 1
    assert len(traj) > max_frames // 2 or stride == 1  # decimation never halves below max_frames / 2
    np.testing.assert_allclose(traj.z[:, 0, 0, 0], np.array(traj.ts) / T, atol=1e-6)
    assert traj.samples[0, 0, 0] == pytest.approx(0.0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_frames must be an integer ≥ 2"):
        record_trajectory(frames(5), max_frames=1)
    with pytest.raises(ValueError, match="no frames"):
        record_trajectory(iter(()))


def test_gif_has_one_frame_per_kept_step_with_z_beside_x0():
    traj = record_trajectory(frames(10, n=4))
    img = Image.open(io.BytesIO(trajectory_gif(traj, scale=2)))
    assert img.format == "GIF" and img.n_frames == len(traj) == 11
    h, w = side_by_side(traj.z[0], traj.x0[0]).shape
    assert img.size == (2 * w, 2 * h)
    img.seek(0)
    first = np.asarray(img.convert("L"), dtype=float)
    # frame 0 is t = T: z is white (1.0) and x̂0 black (0.0); left half bright, right half dark
    assert first[:, : w // 2].mean() > 150 and first[:, w + w // 2:].mean() < 120


def test_sample_exports_round_trip():
    images = np.random.default_rng(0).random((4, 28, 28)).astype(np.float32)
    np.testing.assert_array_equal(np.load(io.BytesIO(samples_npy(images)), allow_pickle=False), images)
    png = Image.open(io.BytesIO(samples_png(images, scale=1)))
    assert png.size == (2 * 30 + 2, 2 * 30 + 2)  # a 2×2 grid of 28-pixel tiles with 2-pixel padding
