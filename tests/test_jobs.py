"""Background training jobs: CLI arguments, run states read from files, the job cap, and real
subprocess jobs on tiny settings (finish, die and resume, stop, fail)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal

import pytest

from diffusion_core.io.checkpoints import load_checkpoint
from diffusion_core.io.files import atomic_write_json
from diffusion_core.services import jobs, run_status
from tests.app_support import dead_pid, fake_run, stand_in_job

TINY = {"schedule": "linear", "beta1": 1e-4, "beta2": 0.02, "T": 50, "hidden": [4, 4], "kernel_size": 3,
        "batch_size": 32, "limit": 64, "no_download": True}
# enough batches per epoch that a stop lands mid-run, and more epochs than any test waits for
LONG = {**TINY, "epochs": 5000, "batch_size": 16, "limit": 128, "sample_epochs": [1]}




def test_invalid_settings_are_refused_before_launch():
    with pytest.raises(run_status.JobError, match="epochs must be an integer between 1 and"):
        jobs.start_training({"epochs": "many"})
    with pytest.raises(run_status.JobError, match="arch must be one of cnn, unet; got 'transformer'"):
        jobs.start_training({"arch": "transformer"})
    with pytest.raises(run_status.JobError, match="unknown training option"):
        jobs.start_training({"epochz": 3})
    with pytest.raises(run_status.JobError, match="do not pass out/resume"):
        jobs.start_training({"out": "/tmp/elsewhere"})
    assert run_status.list_runs() == []


def test_run_ids_are_unique_and_cannot_escape_the_runs_root():
    ids = {run_status.new_run_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(run_status.run_dir_for(i).parent == run_status.runs_root() for i in ids)
    for bad in ("../etc", "a/b", "", ".hidden", "x" * 101):
        with pytest.raises(run_status.JobError, match="not a valid run id"):
            run_status.run_dir_for(bad)
    with pytest.raises(run_status.JobError, match="no run 'run-missing'"):
        run_status.read_run("run-missing")


def test_job_cap_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(jobs.MAX_JOBS_ENV, raising=False)
    assert jobs.max_jobs() == 2
    monkeypatch.setenv(jobs.MAX_JOBS_ENV, "3")
    assert jobs.max_jobs() == 3
    for bad in ("0", "two"):
        monkeypatch.setenv(jobs.MAX_JOBS_ENV, bad)
        with pytest.raises(run_status.JobError, match="DIFFUSION_LAB_MAX_JOBS must be a whole number ≥ 1"):
            jobs.max_jobs()


def test_states_are_read_from_the_run_files():
    root = run_status.runs_root()
    live = stand_in_job()
    try:
        fake_run(root, "starting", live.pid, state=None)
        fake_run(root, "running", live.pid, state="running", epoch=2, epochs=5, losses=(0.9, 0.5))
        fake_run(root, "stopping", live.pid, state="running", epoch=1).joinpath("STOP").touch()
        gone = dead_pid()
        fake_run(root, "died", gone, state="running", epoch=2, losses=(0.9, 0.5))
        fake_run(root, "died-early", gone, state="running", epoch=0)
        fake_run(root, "finished", gone, state="finished", epoch=3, losses=(0.9, 0.5, 0.4))
        fake_run(root, "failed", gone, state=None).joinpath("log.txt").write_text("$ python …\nerror: boom here\n")
        old = fake_run(root, "stopped-early", gone, state=None)
        (old / "job.json").write_text(json.dumps({"pid": gone, "stop_requested": True}))
        states = {r.run_id: r for r in run_status.list_runs()}
        assert {k: v.state for k, v in states.items()} == {
            "starting": "starting", "running": "running", "stopping": "stopping", "died": "died",
            "died-early": "died", "finished": "finished", "failed": "failed", "stopped-early": "stopped"}
        assert states["died"].message == run_status.DIED_MESSAGE
        assert "before the first epoch" in states["died-early"].message
        assert states["failed"].message == "boom here"
        # ETA = mean epoch time (2 s) × epochs left (5 − 2)
        assert states["running"].eta_seconds == pytest.approx(6.0)
        assert states["finished"].eta_seconds is None
        assert states["running"].losses == [(1, 0.9), (2, 0.5)]
        assert sorted(r.run_id for r in run_status.active_runs()) == ["running", "starting", "stopping"]
    finally:
        live.kill()
        live.wait()
    assert run_status.read_run("running").state == "died"  # the process is gone while status says running


def test_a_process_inside_exec_counts_as_alive(monkeypatch):
    """Popen returns before exec has set the new program's arguments (/proc/<pid>/cmdline reads b"" then); a
    job read in that moment is starting, not failed. A live process running something else is not our job."""
    live = stand_in_job()
    try:
        monkeypatch.setattr(run_status, "_proc_cmdline", lambda pid: b"")
        assert run_status.pid_alive(live.pid)
        monkeypatch.setattr(run_status, "_proc_cmdline", lambda pid: b"/usr/bin/sleep\x0060\x00")
        assert not run_status.pid_alive(live.pid)
    finally:
        live.kill()
        live.wait()
    assert not run_status.pid_alive(live.pid)


def test_cap_refuses_another_job_with_a_clear_message(monkeypatch):
    monkeypatch.setenv(jobs.MAX_JOBS_ENV, "1")
    live = stand_in_job()
    try:
        fake_run(run_status.runs_root(), "busy", live.pid, state=None)
        with pytest.raises(run_status.JobError, match=r"already running \(busy\) and the limit is 1.*stop one"):
            jobs.start_training({**TINY, "epochs": 1})
        assert [r.run_id for r in run_status.list_runs()] == ["busy"]
    finally:
        live.kill()
        live.wait()


def test_resume_is_refused_for_active_or_complete_runs():
    live = stand_in_job()
    try:
        fake_run(run_status.runs_root(), "busy", live.pid, state="running", epoch=1)
        with pytest.raises(run_status.JobError, match="busy is running; it can be resumed once it has stopped"):
            jobs.resume_training("busy")
    finally:
        live.kill()
        live.wait()
    fake_run(run_status.runs_root(), "done", dead_pid(), state="finished", epoch=3, epochs=3)
    with pytest.raises(run_status.JobError, match="already finished all 3 epochs"):
        jobs.resume_training("done")
    with pytest.raises(run_status.JobError, match="is not running"):
        jobs.stop_training("done")


@pytest.mark.slow
def test_a_real_job_finishes_with_a_loadable_checkpoint():
    run = jobs.start_training({**TINY, "epochs": 2})
    assert run.state == "starting" and run.run_dir.parent == run_status.runs_root()
    run = run_status.wait_for(run.run_id, ("finished", "failed", "died"), timeout=120)
    assert run.state == "finished", run.message
    assert [e for e, _ in run.losses] == [1, 2]
    ckpt = load_checkpoint(run.checkpoint)
    assert ckpt.config["epochs"] == 2 and ckpt.config["diffusion"]["schedule"]["T"] == 50
    assert run.latest_sample is not None and run.latest_sample.name == "epoch_0002.png"
    log = (run.run_dir / "log.txt").read_text()
    assert "--quiet" in log and "epoch 2/2" in log
    assert "bundled" in run.message  # the data notice reaches the page


@pytest.mark.slow
def test_a_killed_job_is_reported_and_resumes_from_its_last_epoch():
    run = jobs.start_training(LONG)
    run = run_status.wait_for(run.run_id, lambda r: r.state == "running" and r.epoch >= 1, timeout=90.0)
    os.kill(run.pid, signal.SIGKILL)
    died = run_status.wait_for(run.run_id, lambda r: not r.active, timeout=20)
    assert died.state == "died" and died.message == run_status.DIED_MESSAGE
    kept = load_checkpoint(died.checkpoint).config["epochs"]
    assert kept >= 1

    resumed = jobs.resume_training(run.run_id)
    assert resumed.active and resumed.pid != run.pid
    run_status.wait_for(run.run_id, lambda r: r.state == "running" and r.epoch >= kept + 1, timeout=90.0)
    assert jobs.stop_training(run.run_id).state == "stopping"
    stopped = run_status.wait_for(run.run_id, lambda r: not r.active, timeout=30)
    assert stopped.state == "stopped" and "stopped by user" in stopped.message
    epochs = [e for e, _ in stopped.losses]
    assert epochs == list(range(1, stopped.epoch + 1))  # no gap and no repeat across the kill
    assert load_checkpoint(stopped.checkpoint).config["epochs"] == stopped.epoch
    assert run_status.read_run(run.run_id).epochs == 5000  # resuming did not change the plan


def test_stop_during_start_up_ends_the_job():
    run = jobs.start_training(LONG)
    stopped = jobs.stop_training(run.run_id)
    assert stopped.state == "stopped" and stopped.message == "stopped before training began"
    assert not run_status.pid_alive(run.pid)


@pytest.mark.slow
def test_cli_errors_become_the_run_message():
    """A config only the subprocess sees as wrong (a train_config.json edited by hand): its error line is the
    run's message."""
    config = dataclasses.asdict(run_status.config_of({**TINY, "epochs": 1}))
    config["diffusion"]["schedule"]["beta1"] = 0.5
    run_id = run_status.new_run_id()
    run_dir = run_status.run_dir_for(run_id)
    run_dir.mkdir(parents=True)
    atomic_write_json(run_dir / jobs.TRAIN_CONFIG, config)
    jobs._launch(run_dir, ["--config", str(run_dir / jobs.TRAIN_CONFIG), "--out", str(run_dir)], {"run_id": run_id},
                 None)
    run = run_status.wait_for(run_id, ("failed", "finished", "died"), timeout=60)
    assert run.state == "failed"
    assert run.message.startswith("beta1 must be smaller than beta2")


def test_a_cluster_that_does_not_answer_refuses_the_launch_and_leaves_runs_readable(monkeypatch):
    """#30 item 6 without Ray: the configured job server is a closed port."""
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        address = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(run_status.JobError, match="no Ray cluster is configured: set DIFFUSION_LAB_RAY_JOBS"):
        jobs.start_training({**TINY, "epochs": 1}, cluster=True)
    monkeypatch.setenv("DIFFUSION_LAB_RAY_JOBS", address)
    with pytest.raises(run_status.JobError, match=f"the Ray job server at {address} does not answer.*unset "
                                                  "DIFFUSION_LAB_RAY_JOBS to train here"):
        jobs.start_training({**TINY, "epochs": 1})
    assert run_status.list_runs() == []  # nothing launched: no run left behind
    # a run the cluster was training when it stopped answering: its state comes from its files, and says why
    root = run_status.runs_root()
    run_dir = fake_run(root, "on-cluster", dead_pid(), state="running", epoch=1, epochs=5)
    job = json.loads((run_dir / "job.json").read_text())
    (run_dir / "job.json").write_text(json.dumps({**job, "pid": None, "ray_job": "on-cluster-0",
                                                  "ray_address": address}))
    status = json.loads((run_dir / "status.json").read_text())
    (run_dir / "status.json").write_text(json.dumps({**status, "launch": "on-cluster-0"}))
    run = run_status.read_run("on-cluster")
    assert run.state == "running" and run.ray_job == "on-cluster-0"
    assert "its state is read from its files: the Ray job server" in run.phase
    # the local cap does not count it (it trains elsewhere); trained here, this one is refused only by its own cap
    monkeypatch.setenv(jobs.MAX_JOBS_ENV, "1")
    jobs._check_cap(root, None)
    with pytest.raises(run_status.JobError, match="on the Ray cluster"):
        monkeypatch.setenv("DIFFUSION_LAB_MAX_CLUSTER_JOBS", "1")
        jobs._check_cap(root, address)


def test_a_cluster_job_gets_the_servers_settings_but_no_passphrase(monkeypatch):
    """Ray shows a job's environment on its dashboard: the teacher's and the class's passphrases stay here."""
    from diffusion_core.services import ray_jobs

    monkeypatch.setenv("DIFFUSION_LAB_TEACHER_PASSPHRASE", "owl")
    monkeypatch.setenv("DIFFUSION_LAB_CLASS_PASSPHRASE", "lark")
    monkeypatch.setenv("DIFFUSION_LAB_NATIVE_BF16", "0")
    env = ray_jobs.job_env("run-x-0")
    assert env["DIFFUSION_LAB_NATIVE_BF16"] == "0" and env["DIFFUSION_LAB_LAUNCH"] == "run-x-0"
    assert env["DIFFUSION_LAB_RUNS"] == os.environ["DIFFUSION_LAB_RUNS"]
    assert "owl" not in env.values() and "lark" not in env.values()
