"""Concurrent users: two training jobs at once in separate run directories, the job cap (also under a
race between two launches), per-session page state, sampling from one shared cached model in several
threads, and the cap on samples per request. Going over a cap is a message, never a wait.

(Two real browser sessions against one server are exercised by the lead's browser tests.)"""

from __future__ import annotations

import fcntl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import pytest
import streamlit as st
import torch

from diffusion_core.io.checkpoints import load_checkpoint
from diffusion_core.io.files import atomic_write_json
from diffusion_core.samplers import MAX_SAMPLES
from diffusion_core.sampling import SamplerChoice, sample_checkpoint
from diffusion_core.services import jobs, run_status
from tests.app_support import app, errors, no_exceptions, stand_in_job, write_checkpoint

TINY = {"schedule": "linear", "beta1": 1e-4, "beta2": 0.02, "hidden": [4, 4], "kernel_size": 3,
        "batch_size": 16, "limit": 64, "no_download": True, "epochs": 5000, "sample_epochs": [1]}


@pytest.fixture(autouse=True)
def _fresh(tmp_path, monkeypatch):
    st.cache_resource.clear()
    (tmp_path / "shipped").mkdir()
    monkeypatch.setenv("DIFFUSION_LAB_CHECKPOINTS", str(tmp_path / "shipped"))
    monkeypatch.setenv(jobs.MAX_JOBS_ENV, "2")


@pytest.fixture
def stand_ins(monkeypatch):
    """Jobs launched as stand-in processes (alive, named like a training job, never training)."""
    procs = []

    def spawn(run_dir, cli_args, job, address=None):
        proc = stand_in_job()
        procs.append(proc)
        atomic_write_json(run_dir / "job.json", {**job, "pid": proc.pid, "command": cli_args,
                                                 "started": time.time(), "stop_requested": False})
        return proc.pid

    monkeypatch.setattr(jobs, "_launch", spawn)
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait()




@pytest.mark.slow
def test_two_real_jobs_train_at_once_without_cross_talk():
    a = jobs.start_training({**TINY, "T": 50, "seed": 1})
    b = jobs.start_training({**TINY, "T": 40, "seed": 2})
    try:
        t0 = time.monotonic()
        with pytest.raises(run_status.JobError, match=r"2 training job\(s\) are already running .* the limit is 2"):
            jobs.start_training({**TINY, "T": 30})
        assert time.monotonic() - t0 < 5  # refused at once, not queued
        assert a.run_dir != b.run_dir and a.pid != b.pid and len(run_status.list_runs()) == 2
        a = run_status.wait_for(a.run_id, lambda r: r.state == "running" and r.epoch >= 1, timeout=120.0)
        b = run_status.wait_for(b.run_id, lambda r: r.state == "running" and r.epoch >= 1, timeout=120.0)
    finally:
        for run in (a, b):
            if run_status.read_run(run.run_id).active:
                jobs.stop_training(run.run_id)
    for run, T, seed in ((a, 50, 1), (b, 40, 2)):
        done = run_status.wait_for(run.run_id, lambda r: not r.active, timeout=60)
        assert done.state == "stopped"
        assert done.config["diffusion"]["schedule"]["T"] == T and done.config["seed"] == seed
        ckpt = load_checkpoint(done.checkpoint)
        assert ckpt.config["diffusion"]["schedule"]["T"] == T and ckpt.config["training"]["seed"] == seed
        assert [e for e, _ in done.losses] == list(range(1, done.epoch + 1))
        assert str(done.run_dir) in (done.run_dir / "log.txt").read_text()  # each wrote its own log


@pytest.fixture
def launch_window(monkeypatch):
    """Holds a launch that has passed the cap check (the window before its job exists) until the other launch
    is inside that window too (launches not serialised) or waiting for the launch lock (serialised): the two
    launches provably overlap, with no sleep."""
    state = threading.Condition()
    inside, waiting = set(), set()
    real_check, real_flock = jobs._check_cap, fcntl.flock

    def flock(fd, op):
        if op == fcntl.LOCK_EX:
            try:
                return real_flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                with state:
                    waiting.add(threading.get_ident())
                    state.notify_all()
        return real_flock(fd, op)

    def check_cap(root, address):
        real_check(root, address)
        me = threading.get_ident()
        with state:
            inside.add(me)
            state.notify_all()
            assert state.wait_for(lambda: (inside | waiting) - {me}, timeout=60), "the other launch never came"

    monkeypatch.setattr(jobs, "fcntl", SimpleNamespace(flock=flock, LOCK_EX=fcntl.LOCK_EX, LOCK_UN=fcntl.LOCK_UN))
    monkeypatch.setattr(jobs, "_check_cap", check_cap)
    return inside


def test_two_launches_racing_for_the_last_slot_start_exactly_one(stand_ins, launch_window, monkeypatch):
    monkeypatch.setenv(jobs.MAX_JOBS_ENV, "1")

    def launch(seed: int):
        try:
            return jobs.start_training({**TINY, "T": 50, "seed": seed})
        except run_status.JobError as exc:
            return exc

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(launch, (1, 2)))
    started = [o for o in outcomes if isinstance(o, run_status.RunInfo)]
    refused = [o for o in outcomes if isinstance(o, run_status.JobError)]
    assert len(started) == 1 and len(refused) == 1, outcomes
    assert len(launch_window) == 1  # the other launch waited for the lock, then failed the cap check
    assert "the limit is 1" in str(refused[0]) and started[0].run_id in str(refused[0])
    assert [r.run_id for r in run_status.list_runs()] == [started[0].run_id]  # the refused one left no run directory


def test_two_train_page_sessions_get_their_own_runs_and_the_cap_message(stand_ins):
    one, two = (app("pages/1_Train.py").run() for _ in range(2))
    one.button(key="train_start").click().run()
    two.button(key="train_start").click().run()
    no_exceptions(one)
    no_exceptions(two)
    run_one, run_two = one.query_params["run"], two.query_params["run"]
    assert run_one != run_two
    assert {r.run_id for r in run_status.active_runs()} == {run_one, run_two}
    root = run_status.runs_root()
    assert run_status.read_run(run_one).run_dir.parent == run_status.read_run(run_two).run_dir.parent == root

    one.button(key="train_start").click().run()  # a third job: over the cap of 2
    no_exceptions(one)
    assert len(errors(one)) == 1 and "the limit is 2" in errors(one)[0]
    assert one.query_params["run"] == run_one  # still watching its own run
    two.run()
    assert errors(two) == [] and two.query_params["run"] == run_two  # the other session saw nothing of it
    assert len(run_status.list_runs()) == 2


def test_two_home_sessions_keep_their_own_grids(tmp_path):
    write_checkpoint(tmp_path / "shipped", "tiny", T=20)
    one, two = app().run(), app().run()
    one.number_input(key="home_seed").set_value(1)
    one.button(key="home_generate").click().run()
    assert "home_grid" not in two.session_state
    grid_one = one.session_state["home_grid"]["images"].copy()
    two.number_input(key="home_seed").set_value(2)
    two.button(key="home_generate").click().run()
    one.run()
    no_exceptions(one)
    no_exceptions(two)
    assert one.session_state["home_grid"]["seed"] == 1 and two.session_state["home_grid"]["seed"] == 2
    np.testing.assert_array_equal(one.session_state["home_grid"]["images"], grid_one)  # untouched by session two
    assert not np.allclose(two.session_state["home_grid"]["images"], grid_one)


def test_threads_sampling_one_shared_model_get_their_own_seeds_results(tmp_path):
    ckpt = load_checkpoint(write_checkpoint(tmp_path, "tiny", T=20))  # one object, as st.cache_resource shares it
    seeds = [0, 1, 2, 3, 4, 5]
    alone = {s: sample_checkpoint(ckpt, SamplerChoice("ddim", 10, s, knobs={"eta": 1.0}), 2).samples for s in seeds}
    with ThreadPoolExecutor(3) as pool:
        together = dict(zip(seeds, pool.map(
            lambda s: sample_checkpoint(ckpt, SamplerChoice("ddim", 10, s, knobs={"eta": 1.0}), 2).samples, seeds),
            strict=True))
    for s in seeds:
        torch.testing.assert_close(together[s], alone[s], rtol=0, atol=1e-6)  # the global RNG is never used


def test_a_request_for_too_many_samples_is_refused_at_once(tmp_path):
    ckpt = load_checkpoint(write_checkpoint(tmp_path, "tiny", T=20))
    for n in (MAX_SAMPLES + 1, 10**9):
        t0 = time.monotonic()
        with pytest.raises(ValueError, match=f"number of samples must be an integer between 1 and {MAX_SAMPLES}"):
            sample_checkpoint(ckpt, SamplerChoice("ancestral"), n)
        assert time.monotonic() - t0 < 2  # refused before any noise is drawn
