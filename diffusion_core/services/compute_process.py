"""A class's merged sampling computed in child processes (#30), out of the server's GIL.

Why: Streamlit runs every session's script as a thread of one Python process. A sampler dispatches hundreds of
small torch ops per step and must take the GIL back after each one; while thirty students' pages render, each
take-back waits behind them. Measured on 2 cores (benchmarks/load_test.py, 30 students): one merged batch of 176
images took 13.9 s in the server's worker thread against 3.6 s alone. A child process has its own GIL, so the
pages' Python no longer stalls the network: the worker thread only waits on a socket.

    frames = merged_frames(ckpt, choice, seeds)                 # SamplerStep per step, as checkpoint_frames
    samples = run_to_end(merged_frames(ckpt, choice, seeds, final_only=True)).samples

A run borrows an idle child or starts one, and gives it back when it ends: there are as many children as runs
ever computed at once (one per queue worker). A child that died is started again by the next run that borrows
it. The child loads the checkpoint from its file (kept while its weights' hash is unchanged) and streams frames
back without waiting for the server; a "stop" from the server (every page left the run) ends it before its next
step. Runs in the calling thread instead with DIFFUSION_LAB_COMPUTE=thread, for a model with no file on disk, and
for a sampler registered at run time from outside diffusion_core (the child would not know it).

The socket carries pickles (plain pickle: torch's multiprocessing pickler would share tensors through a separate
server) between this server and the child it started: nothing from a user or a file is unpickled.
"""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import torch

from diffusion_core.io.checkpoints import LoadedCheckpoint
from diffusion_core.process import SamplerChoice
from diffusion_core.samplers import SamplerStep
from diffusion_core.services import ray_serve

COMPUTE_ENV = "DIFFUSION_LAB_COMPUTE"  # "process" (default): merged sampling in a child per worker; "thread"
MODES = ("process", "thread")
MAX_MODELS = 4  # checkpoints a child keeps loaded
PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the folder holding diffusion_core/, for the child's imports


class ComputeProcessDied(RuntimeError):
    """The child stopped in the middle of a run (killed, out of memory); the next run starts a new one."""


class StaleCheckpoint(RuntimeError):
    """The checkpoint's file no longer holds the weights the server loaded (a run saved over it)."""


def compute_mode() -> str:
    """DIFFUSION_LAB_COMPUTE, checked: "process" or "thread"."""
    mode = os.environ.get(COMPUTE_ENV, "process").strip().lower() or "process"
    if mode not in MODES:
        raise ValueError(f"{COMPUTE_ENV} must be one of {', '.join(MODES)}; got {mode!r}")
    return mode


def merged_frames(ckpt: LoadedCheckpoint, choice: SamplerChoice, seeds: Sequence[int], precision: str = "auto",
                  final_only: bool = False) -> Iterator[SamplerStep]:
    """checkpoint_frames(ckpt, choice, len(seeds), precision, seeds) computed in a sampling process borrowed for
    the run (or here: see the module's note); with final_only, only the last frame (t = 0)."""
    from diffusion_core.sampling import checkpoint_frames

    sha = ckpt.config.get("weights_sha256")
    if compute_mode() == "thread" or not sha or not Path(ckpt.path).is_file() or not _known_to_children(choice):
        frames = checkpoint_frames(ckpt, choice, len(seeds), precision=precision, seeds=list(seeds))
        return _last_only(frames) if final_only else frames
    cluster = ray_serve.ray_target() if final_only else None  # a class across servers: its Ray cluster
    return _borrowed_frames(Path(ckpt.path), sha, choice, list(seeds), precision, final_only, ckpt, cluster)


def _known_to_children(choice: SamplerChoice) -> bool:
    """Whether a fresh interpreter knows the choice's sampler: one of diffusion_core's own (a sampler registered
    at run time from elsewhere, say a plug-in file, exists only in this process)."""
    from diffusion_core.process.base import SAMPLERS

    spec = SAMPLERS.get(choice.sampler)
    return spec is None or getattr(spec.run, "__module__", "").startswith("diffusion_core.")


def _borrowed_frames(*args: Any) -> Iterator[SamplerStep]:
    proc = _borrow()
    try:
        yield from proc.frames(*args)
    finally:
        _notes.last = proc.note
        _give_back(proc)


_notes = threading.local()


def last_note() -> str | None:
    """How this thread's last run through a child was computed, when not simply there (e.g. "on the Ray cluster
    at …"); None otherwise."""
    return getattr(_notes, "last", None)


def _last_only(frames: Iterator[SamplerStep]) -> Iterator[SamplerStep]:
    last = None
    for last in frames:  # noqa: B007 — only the last frame is wanted
        pass
    if last is not None:
        yield last


class ComputeProcess:
    """One child process computing sampling runs, one at a time, for the run that has borrowed it."""

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self._process: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self._unanswered = 0  # warm-ups whose answers are still to be read
        self.note: str | None = None  # how the last run was computed, when the child says (e.g. on a Ray cluster)

    def start(self) -> None:
        """A fresh interpreter running _serve over one end of a socket pair. Not multiprocessing's spawn: that
        re-imports the server's main module in the child (a script with no `__main__` guard would run again)."""
        ours, theirs = socket.socketpair()
        # idle OpenMP threads sleep instead of spinning: a spinning child takes the cores the pages render on
        env = {"OMP_WAIT_POLICY": "PASSIVE"} | os.environ | {"PYTHONPATH": os.pathsep.join(
            p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
        code = f"from diffusion_core.services.compute_process import _main; _main({theirs.fileno()}, {self.threads})"
        self._process = subprocess.Popen([sys.executable, "-c", code], pass_fds=(theirs.fileno(),), env=env,
                                         stdin=subprocess.DEVNULL)
        theirs.close()
        self._conn = Connection(ours.detach())

    def warm(self, ckpt: LoadedCheckpoint, choice: SamplerChoice, precision: str = "auto") -> None:
        """Ask the child, without waiting, to load ckpt and run choice on one image (its first run pays for
        torch's start-up and the kernels' first calls); the next run reads the answer first."""
        if not self.alive():
            self.start()
        self._send(("warm", str(ckpt.path), ckpt.config.get("weights_sha256"), choice, [0], precision, True, None))
        self._unanswered += 1

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.send_bytes(pickle.dumps(None))
            except (OSError, ValueError):
                pass
            self._conn.close()
        if self._process is not None:
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = self._conn = None
        self._unanswered = 0

    def frames(self, path: Path, sha: str, choice: SamplerChoice, seeds: list[int], precision: str,
               final_only: bool, fallback: LoadedCheckpoint, cluster: ray_serve.RayTarget | None = None
               ) -> Iterator[SamplerStep]:
        """The run's frames as the child sends them (from the Ray cluster at `cluster`, for a final-only run);
        `fallback` (the server's own copy) computes here when the file changed since it was loaded."""
        if not self.alive():
            self.close()
            self.start()
        while self._unanswered:  # a warm-up's outcome (its failure is the run's to meet, if it meets it)
            self._recv()
            self._unanswered -= 1
        self.note = None
        self._send(("frames", str(path), sha, choice, seeds, precision, final_only, cluster))
        finished = False
        try:
            while True:
                kind, payload = self._recv()
                if kind == "frame":
                    yield _frame_from_wire(payload)
                elif kind == "end":
                    finished, self.note = True, payload
                    return
                else:  # "error": the child's exception, raised here as if computed here
                    finished = True
                    if isinstance(payload, ray_serve.RayUnavailable):  # this server computes for a while
                        ray_serve.mark_unavailable(str(payload))
                        yield from self.frames(path, sha, choice, seeds, precision, final_only, fallback)
                        return
                    if isinstance(payload, StaleCheckpoint):
                        from diffusion_core.sampling import checkpoint_frames

                        frames = checkpoint_frames(fallback, choice, len(seeds), precision=precision, seeds=seeds)
                        yield from (_last_only(frames) if final_only else frames)
                        return
                    raise payload
        finally:
            if not finished and self.alive():  # the consumer stopped early: tell the child, read up to its end
                try:
                    self._send("stop")
                    while self._recv()[0] == "frame":
                        pass
                except ComputeProcessDied:
                    pass

    def _send(self, message: Any) -> None:
        try:
            self._conn.send_bytes(pickle.dumps(message))
        except (OSError, ValueError) as exc:
            raise self._died() from exc

    def _recv(self) -> tuple[str, Any]:
        try:
            return pickle.loads(self._conn.recv_bytes())
        except (EOFError, OSError) as exc:
            raise self._died() from exc

    def _died(self) -> ComputeProcessDied:
        code = None
        if self._process is not None:
            try:
                code = self._process.wait(1)
            except subprocess.TimeoutExpired:
                pass
        self.close()
        return ComputeProcessDied(f"the sampling process stopped in the middle of a run (exit code {code}); "
                                  "press the button again: a new one starts")


_lock = threading.Lock()
_idle: list[ComputeProcess] = []  # started, not computing now
_all: list[ComputeProcess] = []  # every one this process started: at most as many as runs ever computed at once


def _borrow() -> ComputeProcess:
    """An idle sampling process (its torch threads: this process's setting when it was made), or a new one."""
    with _lock:
        if _idle:
            return _idle.pop()
        proc = ComputeProcess(threads=max(1, torch.get_num_threads()))
        _all.append(proc)
        return proc


def _give_back(proc: ComputeProcess) -> None:
    with _lock:
        _idle.append(proc)


def prestart(count: int, ckpt: LoadedCheckpoint, choice: SamplerChoice, precision: str = "auto") -> int:
    """Start sampling processes ahead of the first runs, up to `count` in all, each warming ckpt with choice in
    the background. Nothing in thread mode or for a model with no file. Returns how many started now."""
    if compute_mode() == "thread" or not ckpt.config.get("weights_sha256") or not Path(ckpt.path).is_file():
        return 0
    with _lock:
        new = [ComputeProcess(threads=max(1, torch.get_num_threads())) for _ in range(max(0, count - len(_all)))]
        _all.extend(new)
        _idle.extend(new)
    for proc in new:
        proc.warm(ckpt, choice, precision)
    return len(new)


def child_pids() -> list[int]:
    """The process ids of the sampling processes started here and still running (for memory and fault tests)."""
    with _lock:
        return [p.pid for p in _all if p.alive() and p.pid is not None]


# -- the child --------------------------------------------------------------------------------------------------


def _to_wire(x: torch.Tensor) -> Any:
    """A tensor as a numpy array (pickled ten times faster than a tensor), unless numpy lacks its dtype."""
    return x.numpy() if x.dtype in (torch.float32, torch.float64) else x


def _frame_to_wire(frame: SamplerStep) -> tuple:
    return frame.t, _to_wire(frame.z.detach().cpu()), _to_wire(frame.x0_hat.detach().cpu())


def _frame_from_wire(wire: tuple) -> SamplerStep:
    t, z, x0_hat = wire
    return SamplerStep(t, *(torch.from_numpy(x) if not isinstance(x, torch.Tensor) else x for x in (z, x0_hat)))


def _main(fd: int, threads: int) -> None:
    """The child's entry point (see ComputeProcess.start)."""
    _serve(Connection(fd), threads)


def _serve(conn: Connection, threads: int) -> None:
    """The child's loop: one run at a time, its frames streamed back; exits when the server closes the pipe."""
    torch.set_num_threads(threads)
    models: dict[tuple[str, str], LoadedCheckpoint] = {}
    while True:
        try:
            request = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        if request is None:
            return
        if not isinstance(request, tuple) or request[0] not in ("frames", "warm"):
            continue  # a "go"/"stop" left from a run that ended in an error
        kind, path, sha, choice, seeds, precision, final_only, cluster = request
        try:
            if cluster is not None:  # the images from the cluster's replicas (RayUnavailable: the server computes)
                images, note = ray_serve.sample_on_cluster(cluster, path, sha, choice, seeds, precision)
                final = SamplerStep(0, torch.from_numpy(images.copy()), torch.from_numpy(images.copy()))
                conn.send_bytes(pickle.dumps(("frame", _frame_to_wire(final)), protocol=5))
                conn.send_bytes(pickle.dumps(("end", note)))
                continue
            ckpt = _model(models, path, sha)
            if kind == "warm":
                from diffusion_core.sampling import checkpoint_frames

                for _ in checkpoint_frames(ckpt, choice, len(seeds), precision=precision, seeds=seeds):
                    pass
                conn.send_bytes(pickle.dumps(("end", None)))
            else:
                _stream(conn, ckpt, choice, seeds, precision, final_only)
        except (EOFError, OSError):
            return
        except Exception as exc:  # noqa: BLE001 — handed to the server, which raises it where it was asked
            try:
                message = pickle.dumps(("error", exc))
            except Exception:  # noqa: BLE001 — an exception that cannot be pickled: its text
                message = pickle.dumps(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))
            conn.send_bytes(message)


def _model(models: dict, path: str, sha: str) -> LoadedCheckpoint:
    from diffusion_core.io.checkpoints import load_checkpoint

    key = (path, sha)
    if key not in models:
        ckpt = load_checkpoint(path)
        if ckpt.config.get("weights_sha256") != sha:
            raise StaleCheckpoint(f"{path} changed since the server loaded it")
        while len(models) >= MAX_MODELS:
            models.pop(next(iter(models)))
        models[key] = ckpt
    return models[key]


def _stream(conn, ckpt: LoadedCheckpoint, choice: SamplerChoice, seeds: list[int], precision: str,
            final_only: bool) -> None:
    from diffusion_core.sampling import checkpoint_frames

    frames = checkpoint_frames(ckpt, choice, len(seeds), precision=precision, seeds=seeds)
    try:
        for frame in (_last_only(frames) if final_only else frames):
            # streamed without waiting for the server (whose thread may wait its turn for the GIL); a "stop" it
            # sent meanwhile ends the run before the next step
            conn.send_bytes(pickle.dumps(("frame", _frame_to_wire(frame)), protocol=5))
            if conn.poll() and pickle.loads(conn.recv_bytes()) == "stop":
                break
    finally:
        frames.close()
    conn.send_bytes(pickle.dumps(("end", None)))
