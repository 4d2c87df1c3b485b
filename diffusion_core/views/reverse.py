"""Recording a reverse-diffusion run for step-through viewing, and exporting it (GIF, PNG, .npy).

A sampler yields one frame (t, z_t, x̂0) per step: T + 1 frames for the ancestral sampler, which at
T = 18,300 would not fit in a browser session. `record_trajectory` keeps a bounded, evenly spaced
subset by decimation: it keeps every `stride`-th frame and doubles the stride (dropping every other
kept frame) whenever more than `max_frames` are held, so memory stays bounded without knowing the
number of frames in advance. The first and the last frame (t = 0, the samples) are always kept.

For a page: `LiveView` shares the latest frame of a run computing on another thread (live denoising),
`frame_pngs` encodes every kept frame once so stepping through a finished run only swaps images,
and `play_frame` says which frame Play shows after a given time, so Play lasts as long as intended
however slowly the frames are drawn, and always ends on the last frame.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from diffusion_core.evaluation.spectra import radial_power_spectrum
from diffusion_core.io.images import make_grid, png_bytes, to_unit_numpy
from diffusion_core.samplers import SamplerStep

DEFAULT_MAX_FRAMES = 128


@dataclass
class Trajectory:
    """Kept frames of one reverse run, as [0, 1] pixels: z[k] and x0[k] are N×H×W at timestep ts[k]."""

    ts: list[int]
    z: np.ndarray  # K×N×H×W
    x0: np.ndarray  # K×N×H×W
    total_frames: int  # frames the sampler produced (≥ len(ts))
    z_power: np.ndarray | None = None  # K×R radial power spectra of z_t (unclipped, data space; evaluation.spectra)
    x0_power: np.ndarray | None = None  # K×R, of x̂0
    z_data: np.ndarray | None = None  # K×N×C×H×W: z_t itself (data space, unclipped, float32), to re-noise from

    def state(self, k: int) -> torch.Tensor:
        """z_t of kept frame k as the sampler had it (N×C×H×W data space): where Diffuse ↑ starts."""
        if self.z_data is None:
            raise ValueError("this trajectory kept only its pictures, not the states z_t")
        return torch.from_numpy(self.z_data[k].astype(np.float32))

    def spectra(self, count: int = 5) -> dict[str, np.ndarray]:
        """{"z_t · t = …": power, "x̂0 · t = …": power} at `count` evenly spaced kept frames (the last included)."""
        if self.z_power is None or self.x0_power is None:
            return {}
        picks = sorted({round(i * (len(self.ts) - 1) / max(count - 1, 1)) for i in range(count)})
        out = {f"z_t · t = {self.ts[k]}": self.z_power[k] for k in picks}
        out.update({f"x̂0 · t = {self.ts[k]}": self.x0_power[k] for k in picks if self.ts[k] > 0})
        return out

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def samples(self) -> np.ndarray:
        """The final images (N×H×W in [0, 1]): z at t = 0."""
        return self.z[-1]


class TrajectoryRecorder:
    """Frames pushed one at a time (add), keeping at most max_frames + 1 evenly spaced ones (plus the last); result()
    is the Trajectory. record_trajectory pulls a run's frames through one; a merged run (services/batching.py)
    pushes each student's slice of every frame into their own."""

    def __init__(self, max_frames: int = DEFAULT_MAX_FRAMES) -> None:
        if isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 2:
            raise ValueError(f"max_frames must be an integer ≥ 2; got {max_frames!r}")
        self.max_frames = max_frames
        self._kept: list[tuple] = []  # (frame index, t, z, x̂0, power of z, power of x̂0, z in data space)
        self._stride, self._index, self._last = 1, -1, None

    @staticmethod
    def _keep(i: int, frame: SamplerStep) -> tuple:
        return (i, frame.t, to_unit_numpy(frame.z), to_unit_numpy(frame.x0_hat),
                radial_power_spectrum(frame.z), radial_power_spectrum(frame.x0_hat),
                frame.z.detach().float().cpu().numpy())

    def add(self, frame: SamplerStep) -> None:
        self._index += 1
        self._last = frame
        if self._index % self._stride:
            return
        self._kept.append(self._keep(self._index, frame))
        if len(self._kept) > self.max_frames:
            self._stride *= 2
            self._kept = [k for k in self._kept if k[0] % self._stride == 0]

    def result(self) -> Trajectory:
        if self._last is None:
            raise ValueError("the sampler produced no frames")
        kept = self._kept if self._kept[-1][0] == self._index else [*self._kept, self._keep(self._index, self._last)]
        return Trajectory(
            ts=[k[1] for k in kept],
            z=np.stack([k[2] for k in kept]),
            x0=np.stack([k[3] for k in kept]),
            total_frames=self._index + 1,
            z_power=np.stack([k[4] for k in kept]),
            x0_power=np.stack([k[5] for k in kept]),
            z_data=np.stack([k[6] for k in kept]),
        )


def record_trajectory(frames: Iterable[SamplerStep], max_frames: int = DEFAULT_MAX_FRAMES) -> Trajectory:
    """Consume sampler frames, keeping at most max_frames + 1 evenly spaced ones (plus the last)."""
    recorder = TrajectoryRecorder(max_frames)
    for frame in frames:
        recorder.add(frame)
    return recorder.result()


class RunStopped(Exception):
    """A watched run was stopped (LiveView.stop) before its last step."""


@dataclass(frozen=True)
class LiveFrame:
    """One frame of a run in progress, as [0, 1] pixels: z and x0 are N×H×W; index counts frames from 0."""

    index: int
    t: int
    z: np.ndarray
    x0: np.ndarray


class LiveView:
    """The latest frame of a run computing on another thread (a work queue's), for a page to draw while it
    waits, and a way to stop the run at its next step (a rerun or a closed tab should free the CPU).

    `watch(frames)` passes the frames through, keeping a copy of the first and then of one frame every
    `every_s` seconds (a live view costs a few copies per second, not one per step)."""

    def __init__(self, every_s: float = 0.2, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s, self._clock = every_s, clock
        self._lock = threading.Lock()
        self._latest: LiveFrame | None = None
        self._shown: float | None = None  # when the last live frame was kept
        self._stop = threading.Event()

    def watch(self, frames: Iterable[SamplerStep]) -> Iterator[SamplerStep]:
        for index, frame in enumerate(frames):
            if self.stopped:
                raise RunStopped(f"stopped at t = {frame.t}")
            self.offer(index, frame)
            yield frame

    def offer(self, index: int, frame: SamplerStep) -> None:
        """Frame `index` of the run: kept for the page if it is the first or every_s has passed since the last."""
        now = self._clock()
        if self._shown is None or now - self._shown >= self.every_s:
            live = LiveFrame(index, frame.t, to_unit_numpy(frame.z), to_unit_numpy(frame.x0_hat))
            with self._lock:
                self._latest = live
            self._shown = now

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def latest(self) -> LiveFrame | None:
        with self._lock:
            return self._latest

    def stop(self) -> None:
        self._stop.set()


def frame_pngs(traj: Trajectory, scale: int = 4) -> list[tuple[bytes, bytes]]:
    """(z_t grid, x̂0 grid) as PNG bytes for every kept frame, encoded once."""
    return [(png_bytes(make_grid(traj.z[k]), scale=scale), png_bytes(make_grid(traj.x0[k]), scale=scale))
            for k in range(len(traj))]


def play_frame(start_frame: int, elapsed_s: float, frames: int, seconds: float) -> int:
    """The frame Play shows elapsed_s after starting at start_frame, playing all `frames` in `seconds`;
    frames − 1 (the samples, t = 0) once the time is up."""
    if frames < 1 or seconds <= 0:
        raise ValueError(f"need at least one frame and a positive duration; got {frames}, {seconds}")
    return min(frames - 1, start_frame + int(max(elapsed_s, 0.0) / seconds * (frames - 1)))


def side_by_side(z01: np.ndarray, x01: np.ndarray, nrow: int | None = None, gap: int = 6) -> np.ndarray:
    """One image: the grid of z_t, a gap, the grid of x̂0 (both N×H×W in [0, 1])."""
    a, b = make_grid(z01, nrow), make_grid(x01, nrow)
    return np.concatenate([a, np.ones((a.shape[0], gap), dtype=np.float32), b], axis=1)


HEADER_PX = 14  # the GIF's label band, in pixels of the unscaled frame


def _labelled(frame: np.ndarray, t: int, left_width: int, scale: int) -> Image.Image:
    """A frame scaled up with a white band on top naming its panels and t: 'z_t · t = 480' over the noisy
    grid, 'predicted x0' over the other."""
    img = Image.fromarray(frame, mode="L")
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    out = Image.new("L", (img.width, img.height + HEADER_PX * scale), 255)
    out.paste(img, (0, HEADER_PX * scale))
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default(size=10 * scale)
    draw.text((2 * scale, scale), f"z_t  (t = {t})", fill=0, font=font)
    draw.text(((left_width + 2) * scale, scale), "predicted x0", fill=0, font=font)
    return out


def trajectory_gif(traj: Trajectory, scale: int = 3, duration_ms: int = 80, hold_last_ms: int = 1500) -> bytes:
    """An animated GIF of the kept frames: z_t beside x̂0 under a band naming both and t, looping, pausing on
    the final samples."""
    if not 1 <= scale <= 8:
        raise ValueError(f"scale must be between 1 and 8; got {scale}")
    images = []
    left = make_grid(traj.z[0]).shape[1]
    for k in range(len(traj)):
        frame = (np.clip(side_by_side(traj.z[k], traj.x0[k]), 0, 1) * 255).round().astype(np.uint8)
        images.append(_labelled(frame, traj.ts[k], left, scale))
    durations = [duration_ms] * (len(images) - 1) + [hold_last_ms]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0)
    return buf.getvalue()


def samples_png(images01: np.ndarray, min_width: int = 512, max_side: int = 2048) -> bytes:
    """A PNG grid of N×H×W images in [0, 1], scaled up by a whole factor (nearest neighbour, pixels stay
    square) to at least `min_width` pixels wide where that keeps both sides within `max_side`."""
    grid = make_grid(images01)
    scale = max(1, min(-(-min_width // grid.shape[1]), max_side // max(grid.shape)))
    return png_bytes(grid, scale=scale)


def samples_npy(images01: np.ndarray) -> bytes:
    """N×H×W float32 in [0, 1] as .npy bytes (no pickle)."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(images01, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()
