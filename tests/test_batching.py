"""#30: students' sampling requests merged into one batch — each student's images the same as alone — the work
queue's batched jobs (merging by key, the size cap, a failure kept to its own request) and the bounded cache."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
import torch

from diffusion_core.io.checkpoints import load_checkpoint
from diffusion_core.process import SamplerChoice, Start
from diffusion_core.sampling import checkpoint_frames, sample_checkpoint
from diffusion_core.services import batching
from diffusion_core.services.work_queue import WorkQueue
from diffusion_core.views import merged_runs
from diffusion_core.views.reverse import LiveView, RunStopped, record_trajectory
from tests.app_support import write_checkpoint, write_conditional_checkpoint


@pytest.fixture(autouse=True)
def in_sampling_children(monkeypatch):
    monkeypatch.setenv("DIFFUSION_LAB_COMPUTE", "process")  # merged runs as the app computes them (conftest)


REQUESTS = [batching.SampleRequest(0, 3), batching.SampleRequest(100, 5), batching.SampleRequest(7, 2)]


@pytest.mark.parametrize("sampler", ["ddim", "dpm++2m-sde", "euler-a"])
def test_each_students_images_are_the_same_alone_or_merged(tmp_path, sampler):
    ckpt = load_checkpoint(write_checkpoint(tmp_path, T=50))
    choice = SamplerChoice(sampler, 6, seed=123)  # the choice's own seed is not used: each request's is
    merged = batching.sample_merged(ckpt, choice, REQUESTS, precision="fp32")
    assert [len(m) for m in merged] == [3, 5, 2]
    for request, images in zip(REQUESTS, merged, strict=True):
        alone = sample_checkpoint(ckpt, dataclasses.replace(choice, seed=request.seed), request.n,
                                  precision="fp32").samples
        torch.testing.assert_close(images, alone, rtol=0, atol=1e-5)
    other = sample_checkpoint(ckpt, dataclasses.replace(choice, seed=1), 3, precision="fp32").samples
    assert not torch.allclose(merged[0], other, atol=1e-3)  # the seed matters: the test could fail


def test_a_class_conditional_models_labels_follow_each_students_seeds(tmp_path):
    ckpt = load_checkpoint(write_conditional_checkpoint(tmp_path))
    choice = SamplerChoice("ddim", 4, guidance=1.0)  # digit None: every class in turn, by seed
    merged = batching.sample_merged(ckpt, choice, REQUESTS, precision="fp32")
    for request, images in zip(REQUESTS, merged, strict=True):
        alone = sample_checkpoint(ckpt, dataclasses.replace(choice, seed=request.seed), request.n,
                                  precision="fp32").samples
        torch.testing.assert_close(images, alone, rtol=0, atol=1e-5)


def blocked_queue() -> tuple[WorkQueue, threading.Event]:
    """A one-worker queue whose worker is busy until the event is set, so that submissions wait together."""
    queue, release, started = WorkQueue(workers=1), threading.Event(), threading.Event()
    queue.submit(lambda: (started.set(), release.wait()))
    assert started.wait(30)
    return queue, release


def test_waiting_items_with_one_key_run_as_one_call_within_the_size_cap():
    calls = []

    def run_many(items):
        calls.append(list(items))
        return [f"done {i}" for i in items]

    queue, release = blocked_queue()
    tickets = [queue.submit_batched("a", 1, 100, run_many, 256), queue.submit_batched("b", 2, 10, run_many, 256),
               queue.submit_batched("a", 3, 100, run_many, 256), queue.submit_batched("a", 4, 100, run_many, 256),
               queue.submit_batched("a", 5, 50, run_many, 256)]
    assert [t.position() for t in tickets] == [1, 2, 3, 4, 5]
    release.set()
    assert [t.result(30) for t in tickets] == ["done 1", "done 2", "done 3", "done 4", "done 5"]
    # 1 and 3 fill 200 of 256; 4 (100) would not fit, 5 (50) does; then b alone; then 4
    assert calls == [[1, 3, 5], [2], [4]]
    queue.shutdown()


def test_a_batched_job_waits_a_moment_for_others_to_join():
    """With batch_wait, an idle queue's first batched job waits that long: a second student's click 0.1 s later
    joins its batch (without it, the first would run alone and the second after it)."""
    calls = []

    def run_many(items):
        calls.append(list(items))
        return list(items)

    for workers, wait, expected in ((1, 1.0, [["first", "second"]]), (1, 0.0, [["first"], ["second"]])):
        calls.clear()
        queue = WorkQueue(workers=workers, batch_wait=wait)
        first = queue.submit_batched("k", "first", 1, run_many, 8)
        threading.Event().wait(0.1)
        second = queue.submit_batched("k", "second", 1, run_many, 8)
        assert (first.result(30), second.result(30)) == ("first", "second")
        assert calls == expected
        if wait:
            assert first.batched_with == second.batched_with == (2, 2)
        queue.shutdown()
    with pytest.raises(ValueError, match="batch_wait must be 0 to 5 seconds"):
        WorkQueue(batch_wait=-1)


def test_a_class_is_shared_fairly_between_the_workers():
    """Six clicks a moment apart on two workers: while the first is gathered, the idle worker leaves the others to
    it; then each worker takes half (a batch runs on one worker's threads: one batch of all would idle a core)."""
    calls, lock = [], threading.Lock()

    def run_many(items):
        with lock:
            calls.append(list(items))
        threading.Event().wait(1.0)  # longer than the gathering: the first worker is busy when the second takes
        return list(items)

    queue = WorkQueue(workers=2, batch_wait=0.3)
    tickets = [queue.submit_batched("k", i, 1, run_many, 8) for i in range(6)]
    assert [t.result(30) for t in tickets] == list(range(6))
    assert sorted(calls) == [[0, 1, 2], [3, 4, 5]]
    assert {t.batched_with for t in tickets} == {(3, 3)}
    queue.shutdown()


def test_a_worker_joining_while_another_computes_the_same_key_takes_what_evens_them():
    """One student's batch computing on worker A when nine more click: worker B takes five (half of the ten
    images of that key, A's one included), not all nine; A, done while B still computes, takes the other four
    (before: B took all nine while A sat idle after its one — 10 students' Generate p95 6.3 s → 6.0 s)."""
    calls, lock = [], threading.Lock()
    started = {"A": threading.Event(), "B": threading.Event()}
    release = {"A": threading.Event(), "B": threading.Event()}

    def run_many(items):
        with lock:
            calls.append(list(items))
        who = "A" if items == [0] else "B" if len(calls) == 2 else None
        if who:
            started[who].set()
            release[who].wait(30)
        return list(items)

    queue = WorkQueue(workers=2, batch_wait=0.2)
    first = queue.submit_batched("k", 0, 1, run_many, 16)
    assert started["A"].wait(30)
    later = [queue.submit_batched("k", i, 1, run_many, 16) for i in range(1, 10)]
    assert started["B"].wait(30)
    release["A"].set()  # A is free while B computes its five
    assert later[-1].result(30) == 9  # A's second batch is done while B still computes
    release["B"].set()
    assert [t.result(30) for t in [first, *later]] == list(range(10))
    assert calls == [[0], [1, 2, 3, 4, 5], [6, 7, 8, 9]]
    queue.shutdown()


def test_a_failing_request_fails_alone_and_a_cancelled_one_never_runs():
    calls = []

    def run_many(items):
        calls.append(list(items))
        if "bad" in items:
            raise ValueError("this one is bad")
        return [i.upper() for i in items]

    queue, release = blocked_queue()
    good, bad, gone, other = (queue.submit_batched("k", item, 1, run_many, 8) for item in ("ok", "bad", "gone", "x"))
    assert gone.cancel()
    release.set()
    assert good.result(30) == "OK" and other.result(30) == "X"
    with pytest.raises(ValueError, match="this one is bad"):
        bad.result(30)
    assert calls == [["ok", "bad", "x"], ["ok"], ["bad"], ["x"]]  # merged, failed, then each alone
    queue.shutdown()


def test_submitted_samples_merge_and_fill_the_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(batching, "_cache", batching.SampleCache(8))
    ckpt = load_checkpoint(write_checkpoint(tmp_path, T=50))
    choice = SamplerChoice("ddim", 4)
    queue, release = blocked_queue()
    tickets = [batching.submit_samples(queue, ckpt, dataclasses.replace(choice, seed=r.seed), r.n, "fp32")
               for r in REQUESTS]
    release.set()
    for request, ticket in zip(REQUESTS, tickets, strict=True):
        images = ticket.result(60)
        assert images.shape == (request.n, 1, 28, 28)
        key = batching.sample_key(ckpt, dataclasses.replace(choice, seed=request.seed), request.n)
        assert batching.sample_cache().get(key) is images
    assert batching.sample_key(ckpt, SamplerChoice("ddim", 4, start=Start(states=torch.zeros(2, 1, 28, 28))), 2) \
        is None  # a run from given states is its own
    queue.shutdown()


def test_the_cache_keeps_the_most_recently_used():
    cache = batching.SampleCache(2)
    a, b, c = (torch.full((1,), float(i)) for i in range(3))
    cache.put("a", a)
    cache.put("b", b)
    assert cache.get("a") is a  # a is now the most recent
    cache.put("c", c)
    assert cache.get("b") is None and cache.get("a") is a and cache.get("c") is c and len(cache) == 2
    assert (cache.hits, cache.misses) == (3, 1)
    with pytest.raises(ValueError, match="capacity must be a whole number ≥ 0"):
        batching.SampleCache(-1)


def test_merged_reverse_runs_give_each_student_their_own_trajectory(tmp_path):
    """Two students' reverse runs in one batch: each records the frames of their own images (as their run alone
    would), sees them live, and one whose page stopped drops out while the other's run goes on."""
    ckpt = load_checkpoint(write_checkpoint(tmp_path, T=50))
    choice = SamplerChoice("dpm++2m-sde", 8)
    lives = [LiveView(0.0) for _ in range(3)]
    items = [merged_runs.TrajectoryRequest(batching.SampleRequest(seed, n), live, 4)
             for (seed, n), live in zip(((0, 2), (50, 3), (9, 1)), lives, strict=True)]
    lives[2].stop()  # this student left before the run began
    results = merged_runs.trajectories_merged(ckpt, choice, items, precision="fp32")
    for item, (traj, seconds) in zip(items[:2], results, strict=False):
        alone = record_trajectory(checkpoint_frames(ckpt, dataclasses.replace(choice, seed=item.request.seed),
                                                    item.request.n, precision="fp32"), 4)
        assert traj.ts == alone.ts and traj.total_frames == alone.total_frames == 9 and seconds > 0
        np.testing.assert_allclose(traj.z, alone.z, atol=1e-5)
        np.testing.assert_allclose(traj.x0, alone.x0, atol=1e-5)
        assert item.live.latest().t == 0 and item.live.latest().z.shape[0] == item.request.n
    for live in lives[:2]:
        live.stop()
    with pytest.raises(RunStopped, match="every page stopped its run"):
        merged_runs.trajectories_merged(ckpt, choice, items)
