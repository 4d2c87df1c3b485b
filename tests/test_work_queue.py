"""The process-wide compute line (diffusion_core.services.work_queue): first come first served, places in line,
a bound, exceptions handed back to the submitter, cancelling a waiting job, at most `workers` jobs at
once, and torch's thread count set once per process. Deterministic: jobs are held on events, no sleeps
decide an outcome."""

from __future__ import annotations

import subprocess
import sys
import threading
import traceback
from pathlib import Path

import pytest
import torch

from diffusion_core.services import work_queue
from diffusion_core.services.work_queue import CancelledError, QueueFull, WorkQueue, machine_plan

ROOT = Path(__file__).resolve().parent.parent
WAIT = 30  # seconds: only a broken queue ever waits this long


@pytest.fixture
def queue():
    queues = []

    def make(**kwargs) -> WorkQueue:
        q = WorkQueue(**kwargs)
        queues.append(q)
        return q

    yield make
    for q in queues:
        q.shutdown(wait=False)


def hold(q: WorkQueue):
    """Occupy one worker until the returned event is set; returns (ticket, release)."""
    started, release = threading.Event(), threading.Event()

    def job():
        started.set()
        assert release.wait(WAIT)
        return "held"

    ticket = q.submit(job)
    assert started.wait(WAIT)
    return ticket, release


def test_jobs_run_in_the_order_they_came_and_report_their_place(queue):
    q = queue(workers=1)
    gate, release = hold(q)
    order = []
    tickets = [q.submit(order.append, i) for i in range(5)]
    assert gate.position() == 0  # running
    assert [t.position() for t in tickets] == [1, 2, 3, 4, 5]
    assert q.waiting() == 5 and q.running() == 1
    release.set()
    for t in tickets:
        assert t.result(WAIT) is None
    assert order == [0, 1, 2, 3, 4]
    assert gate.result(WAIT) == "held"
    assert [t.position() for t in tickets] == [0] * 5 and all(t.done() for t in tickets)


def test_cancelling_a_waiting_job_moves_the_ones_behind_it_up(queue):
    q = queue(workers=1)
    gate, release = hold(q)
    ran = []
    a, b, c = (q.submit(ran.append, name) for name in "abc")
    assert b.cancel() is True
    assert (a.position(), b.position(), c.position()) == (1, 0, 2)
    assert b.done()
    with pytest.raises(CancelledError):
        b.result(0)
    assert gate.cancel() is False  # running: it finishes
    release.set()
    c.result(WAIT)
    assert ran == ["a", "c"]  # the cancelled job never ran
    assert a.cancel() is False  # done


def test_the_line_is_bounded_and_a_full_line_queues_nothing(queue):
    q = queue(workers=1, max_waiting=2)
    _, release = hold(q)  # running jobs do not count against the bound
    first, second = q.submit(lambda: 1), q.submit(lambda: 2)
    with pytest.raises(QueueFull, match=r"busy: the line for the CPU is full \(2 waiting\)"):
        q.submit(lambda: 3)
    assert q.waiting() == 2
    second.cancel()
    third = q.submit(lambda: 3)  # a place came free
    release.set()
    assert (first.result(WAIT), third.result(WAIT)) == (1, 3)


def test_an_exception_in_a_job_is_raised_to_its_submitter_and_the_worker_goes_on(queue):
    q = queue(workers=1)

    def broken(x):
        raise ValueError(f"bad input {x}")

    failed = q.submit(broken, 7)
    after = q.submit(lambda: "still working")
    with pytest.raises(ValueError, match="bad input 7") as info:
        failed.result(WAIT)
    assert "broken" in "".join(traceback.format_tb(info.value.__traceback__))  # the job's own frame
    assert after.result(WAIT) == "still working"


def test_arguments_and_keywords_reach_the_job(queue):
    q = queue(workers=1)
    assert q.submit(lambda a, b=0, *, c: (a, b, c), 1, b=2, c=3).result(WAIT) == (1, 2, 3)


def test_at_most_workers_jobs_compute_at_once(queue):
    q = queue(workers=2)
    lock, now, peak = threading.Lock(), [0], [0]
    both_in = threading.Barrier(2, timeout=WAIT)  # the first two run together, or this breaks

    def job(i):
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        if i < 2:
            both_in.wait()
        with lock:
            now[0] -= 1
        return i

    tickets = [q.submit(job, i) for i in range(8)]
    assert [t.result(WAIT) for t in tickets] == list(range(8))
    assert peak[0] == 2


def test_the_gil_switch_interval_is_set_once_per_process(queue, monkeypatch):
    calls = []
    monkeypatch.setattr(work_queue, "_interval_set", None)
    monkeypatch.setattr(work_queue.sys, "setswitchinterval", calls.append)
    q1 = queue(workers=1, switch_interval=0.001)
    assert calls == []
    q1.submit(lambda: None).result(WAIT)
    queue(workers=1, switch_interval=0.002).submit(lambda: None).result(WAIT)
    assert calls == [0.001] and work_queue.configure_switch_interval(0.003) == 0.001


def test_torch_threads_are_set_once_per_process(queue, monkeypatch):
    calls = []
    monkeypatch.setattr(work_queue, "_threads_set", None)
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    q1 = queue(workers=2, threads=1)
    assert calls == []  # nothing happens before the first job
    for t in [q1.submit(lambda: None) for _ in range(5)]:
        t.result(WAIT)
    q2 = queue(workers=1, threads=3)  # a second queue keeps the process's setting
    q2.submit(lambda: None).result(WAIT)
    assert calls == [1]
    assert work_queue.configure_torch_threads(4) == 1 and calls == [1]
    q3 = queue(workers=1)  # threads=None: leaves torch alone
    q3.submit(lambda: None).result(WAIT)
    assert calls == [1]


def test_the_default_queue_sets_torch_threads_for_its_workers_in_a_fresh_process():
    code = (
        "import torch\n"
        "from diffusion_core.services.work_queue import default_queue\n"
        "q = default_queue()\n"
        "assert q is default_queue()\n"
        "import sys\n"
        "print(q.workers, q.threads, q.max_waiting, q.submit(torch.get_num_threads).result(60), "
        "torch.get_num_threads(), sys.getswitchinterval())\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "DIFFUSION_LAB_WORKERS": "3",
           "DIFFUSION_LAB_QUEUE_SIZE": "7"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    # one torch thread, in the workers and everywhere; a short GIL switch interval
    assert out.stdout.split() == ["3", "1", "7", "1", "1", str(work_queue.SWITCH_INTERVAL_S)]


def test_machine_plan_gives_one_job_per_core_with_one_thread_each(monkeypatch):
    for name in (work_queue.WORKERS_ENV, work_queue.THREADS_ENV, work_queue.QUEUE_SIZE_ENV, work_queue.BATCH_WAIT_ENV):
        monkeypatch.delenv(name, raising=False)
    assert machine_plan(cores=2) == {"workers": 2, "threads": 1, "max_waiting": work_queue.DEFAULT_QUEUE_SIZE,
                                     "switch_interval": work_queue.SWITCH_INTERVAL_S, "batch_wait": 0.05}
    monkeypatch.setenv(work_queue.BATCH_WAIT_ENV, "0")
    assert machine_plan(cores=2)["batch_wait"] == 0.0
    monkeypatch.setenv(work_queue.THREADS_ENV, "4")
    assert machine_plan(cores=16)["workers"] == 4  # 4 jobs × 4 threads = 16 cores
    assert machine_plan(cores=2)["workers"] == 1
    monkeypatch.setenv(work_queue.WORKERS_ENV, "0")
    with pytest.raises(ValueError, match="DIFFUSION_LAB_WORKERS must be a whole number"):
        machine_plan(cores=2)


def test_bad_settings_are_refused():
    for kwargs in ({"workers": 0}, {"max_waiting": 0}, {"threads": 0}, {"workers": True}, {"switch_interval": 0}):
        with pytest.raises(ValueError):
            WorkQueue(**kwargs)


def test_shutdown_cancels_what_waits(queue):
    q = queue(workers=1)
    gate, release = hold(q)
    waiting = q.submit(lambda: "never")
    threading.Timer(0.2, release.set).start()
    q.shutdown(wait=True)
    assert gate.result(WAIT) == "held"
    with pytest.raises(CancelledError):
        waiting.result(0)
    with pytest.raises(RuntimeError, match="shut down"):
        q.submit(lambda: None)
