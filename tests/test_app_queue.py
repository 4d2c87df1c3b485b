"""Home's Generate and Reverse diffusion go through the server's one work queue: a waiting page shows its place
in line, a full line is a clear message, and the default model is warmed once per process in the background
without holding up the first page. The queue is a fresh one per test (workers held on events, no sleeps)."""

from __future__ import annotations

import threading

import pytest
import streamlit as st

from diffusion_core.services import batching
from diffusion_core.services.work_queue import WorkQueue
from diffusion_core.views import merged_runs
from pages.lab_ui import queue_ui
from tests.app_support import app, errors, no_exceptions, ship_tiny_model

WAIT = 60


@pytest.fixture
def line(tmp_path, monkeypatch):
    """A one-worker queue standing in for the server's, a shipped tiny model, fresh Streamlit caches."""
    ship_tiny_model(tmp_path, monkeypatch)
    monkeypatch.delenv("DIFFUSION_LAB_DEFAULT_MODEL", raising=False)
    q = WorkQueue(workers=1, max_waiting=3)
    monkeypatch.setattr(queue_ui, "default_queue", lambda: q)
    yield q
    q.shutdown(wait=False)
    st.cache_resource.clear()


def hold(q: WorkQueue) -> threading.Event:
    """Occupy the worker until the returned event is set."""
    started, release = threading.Event(), threading.Event()

    def job():
        started.set()
        release.wait(WAIT)

    q.submit(job)
    assert started.wait(WAIT)
    return release


def test_the_first_page_renders_while_the_warm_up_waits_and_warms_once(line):
    release = hold(line)  # the CPU is busy: the warm-up has to wait its turn
    at = app().run()
    no_exceptions(at)
    assert at.button(key="home_generate")  # the page did not wait for the warm-up
    assert line.waiting() == 1  # the app queued it, behind the busy job, and did not run it itself
    warm = queue_ui.warm_up_default_model()  # the app's ticket (cached once per process)
    assert warm is not None and warm.position() == 1 and line.waiting() == 1
    release.set()
    assert warm.result(WAIT) == "warm: tiny"
    at.run()
    assert queue_ui.warm_up_default_model() is warm and line.waiting() == 0  # once per process, not per run


def test_a_waiting_student_sees_their_place_in_line(line, monkeypatch):
    at = app().run()
    queue_ui.warm_up_default_model().result(WAIT)
    release = hold(line)
    line.submit(lambda: None)  # another student's request, ahead of ours
    shown, real = [], queue_ui.place_message

    def message(position):
        shown.append(position)
        release.set()  # the line moves once the page has said where we are
        return real(position)

    monkeypatch.setattr(queue_ui, "place_message", message)
    at.button(key="home_generate").click().run()
    no_exceptions(at)
    assert errors(at) == []
    assert shown and shown[0] == 2
    assert at.session_state["home_grid"]["images"].shape == (16, 28, 28)  # the grid came back
    assert not at.info  # the place-in-line message is gone once the grid is there


def test_a_full_line_is_a_clear_message_not_a_traceback(line):
    at = app().run()
    queue_ui.warm_up_default_model().result(WAIT)
    release = hold(line)
    for _ in range(line.max_waiting):
        line.submit(lambda: None)
    at.button(key="home_generate").click().run()
    release.set()
    no_exceptions(at)
    assert errors(at) == ["Could not generate: the lab is busy: the line for the CPU is full (3 waiting). "
                          "Please try again in a minute."]
    assert "home_grid" not in at.session_state


def test_reverse_diffusion_samples_on_a_queue_worker(line, monkeypatch):
    threads = []
    real = merged_runs.merged_frames

    def recording(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(merged_runs, "merged_frames", recording)
    at = app("pages/3_Reverse_diffusion.py").run()
    at.button(key="rd_run").click().run()
    no_exceptions(at)
    assert errors(at) == []
    assert at.session_state["rd_result"]["traj"].total_frames > 1
    assert threads and all(name.startswith("diffusion-lab-worker-") for name in threads)


def test_an_error_in_the_job_reaches_the_page_as_a_user_error(line, monkeypatch):
    threads = []

    def refuses(*args, **kwargs):
        threads.append(threading.current_thread().name)
        raise ValueError("the sampler refused")

    at = app().run()
    queue_ui.warm_up_default_model().result(WAIT)
    monkeypatch.setattr(batching, "sample_merged", refuses)
    at.button(key="home_generate").click().run()
    no_exceptions(at)
    assert errors(at) == ["Could not generate: the sampler refused"]
    assert threads == ["diffusion-lab-worker-0"]  # raised on the worker, shown on the page


def test_ordinals():
    assert [queue_ui.ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th"]
    assert "you are **1st in line** (you are next)" in queue_ui.place_message(1)
    assert "**3rd in line** (2 requests ahead of yours)" in queue_ui.place_message(3)


def test_a_progress_bar_says_the_time_left_from_its_pace():
    assert queue_ui.time_left(None, 3, 10) == ""  # still in line
    assert queue_ui.time_left(100.0, 0, 10, now=101.0) == ""  # no step done yet: no pace
    assert queue_ui.time_left(100.0, 5, 20, now=110.0) == " · about 30 s left"  # 2 s a step, 15 to go
    assert queue_ui.time_left(100.0, 1, 20, now=160.0) == " · about 19 min left"
    assert queue_ui.time_left(100.0, 20, 20, now=160.0) == ""
