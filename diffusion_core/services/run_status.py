"""Reading training runs: a run's state from its files alone (never from memory), so any process can list runs
and watch one — the states, their phases while starting, a dead process told apart from a running one.

runs root (default ./runs, or $DIFFUSION_LAB_RUNS)/
  <run id>/          the trainer's run directory (see training/trainer.py) plus
    job.json         what lab.jobs launched: pid, command, start time, stop requests, owner
    log.txt          the subprocess's stdout and stderr

  starting   the process is alive but has not begun training yet; `RunInfo.phase` says which part
             (importing PyTorch until the trainer writes config.json, then loading the data and
             building the model until it writes status.json)
  running    training; `stopping` once STOP has been requested
  finished / stopped / failed   as written by the trainer
  died       the process ended while status.json still said running (killed, out of memory, …)
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from diffusion_core.io.runs import read_json_or_empty, read_run_files
from diffusion_core.process import process_from_config
from diffusion_core.services import ray_jobs
from diffusion_core.training.config import TrainConfig
from diffusion_core.training.options import train_config

RUNS_ENV = "DIFFUSION_LAB_RUNS"
ACTIVE_STATES = ("starting", "running", "stopping")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
DIED_MESSAGE = "process ended unexpectedly; the last complete epoch is kept; Resume to continue"
DIED_EARLY_MESSAGE = "process ended unexpectedly before the first epoch completed; Resume to start again"


class JobError(ValueError):
    """A job request that cannot be carried out; the message says why and what to do."""


def runs_root() -> Path:
    """Where run directories live: $DIFFUSION_LAB_RUNS, else ./runs."""
    return Path(os.environ.get(RUNS_ENV, "runs")).resolve()


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
    # A recycled pid is not our job. An empty command line is a process inside exec: Popen returns (its
    # close-on-exec pipe shuts) before the kernel has set the new program's arguments, so a job read at once
    # after its launch shows b"" for a moment.
    cmdline = _proc_cmdline(pid)
    return not cmdline or b"diffusion_core" in cmdline


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
    ray_job: str | None = None  # the Ray job of its latest launch, when it was sent to a cluster (ray_jobs)

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


def _phase(state: str, run_dir: Path, job: dict, epoch: int, epochs: int, status: dict
           ) -> tuple[str, float | None]:
    """What an active run is doing, read from its files: the trainer writes config.json once PyTorch is
    imported and status.json once the data is loaded and the model built (a reflow run's while its teacher draws
    the pairs, too); then each epoch adds a line."""
    started = job.get("started")
    if state == "starting" and status.get("state") == "drawing":
        return (f"the teacher is drawing its (noise, sample) pairs: {status.get('drawn', 0):,} of "
                f"{status.get('pairs', 0):,}", _mtime(run_dir / "status.json"))
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


def read_job(run_dir: Path) -> dict:
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
    job = read_job(run_dir)
    files = read_run_files(run_dir)
    status, config = files.status, files.config
    pid = job.get("pid", status.get("pid"))
    cluster = _cluster_state(job)
    if cluster is None:
        alive = pid_alive(pid)
        this_process = status.get("pid") == pid  # status.json written by the current process (not an earlier one)
    else:  # a Ray job: its status says whether it lives (a cluster that does not answer: as its files say)
        alive = cluster.active or not cluster.reachable
        this_process = status.get("launch") == job["ray_job"]
    trainer_state = status.get("state") if this_process else None
    message = status.get("message", "") if this_process else ""
    if alive and trainer_state == "running":
        state = "stopping" if (run_dir / "STOP").exists() else "running"
    elif alive and trainer_state in (None, "drawing"):  # drawing: a reflow run's teacher draws its pairs first
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
        if cluster is not None and cluster.message:
            message += f" (Ray: {cluster.message})"
    else:
        state, message = "failed", _log_error(run_dir)
        if cluster is not None and not (run_dir / "log.txt").is_file():  # the job failed before the CLI ran
            message = f"the Ray job {job['ray_job']} ended before training began: {cluster.message or 'no message'}"
    options = job.get("options") if isinstance(job.get("options"), dict) else {}
    epoch = int(status.get("epoch", 0)) if status else 0
    epochs = int(status.get("epochs") or config.get("epochs") or options.get("epochs") or 0)
    if state == "starting" and job.get("epochs_target"):  # a resume: the target it was launched with
        epochs = int(job["epochs_target"])
    phase, since = _phase(state, run_dir, job, epoch, epochs, status if this_process else {})
    if cluster is not None and state == "starting" and cluster.status == "PENDING":
        phase = "waiting for the Ray cluster to place it (Ray: PENDING)"
    if cluster is not None and not cluster.reachable:
        phase = f"{phase}; its state is read from its files: {cluster.message}".lstrip("; ")
    return RunInfo(
        run_id=run_id, run_dir=run_dir, state=state, message=message, epoch=epoch, epochs=epochs,
        pid=pid, config=config, status=status, metrics=files.metrics,
        started=job.get("started"), options=options, phase=phase, phase_since=since,
        owner=job.get("owner") if isinstance(job.get("owner"), str) else None,
        name=job.get("name") if isinstance(job.get("name"), str) else None,
        ray_job=job["ray_job"] if cluster is not None else None,
    )


def _cluster_state(job: dict) -> ray_jobs.JobState | None:
    """The Ray job's state for a run launched on a cluster (job.json names it), else None."""
    if not (isinstance(job.get("ray_job"), str) and isinstance(job.get("ray_address"), str)):
        return None
    return ray_jobs.job_state(job["ray_address"], job["ray_job"])


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


DELETED = ".deleted"  # under the runs root: deleted runs, kept until someone empties it


def wait_for(run_id: str, until: tuple[str, ...] | Callable[[RunInfo], bool], timeout: float = 60.0,
             root: Path | None = None) -> RunInfo:
    """Poll until the run reaches one of the states `until` (or `until(run)` holds), for scripts and tests;
    JobError on timeout, saying where the run is."""
    done = until if callable(until) else (lambda run: run.state in until)
    deadline = time.monotonic() + timeout
    while True:
        run = read_run(run_id, root)
        if done(run):
            return run
        if time.monotonic() > deadline:
            raise JobError(f"run {run_id} is still {run.state} at epoch {run.epoch} after {timeout:g} s "
                           f"({run.message or 'no message'})")
        time.sleep(0.2)


def config_of(options: Mapping[str, object]) -> TrainConfig:
    """The TrainConfig a run with these options trains (training.options.train_config); JobError naming
    what is wrong."""
    try:
        return train_config(options)
    except (ValueError, TypeError) as exc:
        raise JobError(str(exc)) from None
