"""#30 item 6: a Train-page run sent to a Ray cluster as a job (services/ray_jobs.py) — a Ray head with its job
server started here on 127.0.0.1; tiny runs that finish, stop and resume, die under the cluster's eyes, and stop
while still waiting to start; the page's choice between this server and the cluster.

Ray is optional (requirements-ray.txt): without it these tests skip; .ci/run installs it and runs them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="the Ray path needs requirements-ray.txt (CI installs it)")

from diffusion_core.io.checkpoints import load_checkpoint  # noqa: E402
from diffusion_core.services import jobs, ray_jobs, run_status  # noqa: E402
from tests.app_support import app  # noqa: E402
from tests.test_jobs import LONG, TINY  # noqa: E402
from tests.test_ray_serve import free_port  # noqa: E402

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parent.parent
RAY = str(Path(sys.executable).parent / "ray")


@pytest.fixture(scope="module")
def job_server(tmp_path_factory):
    """A Ray head on this machine with its dashboard (the job server) on a free port; stopped at the end."""
    port, dashboard = free_port(), free_port()
    env = os.environ | {"PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    temp = tmp_path_factory.mktemp("ray")
    subprocess.run([RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=4",
                    "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
                    "--disable-usage-stats", f"--temp-dir={temp}"],
                   env=env, check=True, capture_output=True, timeout=180)
    address = f"http://127.0.0.1:{dashboard}"
    deadline = time.monotonic() + 120
    while True:  # the dashboard's job module answers a little after `ray start` returns
        try:
            with urllib.request.urlopen(f"{address}/api/version", timeout=2) as resp:
                if json.loads(resp.read()).get("ray_version"):
                    break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the Ray job server never answered"
        time.sleep(0.5)
    try:
        yield address
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)


@pytest.fixture
def on_cluster(job_server, monkeypatch):
    monkeypatch.setenv(ray_jobs.JOBS_ENV, job_server)
    return job_server


def ray_status(address: str, job: str, until: tuple[str, ...] = ("SUCCEEDED", "FAILED", "STOPPED")) -> str:
    """The job's status once it is one of `until` (a trainer that wrote "finished" may still be exiting)."""
    deadline = time.monotonic() + 60
    while True:
        with urllib.request.urlopen(f"{address}/api/jobs/{job}", timeout=5) as resp:
            status = json.loads(resp.read())["status"]
        if status in until or time.monotonic() > deadline:
            return status
        time.sleep(0.3)


def test_a_run_on_the_cluster_finishes_with_a_loadable_checkpoint(on_cluster):
    run = jobs.start_training({**TINY, "epochs": 2})  # the cluster is configured: it goes there
    job = run_status.read_job(run.run_dir)
    assert run.ray_job == job["ray_job"] and job["pid"] is None and job["ray_address"] == on_cluster
    assert run.state == "starting"
    run = run_status.wait_for(run.run_id, ("finished", "failed", "died"), timeout=180)
    assert run.state == "finished", run.message
    assert ray_status(on_cluster, run.ray_job) == "SUCCEEDED"
    assert run.status["launch"] == run.ray_job  # the status file was written by this launch
    assert [e for e, _ in run.losses] == [1, 2]
    assert load_checkpoint(run.checkpoint).config["epochs"] == 2
    assert "epoch 2/2" in (run.run_dir / "log.txt").read_text()  # the page's log, in the shared runs folder


def test_a_cluster_run_stops_resumes_and_dies_as_a_local_one_does(on_cluster, monkeypatch):
    run = jobs.start_training(LONG)
    first = run.ray_job
    monkeypatch.setenv(ray_jobs.MAX_CLUSTER_JOBS_ENV, "1")
    with pytest.raises(run_status.JobError, match="already running on the Ray cluster.*DIFFUSION_LAB_MAX_CLUSTER"):
        jobs.start_training(TINY)
    running = run_status.wait_for(run.run_id, lambda r: r.state == "running" and r.epoch >= 1, timeout=180)
    assert jobs.stop_training(run.run_id).state == "stopping"  # STOP in the shared folder, as for a local run
    stopped = run_status.wait_for(run.run_id, lambda r: not r.active, timeout=60)
    assert stopped.state == "stopped" and "stopped by user" in stopped.message
    kept = stopped.epoch
    assert kept >= running.epoch and ray_status(on_cluster, first) == "SUCCEEDED"

    resumed = jobs.resume_training(run.run_id)
    assert resumed.active and resumed.ray_job not in (None, first)
    going = run_status.wait_for(run.run_id, lambda r: r.state == "running" and r.epoch >= kept + 1, timeout=180)
    os.kill(going.status["pid"], signal.SIGKILL)  # the trainer dies on its node; only Ray's status says so
    died = run_status.wait_for(run.run_id, lambda r: not r.active, timeout=60)
    assert died.state == "died" and died.message.startswith(run_status.DIED_MESSAGE), died.message
    assert "(Ray: " in died.message
    epochs = [e for e, _ in died.losses]
    assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) >= kept + 1  # no gap, no repeat


def test_a_cluster_run_stopped_while_starting_never_trains(on_cluster):
    run = jobs.start_training(LONG)
    stopped = jobs.stop_training(run.run_id)  # Ray ends the job before the trainer begins
    assert stopped.state in ("starting", "stopped")
    stopped = run_status.wait_for(run.run_id, lambda r: not r.active, timeout=60)
    assert stopped.state == "stopped" and stopped.message == "stopped before training began"
    assert ray_status(on_cluster, run.ray_job) in ("STOPPED", "FAILED", "SUCCEEDED")
    assert not stopped.losses


def test_the_train_page_offers_the_cluster_and_shows_the_job(on_cluster):
    at = app("pages/1_Train.py").run(timeout=120)
    where = at.radio(key="train_where")
    assert where.value == "cluster" and where.options == [f"the Ray cluster ({on_cluster})", "this server"]
    assert "training jobs running on the cluster now" in " ".join(c.value for c in at.caption)
    at.button(key="train_start").click().run(timeout=120)
    assert not at.exception and not at.error, [e.value for e in at.error]
    run_id = at.query_params["run"]
    run = run_status.read_run(run_id)
    assert run.ray_job is not None
    assert any(f"On the Ray cluster as job `{run.ray_job}`" in c.value for c in at.caption)
    jobs.stop_training(run_id)
    run_status.wait_for(run_id, lambda r: not r.active, timeout=60)
