"""Training on a Ray cluster (#30 item 6): a Train-page run sent to the cluster as a Ray job instead of a local
subprocess — the same `python -m diffusion_core train … --quiet`, writing the same run directory, which must lie in
a folder every node sees at the same path (NFS, a shared volume), like the project itself.

    DIFFUSION_LAB_RAY_JOBS=http://head:8265   the cluster's job server (its dashboard); unset: runs train here
    DIFFUSION_LAB_RAY_JOB_CPUS=1 / _GPUS=0     what each run reserves on a node (a GPU node: GPUS=1; the trainer's
                                               `device auto` then picks CUDA)
    DIFFUSION_LAB_RAY_PYTHON=/path/python      the interpreter on the nodes (default: the server's own)
    DIFFUSION_LAB_MAX_CLUSTER_JOBS=8           runs on the cluster at once (beyond it Start says to wait)

Only Ray's documented Jobs REST API is used (submit, status, stop, logs over HTTP): the app server never imports
Ray nor becomes a Ray driver, and needs nothing from requirements-ray.txt. Liveness comes from the job's status
(PENDING / RUNNING / SUCCEEDED / FAILED / STOPPED) where a local run's comes from its pid; stop and resume work as
for a local run (the trainer sees STOP in the shared folder); logs go to the run's log.txt as locally, and Ray
keeps its own copy (`job_logs`).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import NamedTuple

from diffusion_core.io.files import PROJECT_ROOT, env_int
from diffusion_core.io.runs import LAUNCH_ENV

JOBS_ENV = "DIFFUSION_LAB_RAY_JOBS"
JOB_CPUS_ENV, JOB_GPUS_ENV = "DIFFUSION_LAB_RAY_JOB_CPUS", "DIFFUSION_LAB_RAY_JOB_GPUS"
PYTHON_ENV = "DIFFUSION_LAB_RAY_PYTHON"
MAX_CLUSTER_JOBS_ENV, DEFAULT_MAX_CLUSTER_JOBS = "DIFFUSION_LAB_MAX_CLUSTER_JOBS", 8
ACTIVE = ("PENDING", "RUNNING")
HTTP_TIMEOUT_S = 3.0
FRESH_S = 1.0  # a running job's status is asked again after this long (a page lists every run each second)
UNREACHABLE_S = 5.0  # a cluster that did not answer is not asked again for this long (no page waits on it)
_NOT_FORWARDED = (JOBS_ENV, "DIFFUSION_LAB_RAY", LAUNCH_ENV)
_SECRET_WORDS = ("PASSPHRASE", "SECRET", "TOKEN", "PASSWORD", "KEY")


class ClusterError(ValueError):
    """The cluster refused a request or cannot be reached; the message says which and what to do."""


def jobs_address() -> str | None:
    """The configured job server (DIFFUSION_LAB_RAY_JOBS, without a trailing slash), or None."""
    value = os.environ.get(JOBS_ENV, "").strip().rstrip("/")
    if value and "://" not in value:
        value = f"http://{value}"
    return value or None


def max_cluster_jobs() -> int:
    return env_int(MAX_CLUSTER_JOBS_ENV, DEFAULT_MAX_CLUSTER_JOBS)


def _resources() -> tuple[float, float]:
    values = []
    for name, default in ((JOB_CPUS_ENV, 1.0), (JOB_GPUS_ENV, 0.0)):
        raw = os.environ.get(name, "").strip()
        try:
            value = float(raw) if raw else default
        except ValueError:
            value = -1.0
        if value < 0:
            raise ClusterError(f"{name} must be a number ≥ 0; got {raw!r}")
        values.append(value)
    return values[0], values[1]


def _request(address: str, method: str, path: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{address}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as resp:
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace").strip()[:300]
        raise ClusterError(f"the Ray job server at {address} refused {method} {path} ({exc.code}): "
                           f"{detail or exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ClusterError(f"the Ray job server at {address} does not answer ({reason}); start the cluster "
                           f"(`ray start --head --dashboard-host 0.0.0.0`) or unset {JOBS_ENV} to train here"
                           ) from None


def entrypoint(cli_args: list[str], log: Path) -> str:
    """The shell command a run's job executes: the CLI from the project folder, its output appended to log.txt
    in the run directory (the page reads it there, as for a local run)."""
    python = os.environ.get(PYTHON_ENV, "").strip() or sys.executable
    command = [python, "-m", "diffusion_core", "train", *cli_args, "--quiet"]
    return (f"cd {shlex.quote(str(PROJECT_ROOT))} && exec {shlex.join(command)} "
            f">> {shlex.quote(str(log))} 2>&1")


def job_env(submission_id: str) -> dict[str, str]:
    """The environment a run's job gets: the server's DIFFUSION_LAB_* settings (so it trains as it would here),
    never a passphrase or secret (Ray shows a job's environment on its dashboard), and the launch's id."""
    env = {k: v for k, v in os.environ.items() if k.startswith("DIFFUSION_LAB_") and k not in _NOT_FORWARDED
           and not any(word in k for word in _SECRET_WORDS)}
    return env | {"PYTHONPATH": str(PROJECT_ROOT), "PYTHONUNBUFFERED": "1", LAUNCH_ENV: submission_id}


def submit(address: str, submission_id: str, cli_args: list[str], log: Path) -> str:
    """Send one training launch to the cluster; returns its submission id. The server's DIFFUSION_LAB_*
    settings travel with it (the run trains as it would here)."""
    cpus, gpus = _resources()
    body = {"entrypoint": entrypoint(cli_args, log), "submission_id": submission_id,
            "runtime_env": {"env_vars": job_env(submission_id)}, "entrypoint_num_cpus": cpus,
            "entrypoint_num_gpus": gpus,
            "metadata": {"diffusion_lab": "train"}}
    answer = _request(address, "POST", "/api/jobs/", body)
    _forget(address, submission_id)
    return str(answer.get("submission_id") or answer.get("job_id") or submission_id)


class JobState(NamedTuple):
    """A Ray job's status as its server last said: `status` PENDING … STOPPED, or "" when it did not answer."""

    status: str
    message: str

    @property
    def reachable(self) -> bool:
        return bool(self.status)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


_lock = threading.Lock()
_seen: dict[tuple[str, str], tuple[float, JobState]] = {}  # (address, id) → (when asked, what it said)
_down: dict[str, tuple[float, str]] = {}  # address → (when it failed, why)


def _forget(address: str, submission_id: str) -> None:
    with _lock:
        _seen.pop((address, submission_id), None)
        _down.pop(address, None)


def job_state(address: str, submission_id: str) -> JobState:
    """The job's status, asked at most once a second per job (a finished job's never again); a cluster that did
    not answer gives JobState("", why) for UNREACHABLE_S before it is asked again."""
    key, now = (address, submission_id), time.monotonic()
    with _lock:
        if key in _seen and (not _seen[key][1].active or now - _seen[key][0] < FRESH_S):
            return _seen[key][1]
        if address in _down and now - _down[address][0] < UNREACHABLE_S:
            return JobState("", _down[address][1])
    try:
        answer = _request(address, "GET", f"/api/jobs/{submission_id}")
        state = JobState(str(answer.get("status", "")).upper() or "FAILED", str(answer.get("message") or ""))
    except ClusterError as exc:
        if "(404)" in str(exc):  # the cluster was restarted: it has forgotten the job, which cannot be running
            state = JobState("FAILED", "the Ray cluster no longer knows this job (was it restarted?)")
        else:
            with _lock:
                _down[address] = (time.monotonic(), str(exc))
            return JobState("", str(exc))
    with _lock:
        _seen[key] = (time.monotonic(), state)
    return state


def stop(address: str, submission_id: str) -> None:
    """Ask Ray to end the job (SIGTERM, which the trainer turns into a clean stop; SIGKILL after Ray's grace)."""
    _request(address, "POST", f"/api/jobs/{submission_id}/stop")
    _forget(address, submission_id)


def job_logs(address: str, submission_id: str) -> str:
    """What Ray captured of the job's own output (the shell's errors, when it failed before the CLI ran)."""
    return str(_request(address, "GET", f"/api/jobs/{submission_id}/logs").get("logs", ""))
