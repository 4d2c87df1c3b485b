"""Launching training jobs: `python -m diffusion_core train … --quiet` as a subprocess writing a run directory
under the runs root (lab.run_status reads it), so a page can start a run, stop it, resume it and delete it — each
refused to anyone but its owner or the teacher (lab.ownership) — and never more at once than the machine allows.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from diffusion_core.io.files import PROJECT_ROOT, atomic_write_json, env_int
from diffusion_core.services import ray_jobs
from diffusion_core.services.ownership import Actor, may_manage, run_name
from diffusion_core.services.run_status import (
    DELETED,
    JobError,
    RunInfo,
    active_runs,
    config_of,
    new_run_id,
    pid_alive,
    read_job,
    read_run,
    run_dir_for,
    runs_root,
)

TRAIN_CONFIG = "train_config.json"  # the TrainConfig a job hands its subprocess
MAX_JOBS_ENV = "DIFFUSION_LAB_MAX_JOBS"
DEFAULT_MAX_JOBS = 2


def max_jobs() -> int:
    """The cap on concurrently active jobs: $DIFFUSION_LAB_MAX_JOBS (≥ 1), else 2."""
    try:
        return env_int(MAX_JOBS_ENV, DEFAULT_MAX_JOBS)
    except ValueError as exc:
        raise JobError(str(exc)) from None


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


def _check_cap(root: Path, address: str | None) -> None:
    """Refuse a launch beyond the cap of its place: this machine's (DIFFUSION_LAB_MAX_JOBS) or the cluster's
    (DIFFUSION_LAB_MAX_CLUSTER_JOBS); runs on the other place do not count."""
    try:
        cap, env = ((max_jobs(), MAX_JOBS_ENV) if address is None
                    else (ray_jobs.max_cluster_jobs(), ray_jobs.MAX_CLUSTER_JOBS_ENV))
    except ValueError as exc:
        raise JobError(str(exc)) from None
    active = [r for r in active_runs(root) if (r.ray_job is None) == (address is None)]
    if len(active) >= cap:
        ids = ", ".join(r.run_id for r in active)
        where = "" if address is None else " on the Ray cluster"
        raise JobError(
            f"{len(active)} training job(s) are already running{where} ({ids}) and the limit is {cap}. "
            f"Wait for one to finish or stop one, then start again (the limit is set by {env})."
        )


def _where(cluster: bool | None) -> str | None:
    """The job server a launch goes to (None: a subprocess here). `cluster` None: the cluster when configured."""
    address = ray_jobs.jobs_address()
    if cluster and address is None:
        raise JobError(f"no Ray cluster is configured: set {ray_jobs.JOBS_ENV} (its job server, "
                       "e.g. http://head:8265) to train there")
    return address if cluster is not False else None


def _launch(run_dir: Path, cli_args: list[str], job: dict, address: str | None) -> None:
    """Start the trainer: a subprocess here, or (address given) a Ray job on the cluster; job.json says which."""
    if address is not None:
        launch = f"{job['run_id']}-{int(job.get('resumes', 0))}"
        try:
            ray_job = ray_jobs.submit(address, launch, cli_args, run_dir / "log.txt")
        except ray_jobs.ClusterError as exc:
            raise JobError(str(exc)) from None
        atomic_write_json(run_dir / "job.json", {**job, "pid": None, "ray_job": ray_job, "ray_address": address,
                                                 "started": time.time(), "stop_requested": False})
        return
    command = [sys.executable, "-m", "diffusion_core", "train", *cli_args, "--quiet"]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    env.pop(ray_jobs.LAUNCH_ENV, None)
    with open(run_dir / "log.txt", "ab") as log:
        log.write(f"$ {' '.join(command)}\n".encode())
        log.flush()
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=PROJECT_ROOT, env=env, start_new_session=True)  # outlives a server restart
    job = {k: v for k, v in job.items() if k not in ("ray_job", "ray_address")}
    atomic_write_json(run_dir / "job.json", {**job, "pid": proc.pid, "command": command, "started": time.time(),
                                             "stop_requested": False})


def _check_may_manage(run: RunInfo, actor: Actor | None, verb: str) -> None:
    if not may_manage(run.owner, actor):
        raise JobError(f"run {run.title} was started in another browser: only that browser or the teacher can "
                       f"{verb} it (you can still watch it and sample from it)")


def start_training(options: Mapping[str, object], root: Path | None = None, owner: str | None = None,
                   name: str | None = None, cluster: bool | None = None) -> RunInfo:
    """Launch a new training job with `options` (named as the CLI's `train` flags, see training.options);
    returns its RunInfo. The subprocess reads the resulting TrainConfig from <run>/train_config.json. `owner`
    (ownership.owner_of of the starting browser's token) and `name` go to job.json. `cluster`: True sends it to
    the configured Ray cluster (ray_jobs), False trains here, None: the cluster when one is configured.

    Raises JobError when the options or the name are invalid or the concurrent-job cap is reached."""
    root = root or runs_root()
    if "out" in options or "resume" in options:
        raise JobError("the run directory is chosen by the jobs module; do not pass out/resume")
    config = config_of(options)
    try:
        name = run_name(name)
    except ValueError as exc:
        raise JobError(str(exc)) from None
    address = _where(cluster)
    with _launch_lock(root):
        _check_cap(root, address)
        while True:  # mkdir is the uniqueness check
            run_id = new_run_id()
            run_dir = run_dir_for(run_id, root)
            try:
                run_dir.mkdir(parents=True)
                break
            except FileExistsError:
                continue
        atomic_write_json(run_dir / TRAIN_CONFIG, dataclasses.asdict(config))
        job = {"run_id": run_id, "options": dict(options), "owner": owner, "name": name}
        try:
            _launch(run_dir, ["--config", str(run_dir / TRAIN_CONFIG), "--out", str(run_dir)], job, address)
        except JobError:
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing was launched: no run to list
            raise
    return read_run(run_id, root)


def resume_training(run_id: str, epochs: int | None = None, root: Path | None = None,
                    actor: Actor | None = None, cluster: bool | None = None) -> RunInfo:
    """Continue a stopped, died or finished run from its last complete epoch (`epochs` extends it), here or on
    the cluster as for start_training; JobError when `actor` may not manage it (ownership.may_manage)."""
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
    address = _where(cluster)
    with _launch_lock(root):
        _check_cap(root, address)
        job = read_job(run.run_dir)
        _launch(run.run_dir, cli_args, {**job, "run_id": run_id, "resumes": int(job.get("resumes", 0)) + 1,
                                        "epochs_target": max(target, int(run.config.get("epochs", 0) or 0))},
                address)
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
    job = read_job(run.run_dir)
    atomic_write_json(run.run_dir / "job.json", {**job, "stop_requested": True})
    if run.state == "starting" and run.ray_job is not None:  # Ray ends it (SIGTERM, then SIGKILL)
        try:
            ray_jobs.stop(job["ray_address"], run.ray_job)
        except ray_jobs.ClusterError as exc:
            raise JobError(str(exc)) from None
    elif run.state == "starting":
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
