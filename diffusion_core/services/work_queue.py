"""One bounded, first-come-first-served line for compute jobs (sampling, analysis) shared by every session
of a server process.

Why: Streamlit runs each browser session's script in its own thread. When ten students press Generate at
the same moment, ten threads each start torch ops with one intra-op thread per core: on 2 cores twenty
threads fight, OpenMP's barriers wait for threads not scheduled, and all ten grids arrived after ~22 s while
one student alone waited ~2 s (issue #18).

Here jobs wait in line and `workers` threads run them, so at most `workers` jobs compute at once, each
torch op on `threads` intra-op threads (workers × threads = the cores, by default one thread per worker).
torch.set_num_threads is process-wide (new threads inherit it), so it is set once per process, when the
first queue starts its workers; later queues keep that setting.

The same goes for Python's GIL switch interval: a sampler takes the GIL back after each of its hundreds of
small ops per step, and while pages render each take-back can wait a whole interval (5 ms by default). With
10 Generate jobs, 2 workers and 3 threads of pure Python beside them, the last job finished after 35 s at
5 ms and 6 s at 0.25 ms, which the first queue sets. (A class's merged sampling now runs outside the GIL
altogether: services/compute_process.py.)

    queue = default_queue()                # the process-wide line (sized for this machine)
    ticket = queue.submit(fn, *args)       # QueueFull when the line is full
    while not ticket.wait(0.3):
        show(ticket.position())            # 1 = next to start; 0 = running (or finished)
    value = ticket.result()                # fn's return value, or fn's exception raised again
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import CancelledError
from dataclasses import dataclass
from typing import Any

import torch

from diffusion_core.io.files import env_int

WORKERS_ENV = "DIFFUSION_LAB_WORKERS"  # jobs computed at once (default: the usable cores / threads)
THREADS_ENV = "DIFFUSION_LAB_TORCH_THREADS"  # torch intra-op threads per job (default 1)
QUEUE_SIZE_ENV = "DIFFUSION_LAB_QUEUE_SIZE"  # jobs allowed to wait (default 30: a class, one request each)
DEFAULT_QUEUE_SIZE = 30
BATCH_WAIT_ENV = "DIFFUSION_LAB_BATCH_WAIT_MS"  # ms a batched job waits for others to join (default 50)
DEFAULT_BATCH_WAIT_MS = 50
SWITCH_INTERVAL_S = 0.00025  # sys.setswitchinterval for a process that computes beside page scripts

WAITING, RUNNING, DONE, CANCELLED = "waiting", "running", "done", "cancelled"

__all__ = [
    "CancelledError",
    "QueueFull",
    "Ticket",
    "WorkQueue",
    "configure_switch_interval",
    "configure_torch_threads",
    "default_queue",
    "machine_plan",
    "usable_cores",
]


class QueueFull(RuntimeError):
    """The line is full: the job was not queued. The message is written for the user."""


class Ticket:
    """One submitted job: its place in line while it waits, then its result or its exception."""

    def __init__(self, queue: WorkQueue, fn: Callable[..., Any], args: tuple, kwargs: dict,
                 batch: Batchable | None = None):
        self._queue = queue
        self._call = (fn, args, kwargs)
        self.batch = batch  # a job that may run in one call with others of the same key (submit_batched)
        self.batched_with: tuple[int, int] = (1, batch.size if batch else 0)  # (items, their total size) it ran in
        self.note: str | None = None  # a batched job's word on how it ran (its run_many's `note`)
        self._done, self._value, self._error = threading.Event(), None, None
        self.state = WAITING

    def position(self) -> int:
        """1 for the next job to start, 2 for the one after it, …; 0 once running, finished or cancelled."""
        return self._queue._position(self)

    def done(self) -> bool:
        """True once the job has finished (with a value or an exception) or was cancelled."""
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until done or `timeout` seconds have passed; True when done."""
        return self._done.wait(timeout)

    def result(self, timeout: float | None = None) -> Any:
        """The job's return value; its exception is raised again here (with the job's traceback).
        CancelledError for a cancelled job; TimeoutError when not done within `timeout` seconds."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"the job did not finish within {timeout} s")
        if self.state == CANCELLED:
            raise CancelledError("the job was cancelled before it started")
        if self._error is not None:
            raise self._error
        return self._value

    def cancel(self) -> bool:
        """Give up the place in line: True when the job had not started (it never will); False when it is
        already running or done (a running job finishes; nobody reads its result)."""
        return self._queue._cancel(self)


class WorkQueue:
    """`workers` threads run submitted jobs in the order they came; at most `max_waiting` jobs wait.

    `threads`: torch intra-op threads, set with configure_torch_threads when the workers start; and
    `switch_interval`: seconds, set with configure_switch_interval then (None: leave either alone).
    `batch_wait`: seconds a batched job (submit_batched) waits, once a worker takes it, for others of its key
    to join (students' clicks a moment apart share one batch). Workers are daemon threads started on the first
    submit."""

    def __init__(self, workers: int = 1, max_waiting: int = DEFAULT_QUEUE_SIZE, threads: int | None = None,
                 switch_interval: float | None = None, batch_wait: float = 0.0):
        for name, value in (("workers", workers), ("max_waiting", max_waiting)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer ≥ 1; got {value!r}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be an integer ≥ 1 or None; got {threads!r}")
        self.workers = workers
        self.max_waiting = max_waiting
        if switch_interval is not None and not 0 < switch_interval <= 0.1:
            raise ValueError(f"switch_interval must be in (0, 0.1] seconds; got {switch_interval!r}")
        if isinstance(batch_wait, bool) or not isinstance(batch_wait, int | float) or not 0 <= batch_wait <= 5:
            raise ValueError(f"batch_wait must be 0 to 5 seconds; got {batch_wait!r}")
        self.threads = threads
        self.switch_interval = switch_interval
        self.batch_wait = float(batch_wait)  # seconds a batched job waits for others to join it before it runs
        self._lock = threading.Condition()
        self._waiting: deque[Ticket] = deque()
        self._gathering: set[Hashable] = set()  # keys whose batch a worker is gathering now
        self._running = 0
        self._inflight: dict[Hashable, tuple[int, int]] = {}  # key → (workers computing it, images they hold)
        self._threads: list[threading.Thread] = []
        self._closed = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Ticket:
        """Queue fn(*args, **kwargs); QueueFull (nothing queued) when `max_waiting` jobs already wait."""
        return self._enqueue(Ticket(self, fn, args, kwargs))

    def _enqueue(self, ticket: Ticket) -> Ticket:
        with self._lock:
            if self._closed:
                raise RuntimeError("this work queue has been shut down")
            if len(self._waiting) >= self.max_waiting:
                raise QueueFull(f"the lab is busy: the line for the CPU is full ({len(self._waiting)} waiting). "
                                "Please try again in a minute.")
            self._start_workers()
            self._waiting.append(ticket)
            self._lock.notify_all()  # an idle worker, and a worker gathering a batch
            return ticket

    def submit_batched(self, key: Hashable, item: Any, size: int, run_many: Callable[[list[Any]], list[Any]],
                       max_size: int) -> Ticket:
        """Queue one item of work that may be computed together with others: when a worker takes it, it also
        takes every waiting item with the same `key` (in their order in line) while their `size`s sum to at most
        `max_size`, and calls run_many(items) once — which returns one result per item, in order. Should that
        merged call fail, each item is run again alone, so one bad request cannot fail the others."""
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= max_size:
            raise ValueError(f"size must be a whole number from 1 to max_size = {max_size}; got {size!r}")
        return self._enqueue(Ticket(self, run_many, ([item],), {}, Batchable(key, item, size, max_size)))

    def waiting(self) -> int:
        """Jobs in line, not yet started."""
        with self._lock:
            return len(self._waiting)

    def running(self) -> int:
        """Jobs computing now."""
        with self._lock:
            return self._running

    def shutdown(self, wait: bool = True) -> None:
        """Cancel the jobs still waiting and stop the workers once they finish what they run."""
        with self._lock:
            self._closed = True
            while self._waiting:
                self._finish_cancelled(self._waiting.popleft())
            self._lock.notify_all()
            workers = list(self._threads)
        if wait:
            for thread in workers:
                if thread is not threading.current_thread():
                    thread.join()

    # -- internals (called with self._lock held where noted) --

    def _start_workers(self) -> None:  # lock held
        if self._threads:
            return
        if self.threads is not None:
            configure_torch_threads(self.threads)  # before the first job: the workers inherit it
        if self.switch_interval is not None:
            configure_switch_interval(self.switch_interval)
        for i in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"diffusion-lab-worker-{i}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _position(self, ticket: Ticket) -> int:
        with self._lock:
            if ticket.state != WAITING:
                return 0
            for place, queued in enumerate(self._waiting, start=1):
                if queued is ticket:
                    return place
            return 0

    def _cancel(self, ticket: Ticket) -> bool:
        with self._lock:
            if ticket.state != WAITING:
                return False
            self._waiting.remove(ticket)
            self._finish_cancelled(ticket)
            return True

    @staticmethod
    def _finish_cancelled(ticket: Ticket) -> None:  # lock held
        ticket.state = CANCELLED
        ticket._call = None  # drop the job's arguments (models, tensors) now
        ticket._done.set()

    def _take_batch(self, first: Ticket) -> list[Ticket]:  # lock held
        """`first` and the waiting tickets that join its batch (same key, sizes within max_size): a fair share of
        its key's work — waiting and computing on other workers — between this worker, the idle ones and those
        computing the key, so that they finish together (one batch of all would idle a core; a busy worker's plain
        job, maybe a minute's evaluation, is not counted on)."""
        key = first.batch.key
        same = sum(t.batch.size for t in self._waiting if t.batch is not None and t.batch.key == key)
        busy_workers, busy_size = self._inflight.get(key, (0, 0))
        sharing = max(1, self.workers - self._running + busy_workers)
        share = -(-(first.batch.size + same + busy_size) // sharing)
        batch, room = [first], min(first.batch.max_size, max(share, first.batch.size)) - first.batch.size
        for ticket in list(self._waiting):
            if ticket.batch is not None and ticket.batch.key == first.batch.key and ticket.batch.size <= room:
                self._waiting.remove(ticket)
                batch.append(ticket)
                room -= ticket.batch.size
        return batch

    def _next(self) -> Ticket | None:  # lock held
        """The first waiting ticket that is not joining a batch another worker is gathering."""
        for ticket in self._waiting:
            if ticket.batch is None or ticket.batch.key not in self._gathering:
                self._waiting.remove(ticket)
                return ticket
        return None

    def _work(self) -> None:
        while True:
            with self._lock:
                while (first := self._next()) is None and not self._closed:
                    self._lock.wait()
                if first is None:  # closed and nothing left
                    return
                if first.batch is not None and self.batch_wait > 0:  # gather: others of its key join it
                    first.state = RUNNING  # out of the line
                    self._gathering.add(first.batch.key)
                    deadline = time.monotonic() + self.batch_wait
                    while (left := deadline - time.monotonic()) > 0 and not self._closed:
                        self._lock.wait(left)
                    self._gathering.discard(first.batch.key)
                    self._lock.notify_all()  # tickets of its key left behind (past max_size) may go now
                tickets = [first] if first.batch is None else self._take_batch(first)
                for ticket in tickets:
                    ticket.state = RUNNING
                self._running += 1
                if first.batch is not None:
                    workers, size = self._inflight.get(first.batch.key, (0, 0))
                    self._inflight[first.batch.key] = (workers + 1, size + sum(t.batch.size for t in tickets))
            try:
                if first.batch is None:
                    fn, args, kwargs = first._call
                    _settle(first, fn, *args, **kwargs)
                else:
                    _run_batch(tickets)
            finally:
                for ticket in tickets:
                    ticket._call = None
                with self._lock:
                    self._running -= 1
                    if first.batch is not None and (left := self._inflight.pop(first.batch.key))[0] > 1:
                        self._inflight[first.batch.key] = (left[0] - 1, left[1] - sum(t.batch.size for t in tickets))
                    for ticket in tickets:
                        ticket.state = DONE
                for ticket in tickets:
                    ticket._done.set()


@dataclass(frozen=True)
class Batchable:
    """What submit_batched knows of one item: the key it merges on, the item, its size and the batch's cap."""

    key: Hashable
    item: Any
    size: int
    max_size: int


def _settle(ticket: Ticket, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """fn's value, or its exception, into the ticket."""
    try:
        ticket._value = fn(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 — handed to the submitter, who raises it
        ticket._error = exc


def _alone(run_many: Callable[[list[Any]], list[Any]], item: Any) -> Any:
    return run_many([item])[0]


def _run_batch(tickets: list[Ticket]) -> None:
    """One call for the tickets' items; each its own result. A failed merged call is retried item by item."""
    run_many = tickets[0]._call[0]
    try:
        results = run_many([t.batch.item for t in tickets])
        if len(results) != len(tickets):
            raise RuntimeError(f"a batched job returned {len(results)} results for {len(tickets)} requests")
    except BaseException as exc:  # noqa: BLE001 — each request is tried alone below (alone, a failure is its own)
        if len(tickets) == 1:
            tickets[0]._error = exc
            return
        for ticket in tickets:
            _settle(ticket, _alone, run_many, ticket.batch.item)
        return
    shared, note = (len(tickets), sum(t.batch.size for t in tickets)), getattr(run_many, "note", None)
    for ticket, value in zip(tickets, results, strict=True):
        ticket._value, ticket.batched_with, ticket.note = value, shared, note


_threads_lock = threading.Lock()
_threads_set: int | None = None  # what configure_torch_threads set in this process, once


def configure_torch_threads(threads: int) -> int:
    """torch.set_num_threads(threads) the first time it is called in this process; later calls change
    nothing (the process-wide setting must not flip while jobs run). Returns the setting in force."""
    global _threads_set
    with _threads_lock:
        if _threads_set is None:
            torch.set_num_threads(threads)
            _threads_set = threads
        return _threads_set


_interval_set: float | None = None  # what configure_switch_interval set in this process, once


def configure_switch_interval(seconds: float) -> float:
    """sys.setswitchinterval(seconds) the first time it is called in this process; later calls change
    nothing. Returns the setting in force."""
    global _interval_set
    with _threads_lock:
        if _interval_set is None:
            sys.setswitchinterval(seconds)
            _interval_set = seconds
        return _interval_set


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, else os.cpu_count())."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def machine_plan(cores: int | None = None) -> dict:
    """{"workers", "threads", "max_waiting", "switch_interval", "batch_wait"} for this machine: one torch thread
    per job and one job per core, unless DIFFUSION_LAB_TORCH_THREADS / DIFFUSION_LAB_WORKERS /
    DIFFUSION_LAB_QUEUE_SIZE say otherwise; the GIL switch interval SWITCH_INTERVAL_S; batched jobs wait
    DIFFUSION_LAB_BATCH_WAIT_MS (default 50 ms) for others to join."""
    cores = usable_cores() if cores is None else cores
    threads = env_int(THREADS_ENV, 1)
    workers = env_int(WORKERS_ENV, max(1, cores // threads))
    return {"workers": workers, "threads": threads, "max_waiting": env_int(QUEUE_SIZE_ENV, DEFAULT_QUEUE_SIZE),
            "switch_interval": SWITCH_INTERVAL_S,
            "batch_wait": env_int(BATCH_WAIT_ENV, DEFAULT_BATCH_WAIT_MS, minimum=0) / 1000}


_default_lock = threading.Lock()
_default: WorkQueue | None = None


def default_queue() -> WorkQueue:
    """The process-wide queue every session shares, created (per machine_plan) on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = WorkQueue(**machine_plan())
        return _default
