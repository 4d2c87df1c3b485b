"""Background training jobs: `python -m diffusion_core train … --quiet` as a subprocess writing a run
directory under a runs root, so a page can start a run, watch it, stop it, resume it and reattach
after a reload.

runs root (default ./runs, or $DIFFUSION_LAB_RUNS)/
  <run id>/          the trainer's run directory (see training/trainer.py) plus
    job.json         what this module launched: pid, command, start time, stop requests
    log.txt          the subprocess's stdout and stderr

A run's state is read from the files, never from memory, so any process can list runs:
  starting   the process is alive but has not begun training yet; `RunInfo.phase` says which part
             (importing PyTorch until the trainer writes config.json, then loading the data and
             building the model until it writes status.json)
  running    training; `stopping` once STOP has been requested
  finished / stopped / failed   as written by the trainer
  died       the process ended while status.json still said running (killed, out of memory, …)
"""

from __future__ import annotations

import dataclasses
import fcntl
import math
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from diffusion_core.io.cards import card_protocol, monitor_sampler
from diffusion_core.io.files import PROJECT_ROOT, atomic_write_json, env_int, read_jsonl
from diffusion_core.io.runs import read_json_or_empty, read_run_files
from diffusion_core.lab.ownership import Actor, may_manage, run_name
from diffusion_core.process import process_from_config
from diffusion_core.training.options import train_config
from diffusion_core.training.trainer import TrainConfig

RUNS_ENV = "DIFFUSION_LAB_RUNS"
TRAIN_CONFIG = "train_config.json"  # the TrainConfig a job hands its subprocess
MAX_JOBS_ENV = "DIFFUSION_LAB_MAX_JOBS"
DEFAULT_MAX_JOBS = 2
ACTIVE_STATES = ("starting", "running", "stopping")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
DIED_MESSAGE = "process ended unexpectedly; the last complete epoch is kept; Resume to continue"
DIED_EARLY_MESSAGE = "process ended unexpectedly before the first epoch completed; Resume to start again"


class JobError(ValueError):
    """A job request that cannot be carried out; the message says why and what to do."""


def runs_root() -> Path:
    """Where run directories live: $DIFFUSION_LAB_RUNS, else ./runs."""
    return Path(os.environ.get(RUNS_ENV, "runs")).resolve()


def max_jobs() -> int:
    """The cap on concurrently active jobs: $DIFFUSION_LAB_MAX_JOBS (≥ 1), else 2."""
    try:
        return env_int(MAX_JOBS_ENV, DEFAULT_MAX_JOBS)
    except ValueError as exc:
        raise JobError(str(exc)) from None


def new_run_id() -> str:
    """A sortable id, unique with near certainty: run-YYYYmmdd-HHMMSS-<8 random hex digits>."""
    return f"run-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}"


def run_dir_for(run_id: str, root: Path | None = None) -> Path:
    """The directory of `run_id`, refusing ids that could escape the runs root (e.g. from a URL)."""
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
        raise JobError(f"{run_id!r} is not a valid run id (letters, digits, '.', '_' and '-' only)")
    return (root or runs_root()) / run_id


# ---------------------------------------------------------------- process liveness


def _proc_cmdline(pid: int) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None


def pid_alive(pid: int | None) -> bool:
    """True while `pid` is a live (not zombie) diffusion_core process.

    Our own finished children are reaped here, so they do not linger as zombies."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass  # not our child: fall through to a signal-0 probe
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X"):
            return False
    except (OSError, IndexError):
        return True  # no /proc (macOS): trust the signal probe
    cmdline = _proc_cmdline(pid)
    return cmdline is None or b"diffusion_core" in cmdline  # a recycled pid is not our job


# ---------------------------------------------------------------- run records


@dataclass
class RunInfo:
    """One run directory as a page shows it."""

    run_id: str
    run_dir: Path
    state: str
    message: str
    epoch: int
    epochs: int
    pid: int | None
    config: dict = field(default_factory=dict)
    status: dict = field(default_factory=dict)
    metrics: list[dict] = field(default_factory=list)
    started: float | None = None
    options: dict = field(default_factory=dict)  # what the page asked for (job.json), before config.json exists
    phase: str = ""  # what an active run is doing now, e.g. "loading the training data and building the model"
    phase_since: float | None = None  # when that began (time.time())
    owner: str | None = None  # SHA-256 of the starting browser's token (ownership.owner_of); None: no one's
    name: str | None = None  # its starter's name for it

    @property
    def title(self) -> str:
        """'name (run id)', or the run id for an unnamed run."""
        return f"{self.name} ({self.run_id})" if self.name else self.run_id

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def checkpoint(self) -> Path | None:
        """The run's latest inference checkpoint (model.safetensors), if an epoch has completed."""
        w = self.run_dir / "model.safetensors"
        return w if w.is_file() and (self.run_dir / "model.json").is_file() else None

    @property
    def losses(self) -> list[tuple[int, float]]:
        return [(int(r["epoch"]), float(r["loss"])) for r in self.metrics if "epoch" in r and "loss" in r]

    @property
    def latest_sample(self) -> Path | None:
        """The newest preview grid (samples/epoch_NNNN.png) written by the trainer."""
        for row in reversed(self.metrics):
            if row.get("sample") and (self.run_dir / row["sample"]).is_file():
                return self.run_dir / row["sample"]
        return None

    @property
    def eta_seconds(self) -> float | None:
        """Mean epoch time × epochs left, while the run is active."""
        times = [float(r["epoch_time_s"]) for r in self.metrics if "epoch_time_s" in r]
        if not self.active or not times:
            return None
        return sum(times) / len(times) * max(self.epochs - self.epoch, 0)

    def describe(self) -> str:
        """A one-line summary of what the run trains, for pickers and tables (from the options it was
        started with until the trainer has written config.json)."""
        if self.config:
            diffusion, arch, dataset = (self.config.get("diffusion"), self.config.get("model", {}).get("arch", "?"),
                                        self.config.get("dataset", "?"))
        else:
            diffusion, arch, dataset = (self.options, str(self.options.get("arch") or "cnn"),
                                        str(self.options.get("dataset") or "mnist"))
        try:
            what = process_from_config(diffusion if self.config else config_of(diffusion).diffusion).label()
        except (ValueError, TypeError, JobError):
            what = "?"
        return f"{arch}, {what}, {dataset}"

    def phase_text(self, now: float | None = None) -> str:
        """The phase with how long it has lasted: 'importing PyTorch (12 s)'; '' when there is none."""
        if not self.phase:
            return ""
        if self.phase_since is None:
            return self.phase
        seconds = max(0, int((time.time() if now is None else now) - self.phase_since))
        return f"{self.phase} ({seconds} s)"


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _phase(state: str, run_dir: Path, job: dict, epoch: int, epochs: int) -> tuple[str, float | None]:
    """What an active run is doing, read from its files: the trainer writes config.json once PyTorch is
    imported and status.json once the data is loaded and the model built; then each epoch adds a line."""
    started = job.get("started")
    if state == "starting":
        config_written = _mtime(run_dir / "config.json")
        if config_written is not None and isinstance(started, (int, float)) and config_written >= started:
            return "loading the training data and building the model", config_written
        return "starting Python and importing PyTorch", started if isinstance(started, (int, float)) else None
    if state == "running":  # status.json is rewritten when training begins and at the end of every epoch
        return (f"training epoch {min(epoch + 1, epochs) if epochs else epoch + 1} of {epochs or '?'}",
                _mtime(run_dir / "status.json"))
    if state == "stopping":
        return "stopping at the end of the current batch", _mtime(run_dir / "STOP")
    return "", None


def _read_job(run_dir: Path) -> dict:
    return read_json_or_empty(run_dir / "job.json")


def _log_error(run_dir: Path) -> str:
    """The CLI's own error line from log.txt ("error: …" / "training failed: …"), else its tail."""
    try:
        lines = [ln.strip() for ln in (run_dir / "log.txt").read_text(errors="replace").splitlines() if ln.strip()]
    except FileNotFoundError:
        return "the training process ended before writing anything"
    for line in reversed(lines):
        for prefix in ("error: ", "training failed: "):
            if line.startswith(prefix):
                return line[len(prefix):]
    tail = " | ".join(lines[-3:])
    return f"the training process ended before training began: {tail or 'no output'}"


def read_run(run_id: str, root: Path | None = None) -> RunInfo:
    """The current state of one run, derived from its files and whether its process lives."""
    run_dir = run_dir_for(run_id, root)
    if not run_dir.is_dir():
        raise JobError(f"no run {run_id!r} in {run_dir.parent}; pick one from the list of runs")
    job = _read_job(run_dir)
    files = read_run_files(run_dir)
    status, config = files.status, files.config
    pid = job.get("pid", status.get("pid"))
    alive = pid_alive(pid)
    this_process = status.get("pid") == pid  # status.json written by the current process (not an earlier one)
    trainer_state = status.get("state") if this_process else None
    message = status.get("message", "") if this_process else ""
    if alive and trainer_state == "running":
        state = "stopping" if (run_dir / "STOP").exists() else "running"
    elif alive and trainer_state is None:
        state = "starting"
    elif trainer_state in ("finished", "stopped", "failed"):  # (the process may still be exiting)
        state = trainer_state
    elif job.get("stop_requested") and trainer_state is None:
        state, message = "stopped", "stopped before training began"
    elif trainer_state == "running":
        # Resume continues from train_state.pt (written at the end of each epoch, before status.json): whether
        # it exists says what Resume does, where status.json's epoch may lag it by the moment of the kill
        state = "died"
        message = DIED_MESSAGE if (run_dir / "train_state.pt").is_file() else DIED_EARLY_MESSAGE
    else:
        state, message = "failed", _log_error(run_dir)
    options = job.get("options") if isinstance(job.get("options"), dict) else {}
    epoch = int(status.get("epoch", 0)) if status else 0
    epochs = int(status.get("epochs") or config.get("epochs") or options.get("epochs") or 0)
    if state == "starting" and job.get("epochs_target"):  # a resume: the target it was launched with
        epochs = int(job["epochs_target"])
    phase, since = _phase(state, run_dir, job, epoch, epochs)
    return RunInfo(
        run_id=run_id, run_dir=run_dir, state=state, message=message, epoch=epoch, epochs=epochs,
        pid=pid, config=config, status=status, metrics=files.metrics,
        started=job.get("started"), options=options, phase=phase, phase_since=since,
        owner=job.get("owner") if isinstance(job.get("owner"), str) else None,
        name=job.get("name") if isinstance(job.get("name"), str) else None,
    )


def list_runs(root: Path | None = None) -> list[RunInfo]:
    """Every run under the runs root, newest first."""
    root = root or runs_root()
    if not root.is_dir():
        return []
    runs = []
    for d in root.iterdir():
        if d.is_dir() and _RUN_ID.match(d.name) and ((d / "job.json").is_file() or (d / "config.json").is_file()):
            runs.append(read_run(d.name, root))
    runs.sort(key=lambda r: (r.started or r.run_dir.stat().st_mtime, r.run_id), reverse=True)
    return runs


def active_runs(root: Path | None = None) -> list[RunInfo]:
    return [r for r in list_runs(root) if r.active]


# ---------------------------------------------------------------- starting, stopping, resuming


@contextmanager
def _launch_lock(root: Path) -> Iterator[None]:
    """Serialise cap-check-then-launch across sessions and processes."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".launch.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _check_cap(root: Path) -> None:
    cap = max_jobs()
    active = active_runs(root)
    if len(active) >= cap:
        ids = ", ".join(r.run_id for r in active)
        raise JobError(
            f"{len(active)} training job(s) are already running ({ids}) and the limit is {cap}. "
            f"Wait for one to finish or stop one, then start again (the limit is set by {MAX_JOBS_ENV})."
        )


def _spawn(run_dir: Path, cli_args: list[str], job: dict) -> int:
    command = [sys.executable, "-m", "diffusion_core", "train", *cli_args, "--quiet"]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    with open(run_dir / "log.txt", "ab") as log:
        log.write(f"$ {' '.join(command)}\n".encode())
        log.flush()
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=PROJECT_ROOT, env=env, start_new_session=True)  # outlives a server restart
    atomic_write_json(run_dir / "job.json", {**job, "pid": proc.pid, "command": command, "started": time.time(),
                                             "stop_requested": False})
    return proc.pid


def _check_may_manage(run: RunInfo, actor: Actor | None, verb: str) -> None:
    if not may_manage(run.owner, actor):
        raise JobError(f"run {run.title} was started in another browser: only that browser or the teacher can "
                       f"{verb} it (you can still watch it and sample from it)")


def start_training(options: Mapping[str, object], root: Path | None = None, owner: str | None = None,
                   name: str | None = None) -> RunInfo:
    """Launch a new training job with `options` (named as the CLI's `train` flags, see training.options);
    returns its RunInfo. The subprocess reads the resulting TrainConfig from <run>/train_config.json. `owner`
    (ownership.owner_of of the starting browser's token) and `name` go to job.json.

    Raises JobError when the options or the name are invalid or the concurrent-job cap is reached."""
    root = root or runs_root()
    if "out" in options or "resume" in options:
        raise JobError("the run directory is chosen by the jobs module; do not pass out/resume")
    config = config_of(options)
    try:
        name = run_name(name)
    except ValueError as exc:
        raise JobError(str(exc)) from None
    with _launch_lock(root):
        _check_cap(root)
        while True:  # mkdir is the uniqueness check
            run_id = new_run_id()
            run_dir = run_dir_for(run_id, root)
            try:
                run_dir.mkdir(parents=True)
                break
            except FileExistsError:
                continue
        atomic_write_json(run_dir / TRAIN_CONFIG, dataclasses.asdict(config))
        _spawn(run_dir, ["--config", str(run_dir / TRAIN_CONFIG), "--out", str(run_dir)],
               {"run_id": run_id, "options": dict(options), "owner": owner, "name": name})
    return read_run(run_id, root)


def resume_training(run_id: str, epochs: int | None = None, root: Path | None = None,
                    actor: Actor | None = None) -> RunInfo:
    """Continue a stopped, died or finished run from its last complete epoch (`epochs` extends it); JobError
    when `actor` may not manage it (ownership.may_manage)."""
    root = root or runs_root()
    run = read_run(run_id, root)
    _check_may_manage(run, actor, "resume")
    if run.active:
        raise JobError(f"run {run_id} is {run.state}; it can be resumed once it has stopped")
    if not (run.run_dir / "config.json").is_file():
        raise JobError(f"run {run_id} never started training (no config.json); start a new run instead")
    target = int(epochs if epochs is not None else run.config.get("epochs", run.epochs))
    if run.state == "finished" and target <= run.epoch:
        raise JobError(f"run {run_id} already finished all {run.epoch} epochs; ask for more epochs to extend it")
    # always pass --epochs: without it the CLI's default (100) would extend the run
    cli_args = ["--resume", str(run.run_dir), "--epochs", str(target)]
    with _launch_lock(root):
        _check_cap(root)
        job = _read_job(run.run_dir)
        _spawn(run.run_dir, cli_args, {**job, "run_id": run_id, "resumes": int(job.get("resumes", 0)) + 1,
                                       "epochs_target": max(target, int(run.config.get("epochs", 0) or 0))})
    return read_run(run_id, root)


def stop_training(run_id: str, root: Path | None = None, actor: Actor | None = None) -> RunInfo:
    """Ask a run to stop cleanly: the trainer sees STOP at its next batch and keeps the last
    complete epoch. A job still starting up (not yet training) is terminated outright. JobError when `actor`
    may not manage it."""
    root = root or runs_root()
    run = read_run(run_id, root)
    _check_may_manage(run, actor, "stop")
    if not run.active:
        raise JobError(f"run {run_id} is not running (it is {run.state})")
    job = _read_job(run.run_dir)
    atomic_write_json(run.run_dir / "job.json", {**job, "stop_requested": True})
    if run.state == "starting":
        # train() clears STOP when it begins, so a STOP file could be lost; nothing is trained yet
        try:
            os.kill(run.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 5.0
        while pid_alive(run.pid) and time.monotonic() < deadline:  # (also reaps it if it is our child)
            time.sleep(0.05)
    else:
        (run.run_dir / "STOP").touch()
    return read_run(run_id, root)


DELETED = ".deleted"  # under the runs root: deleted runs, kept until someone empties it


def delete_run(run_id: str, root: Path | None = None, actor: Actor | None = None) -> Path:
    """Take a run that is not active out of every list: its folder moves to <runs root>/.deleted/ (nothing is
    erased: moving it back restores it). Returns where it went; JobError for an active run or when `actor` may
    not manage it."""
    root = root or runs_root()
    with _launch_lock(root):  # no resume can start between the check and the move
        run = read_run(run_id, root)
        _check_may_manage(run, actor, "delete")
        if run.active:
            raise JobError(f"run {run.title} is {run.state}; stop it before deleting it")
        bin_dir = root / DELETED
        bin_dir.mkdir(exist_ok=True)
        target = bin_dir / f"{run_id}-{time.strftime('%Y%m%d-%H%M%S')}"
        os.replace(run.run_dir, target)
    return target


def wait_for(run_id: str, states: tuple[str, ...], timeout: float = 60.0, root: Path | None = None) -> RunInfo:
    """Poll until the run reaches one of `states` (for scripts and tests); JobError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        run = read_run(run_id, root)
        if run.state in states:
            return run
        if time.monotonic() > deadline:
            raise JobError(f"run {run_id} is still {run.state} after {timeout:g} s (waiting for {states})")
        time.sleep(0.2)


# ---------------------------------------------------------------- what a run will cost and give, before Start

# Measured on the 2-core machines this lab was built on (torch 2.14, CPU): a training job spends about
# 8 s importing PyTorch, then 10–15 s loading the data (offline, torchvision first tries to download MNIST
# and fails before the bundled digits are used) and building the model, before its first batch.
STARTUP_S = 25.0
FORWARD_SHARE = 1 / 3  # one forward pass costs about a third of a training image (forward + backward)
FID_SETUP_S = 5.0  # the classifier's statistics of the held-out digits, once per run
# Under this share of a shipped model's optimiser steps, expect noise, not digits: a judgement (the curves hold
# no FID per epoch), from the report CNN, whose samples are still only a third digits after all its 3,600 steps.
NOT_DIGITS_BELOW = 0.25


@dataclass(frozen=True)
class Reference:
    """A shipped model as a yardstick: how fast it trained here and what it draws after how many steps."""

    name: str
    arch: str
    diffusion_type: str
    variant: str | None  # process.variant: the preset or the degradation kind
    images_per_s: float | None  # median over its epochs (metrics.jsonl), None without a curve
    epochs_measured: int
    batch_size: int | None
    optimizer_steps: int | None
    continued: bool  # trained on from an earlier run's weights: it had more steps than optimizer_steps
    metrics: dict  # the card's final numbers: fid, fid_floor, confident_fraction, n, …
    rows: tuple = ()  # its metrics.jsonl rows
    patch: int = 1  # a U-Net's patch (2: runs at 14×14, about 3× the images/s of patch 1)
    width: int | None = None  # a U-Net's base_channels (None: the architecture's default)

    def quality_text(self) -> str:
        """'FID 602 (27× the real-data floor); 35% of samples confidently a digit'."""
        m = self.metrics
        parts = []
        if m.get("fid") is not None:
            floor = m.get("fid_floor")
            over = f" ({m['fid'] / floor:.1f}× the real-data floor {floor:.0f})" if floor else ""
            parts.append(f"classifier-FID {m['fid']:.0f}{over}")
        if m.get("confident_fraction") is not None:
            parts.append(f"{100 * m['confident_fraction']:.0f}% of its samples confidently a digit")
        if m.get("class_entropy") is not None and m["class_entropy"] < ONE_DIGIT_ENTROPY:
            parts.append(f"but nearly all of one or two digits (class entropy {m['class_entropy']:.2f} of "
                         f"{math.log(10):.2f} nats): not a generator of all ten")
        return "; ".join(parts) or "no measured quality on its card"

    def monitor(self) -> tuple[float, int | None] | None:
        """(FID, samples) of the last FID check its training made (metrics.jsonl), None without one."""
        rows = [r for r in self.rows if r.get("fid") is not None]
        return (float(rows[-1]["fid"]), rows[-1].get("fid_samples")) if rows else None

    def loss_at(self, steps: int) -> float | None:
        """Its training loss at the first epoch that reached `steps` optimiser steps (None if never)."""
        for row in self.rows:
            if row.get("steps") is not None and row.get("loss") is not None and int(row["steps"]) >= steps:
                return float(row["loss"])
        return None


ONE_DIGIT_ENTROPY = 1.5  # nats: below this a model's samples are mostly one or two classes (uniform: ln 10 = 2.30)


def shipped_references(folder: Path | None = None) -> list[Reference]:
    """Every shipped diffusion checkpoint with its training curve (<name>.metrics.jsonl) and card metrics."""
    import statistics

    from diffusion_core.io.checkpoints import list_checkpoints

    refs = []
    for wpath, meta in list_checkpoints(folder):
        try:
            process = process_from_config(meta.get("diffusion"))
        except ValueError:
            continue  # the classifier
        history = wpath.with_suffix(".metrics.jsonl")
        rows = tuple(read_jsonl(history)) if history.is_file() else ()
        speeds = [float(r["images_per_s"]) for r in rows if isinstance(r.get("images_per_s"), (int, float))]
        training = meta.get("training") or {}
        metrics = meta.get("metrics") or {}
        steps = metrics.get("optimizer_steps") or (rows[-1].get("steps") if rows else None)
        refs.append(Reference(
            name=wpath.stem, arch=(meta.get("model") or {}).get("arch", "?"), diffusion_type=process.type,
            variant=process.variant,
            images_per_s=statistics.median(speeds) if speeds else None, epochs_measured=len(speeds),
            batch_size=training.get("batch_size"), optimizer_steps=int(steps) if steps else None,
            continued=bool(training.get("init_from")), metrics=metrics, rows=rows,
            patch=int(((meta.get("model") or {}).get("params") or {}).get("patch", 1)),
            width=((meta.get("model") or {}).get("params") or {}).get("base_channels"),
        ))
    return refs


@dataclass
class TrainingEstimate:
    """How long a run will take and what to expect of it, worked out before it starts."""

    n_train: int
    epochs: int
    steps_per_epoch: int
    steps: int
    images_per_s: float | None
    speed_source: str
    seconds: float | None
    parts: dict  # seconds: starting, training, previews, FID
    reference: Reference | None
    verdict: str  # what quality to expect, in one sentence

    def time_text(self) -> str:
        if self.seconds is None:
            return f"{self.steps:,} optimiser steps ({self.epochs} × {self.steps_per_epoch}); no speed to estimate " \
                   "the time from: measure this machine"
        extra = ", ".join(f"{k} {_duration(v)}" for k, v in self.parts.items() if k != "training" and v >= 1)
        return (f"about {_duration(self.seconds)} in all: {self.steps:,} optimiser steps ({self.epochs} epochs × "
                f"{self.steps_per_epoch} batches of {self.n_train:,} images) at {self.images_per_s:,.0f} images/s: "
                f"{self.speed_source}" + (f". Plus {extra}" if extra else ""))


def _duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _preview_steps(options: Mapping[str, object]) -> int | None:
    """Network steps of one of the trainer's previews (process.preview_choice); None for options it refuses."""
    import torch

    try:
        process = process_from_config(config_of(options).diffusion)
        return process.step_count(process.preview_choice(torch.empty(0), 0))
    except (ValueError, TypeError, JobError):
        return None


def _pick_reference(options: Mapping[str, object], refs: list[Reference]) -> Reference | None:
    """The shipped model most like this run: same architecture and process, then same preset/degradation."""
    arch = str(options.get("arch") or "cnn")
    try:
        process = process_from_config(config_of(options).diffusion)
    except (ValueError, TypeError, JobError):
        return None  # the run's own checks name what is wrong with its options
    same = [r for r in refs if r.arch == arch and r.diffusion_type == process.type and r.optimizer_steps
            and (r.variant == process.variant or not process.variant_defines_output)]  # mask says nothing of blur
    if not same:
        return None
    patch, width = int(options.get("patch") or 1), options.get("base_channels")  # type: ignore[call-overload]
    return max(same, key=lambda r: (r.patch == patch, r.width == width, r.variant == process.variant,
                                    r.optimizer_steps))


def _process_type(options: Mapping[str, object]) -> str | None:
    try:
        return process_from_config(config_of(options).diffusion).type
    except (ValueError, TypeError, JobError):
        return None


def _pick_speed_reference(options: Mapping[str, object], refs: list[Reference],
                          quality: Reference | None) -> Reference | None:
    """The shipped model whose training speed this run's is estimated from: the same network (architecture and
    patch; a training step costs about the same for either process), the quality reference first, then the
    longest curve."""
    arch, patch = str(options.get("arch") or "cnn"), int(options.get("patch") or 1)  # type: ignore[call-overload]
    width = options.get("base_channels")
    speed = [r for r in refs if r.arch == arch and r.images_per_s]
    if not speed:
        return None
    return max(speed, key=lambda r: (r.patch == patch, r.width == width, r is quality, r.epochs_measured))


def _schedule_count(epochs: int, every: int) -> int:
    """How many of epochs 1..epochs are multiples of `every`, plus the last (the trainer's previews / FIDs)."""
    return epochs // every + (1 if epochs % every else 0)


def machine_load() -> tuple[float, int] | None:
    """(runnable processes averaged over the last minute, CPU cores), or None where the OS does not say."""
    try:
        return os.getloadavg()[0], os.cpu_count() or 1
    except (AttributeError, OSError):
        return None


def estimate_training(options: Mapping[str, object], n_train: int, references: list[Reference] | None = None,
                      images_per_s: float | None = None, speed_source: str | None = None,
                      load: tuple[float, int] | None = None) -> TrainingEstimate:
    """Time and expected quality of a run with the Train page's `options` on `n_train` images.

    Speed: `images_per_s` when measured (measure_images_per_s), else the median of the shipped models'
    curves for the same architecture (they trained on the machines this lab was built on), shared out
    by the `load` (machine_load) when more processes want the CPU than it has cores. Quality: the
    shipped model of the same architecture and process, its measured FID and confidence, and the share
    of its optimiser steps this run will take (and its loss when it had taken as many)."""
    refs = shipped_references() if references is None else references
    arch = str(options.get("arch") or "cnn")
    epochs, batch = int(options.get("epochs", 100)), int(options.get("batch_size", 128))
    limit = options.get("limit")
    n = min(int(limit), n_train) if limit else n_train
    per_epoch = -(-n // batch)
    steps = epochs * per_epoch
    ref = _pick_reference(options, refs)
    if images_per_s is None:
        best = _pick_speed_reference(options, refs, ref)
        if best is not None:
            images_per_s = best.images_per_s
            speed_source = (f"the shipped `{best.name}` trained at a median {images_per_s:,.0f} images/s ({arch}"
                            f"{f', patch {best.patch}' if best.patch > 1 else ''}, batch {best.batch_size}, "
                            f"{best.epochs_measured} epochs on 2 CPU cores)")
            if _process_type(options) not in (None, best.diffusion_type):
                speed_source += (f", a {best.diffusion_type} model: a {_process_type(options)} run's step also "
                                 "degrades its batch (about 10–25 % slower per image on the lab's Xeon: press "
                                 "**Measure this machine's speed** for this run's own)")
            if load is not None and load[0] > load[1]:  # a busy machine: the run gets its share of the cores
                images_per_s *= load[1] / load[0]
                speed_source += (f"; this machine is busy now ({load[0]:.1f} processes want its {load[1]} "
                                 f"core{'s' if load[1] > 1 else ''}), which leaves about {images_per_s:,.0f}")
            elif load is not None:
                speed_source += (f". That holds while the run has the cores to itself (now: load {load[0]:.1f} on "
                                 f"{load[1]} core{'s' if load[1] > 1 else ''}); each job that trains or samples "
                                 "beside it takes its share, so two runs at once take about twice as long")
    seconds, parts = None, {}
    preview_steps = _preview_steps(options)
    if images_per_s and preview_steps:
        forward_s = FORWARD_SHARE / images_per_s  # one image through the network once
        parts["starting"] = STARTUP_S
        parts["training"] = epochs * n / images_per_s
        parts["previews"] = _schedule_count(epochs, 10) * 16 * preview_steps * forward_s
        fid_every = int(options.get("fid_every") or 0)
        if fid_every:
            parts["FID"] = FID_SETUP_S + _schedule_count(epochs, fid_every) * int(
                options.get("fid_samples") or 256) * preview_steps * forward_s
        seconds = sum(parts.values())
    verdict = _verdict(steps, ref, int(options.get("fid_every") or 0) > 0)
    if ref is not None and (options.get("dataset") or "mnist") != "mnist":
        verdict += f" (The shipped models learned MNIST digits; this run learns {options['dataset']}.)"
    return TrainingEstimate(n, epochs, per_epoch, steps, images_per_s, speed_source or "", seconds, parts, ref,
                            verdict)


def _verdict(steps: int, ref: Reference | None, monitored: bool = False) -> str:
    if ref is None:
        return "No shipped model of this architecture and process to compare with."
    had = f"{'more than ' if ref.continued else ''}{ref.optimizer_steps:,}"
    base = f"The shipped `{ref.name}` after {had} optimiser steps: {ref.quality_text()}."
    share = steps / ref.optimizer_steps
    loss = None if ref.continued else ref.loss_at(steps)
    final = ref.rows[-1].get("loss") if ref.rows else None
    at = (f" Its training loss after {steps:,} steps was {loss:.3g} (at the end {final:.3g})."
          if loss is not None and final is not None and share < 1 else "")
    if share < NOT_DIGITS_BELOW:
        expect = (f"Expect noise, not digits: this run takes {steps:,} steps, {100 * share:.0f}% of that. "
                  "More epochs (or a smaller batch) give more steps.")
    elif share < 1:
        expect = f"Expect worse samples than it: this run takes {steps:,} steps, {100 * share:.0f}% of that."
    else:
        expect = f"This run takes {steps:,} steps, as many or more: expect about that quality."
    return f"{expect} {base}{at}{_as_measured(ref, monitored)}"


def _as_measured(ref: Reference, monitored: bool) -> str:
    """The reference's FID as this run will measure it: its training checks (the run's FID chart) beside its
    card's measurement on the finished model."""
    card = card_protocol(ref.metrics)
    if card is None:
        return ""
    card_text = f"its FID above was measured on the finished model ({card})"
    mon = ref.monitor()
    if not monitored:
        return f" ({card_text}.)"
    sampler = monitor_sampler(ref.diffusion_type)
    if mon is None:
        return (f" This run's FID chart measures during training with fewer samples and {sampler}, so it reads "
                f"higher than that: {card_text}.")
    fid, n = mon
    return (f" This run's FID chart measures as `{ref.name}`'s training checks did ({f'n = {n}, ' if n else ''}"
            f"{sampler}): they ended at FID {fid:.0f}, so expect about that on the chart; {card_text}.")


def config_of(options: Mapping[str, object]) -> TrainConfig:
    """The TrainConfig a run with these options trains (training.options.train_config); JobError naming
    what is wrong."""
    try:
        return train_config(options)
    except (ValueError, TypeError) as exc:
        raise JobError(str(exc)) from None


def measure_images_per_s(options: Mapping[str, object], budget_s: float = 3.0,
                         max_batch: int = 64) -> tuple[float, str]:
    """Training images per second on this machine for a run with these options: a few forward +
    backward + Adam steps of its architecture and objective on random data, on the device and at the
    precision the trainer would use. Returns (images/s, a description of what was measured)."""
    import torch

    from diffusion_core.models import build_model
    from diffusion_core.models.guidance import is_conditional
    from diffusion_core.training.objectives import objective_from_config
    from diffusion_core.training.precision import resolve_precision, with_precision
    from diffusion_core.training.trainer import resolve_device

    config = config_of(options)
    device = resolve_device(config.device)
    model = build_model(config.model).to(device)
    objective = objective_from_config(config.diffusion)
    trained = with_precision(model, config.precision, device)
    optim = torch.optim.Adam(model.parameters(), lr=1e-4)
    batch = max(1, min(config.batch_size, max_batch))
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand((batch, 1, 28, 28), generator=gen) - 0.5).to(device)
    y = torch.zeros(batch, dtype=torch.long, device=device) if is_conditional(model) else None

    def step() -> None:
        loss = objective.loss(trained, x, gen, slice(None), y)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up (allocations, kernels)
    count, t0 = 0, time.perf_counter()
    while count < 1 or (time.perf_counter() - t0 < budget_s and count < 50):
        step()
        count += 1
    rate = count * batch / (time.perf_counter() - t0)
    precision = str(resolve_precision("auto", device)).replace("torch.", "")
    return rate, f"measured on this machine just now ({device.type}, {precision}, batch {batch}, {count} steps)"


def training_set_size(dataset: str, data_root: str | None = None) -> tuple[int, str]:
    """(images in the training split a run would use now, where they come from), without downloading."""
    from diffusion_core.io.data import load_dataset

    data = load_dataset(dataset, "train", root=data_root, download=False)
    return len(data), data.source
