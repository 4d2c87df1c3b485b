"""Recording reverse runs for step-through (bounded, evenly spaced frames) and the exports."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from diffusion_core.io.images import make_grid
from diffusion_core.samplers import SamplerStep
from diffusion_core.views.reverse import (
    HEADER_PX,
    LiveView,
    RunStopped,
    frame_pngs,
    play_frame,
    record_trajectory,
    samples_npy,
    samples_png,
    side_by_side,
    trajectory_gif,
)


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
    band = 2 * HEADER_PX  # the label band above the pictures
    assert img.size == (2 * w, 2 * h + band)
    img.seek(0)
    first = np.asarray(img.convert("L"), dtype=float)
    # frame 0 is t = T: z is white (1.0) and x̂0 black (0.0); left half bright, right half dark
    assert first[band:, : w // 2].mean() > 150 and first[band:, w + w // 2:].mean() < 120
    # each frame's band names its t: the bands of frames with different t differ, and carry dark text
    img.seek(len(traj) - 1)
    last = np.asarray(img.convert("L"), dtype=float)
    assert first[:band].min() < 100 and not np.array_equal(first[:band, : w], last[:band, : w])
    assert np.array_equal(first[:band, w + 10:], last[:band, w + 10:])  # "predicted x0" stays put


def test_sample_exports_round_trip():
    images = np.random.default_rng(0).random((4, 28, 28)).astype(np.float32)
    np.testing.assert_array_equal(np.load(io.BytesIO(samples_npy(images)), allow_pickle=False), images)
    png = Image.open(io.BytesIO(samples_png(images)))
    side = 2 * 30 + 2  # a 2×2 grid of 28-pixel tiles with 2-pixel padding: 62 px, scaled ×9 to ≥ 512
    assert png.size == (9 * side, 9 * side)
    pixels = np.asarray(png.convert("L"))
    assert np.array_equal(pixels[::9, ::9], np.asarray(Image.open(io.BytesIO(samples_png(images, 1))).convert("L")))
    many = Image.open(io.BytesIO(samples_png(np.zeros((400, 28, 28), np.float32))))
    assert max(many.size) <= 2048  # a big grid stays within the cap


class FakeClock:
    """A clock that advances `step` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_live_view_passes_every_frame_and_keeps_one_every_interval():
    live = LiveView(every_s=1.0, clock=FakeClock(0.25))  # a frame every 0.25 s: one in four is kept
    assert live.latest() is None
    seen = []
    for _frame in live.watch(frames(20)):
        latest = live.latest()
        seen.append(latest.index)
        assert latest.t == 20 - latest.index  # a copy of the frame it names, as [0, 1] pixels
        np.testing.assert_allclose(latest.z[:, 0, 0], latest.t / 20, atol=1e-6)
        np.testing.assert_allclose(latest.x0[:, 0, 0], 1 - latest.t / 20, atol=1e-6)
    assert len(seen) == 21  # every frame passed through
    assert sorted(set(seen)) == [0, 4, 8, 12, 16, 20]  # the first, then one a second


def test_a_recorded_live_run_is_the_same_trajectory():
    plain = record_trajectory(frames(30), max_frames=8)
    live = record_trajectory(LiveView(every_s=0.0).watch(frames(30)), max_frames=8)
    assert live.ts == plain.ts and live.total_frames == plain.total_frames
    np.testing.assert_array_equal(live.z, plain.z)


def test_stopping_a_live_run_ends_it_at_its_next_step():
    live = LiveView()
    computed = []

    def sampler():
        for frame in frames(10):
            computed.append(frame.t)
            yield frame

    watched = live.watch(sampler())
    next(watched), next(watched)
    live.stop()  # e.g. the page that waits for it was rerun or closed
    with pytest.raises(RunStopped):
        next(watched)
    assert computed == [10, 9, 8]  # the step in flight finishes; nothing after it is computed


def test_frame_pngs_encode_each_kept_frame_once():
    traj = record_trajectory(frames(6, n=4))
    pngs = frame_pngs(traj, scale=2)
    assert len(pngs) == len(traj) == 7
    for k, (z_png, x0_png) in enumerate(pngs):
        for png, images in ((z_png, traj.z[k]), (x0_png, traj.x0[k])):
            decoded = np.asarray(Image.open(io.BytesIO(png)), dtype=float) / 255
            np.testing.assert_allclose(decoded[::2, ::2], make_grid(images), atol=1 / 255)


@pytest.mark.parametrize("frames_, seconds", [(51, 8.0), (129, 8.0), (2, 8.0), (21, 1.0)])
def test_play_takes_the_intended_time_and_ends_on_the_last_frame(frames_, seconds):
    assert play_frame(0, 0.0, frames_, seconds) == 0
    assert play_frame(0, seconds * 0.999, frames_, seconds) < frames_ - 1  # not over early
    assert play_frame(0, seconds, frames_, seconds) == frames_ - 1  # over on time
    assert play_frame(0, 60 * seconds, frames_, seconds) == frames_ - 1  # a late tick still lands on the end
    shown = [play_frame(0, i * 0.15, frames_, seconds) for i in range(200)]
    assert shown == sorted(shown)  # never backwards, however late a tick comes


def test_play_from_the_middle_keeps_the_same_pace():
    assert play_frame(25, 0.0, 51, 8.0) == 25
    assert play_frame(25, 4.0, 51, 8.0) == 50
    with pytest.raises(ValueError):
        play_frame(0, 1.0, 0, 8.0)
