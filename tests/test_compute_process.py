"""#30: merged sampling in a child process per queue worker (services/compute_process.py) — the same images and
frames as computed in the server's own thread, a run stopped early or a dying child leaving the next run right,
a file saved over since it was loaded, an error raised as itself."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading

import numpy as np
import pytest
import torch

from diffusion_core.io.checkpoints import load_checkpoint, save_checkpoint
from diffusion_core.models import build_model
from diffusion_core.process import SamplerChoice
from diffusion_core.samplers import run_to_end
from diffusion_core.sampling import checkpoint_frames
from diffusion_core.services import compute_process
from diffusion_core.services.compute_process import ComputeProcess, ComputeProcessDied, merged_frames
from tests.app_support import TINY_CNN, write_checkpoint, write_flow_checkpoint

SEEDS = [3, 4, 5, 100, 101]


@pytest.fixture(autouse=True)
def in_sampling_children(monkeypatch):
    monkeypatch.setenv("DIFFUSION_LAB_COMPUTE", "process")  # the suite's default is "thread" (conftest)


def in_thread(ckpt, choice, seeds):
    return list(checkpoint_frames(ckpt, choice, len(seeds), precision="fp32", seeds=seeds))


@pytest.fixture
def child():
    proc = ComputeProcess(threads=torch.get_num_threads())  # the same threads as here: the same arithmetic
    yield proc
    proc.close()


def frames_of(proc, ckpt, choice, seeds, final_only=False):
    return list(proc.frames(ckpt.path, ckpt.config["weights_sha256"], choice, seeds, "fp32", final_only, ckpt))


@pytest.mark.parametrize("kind", ["noise", "flow"])
def test_the_child_gives_every_frame_the_server_would(tmp_path, child, kind):
    ckpt = load_checkpoint(write_checkpoint(tmp_path) if kind == "noise" else write_flow_checkpoint(tmp_path))
    choice = SamplerChoice("ddim" if kind == "noise" else "flow-euler", 6)
    here, there = in_thread(ckpt, choice, SEEDS), frames_of(child, ckpt, choice, SEEDS)
    assert [f.t for f in there] == [f.t for f in here] and len(here) == 7
    for a, b in zip(here, there, strict=True):
        torch.testing.assert_close(b.z, a.z, rtol=0, atol=0)
        torch.testing.assert_close(b.x0_hat, a.x0_hat, rtol=0, atol=0)
    last = frames_of(child, ckpt, choice, SEEDS, final_only=True)
    assert len(last) == 1 and last[0].t == 0
    torch.testing.assert_close(last[0].z, here[-1].z, rtol=0, atol=0)


def test_a_run_stopped_early_leaves_the_next_one_right(tmp_path, child):
    ckpt = load_checkpoint(write_checkpoint(tmp_path, T=50))
    choice = SamplerChoice("ddim", 40)
    frames = child.frames(ckpt.path, ckpt.config["weights_sha256"], choice, [1, 2], "fp32", False, ckpt)
    assert next(frames).t == 50 and next(frames).t < 50
    frames.close()  # every page left: the child is told to stop and read up to its end
    again = frames_of(child, ckpt, dataclasses.replace(choice, steps=5), [7], final_only=True)
    torch.testing.assert_close(again[0].z, in_thread(ckpt, dataclasses.replace(choice, steps=5), [7])[-1].z,
                               rtol=0, atol=0)


def test_a_child_killed_mid_run_is_a_clear_error_and_the_next_run_starts_a_new_one(tmp_path, child):
    ckpt = load_checkpoint(write_checkpoint(tmp_path, T=50))
    choice = SamplerChoice("ancestral", 50)
    frames = child.frames(ckpt.path, ckpt.config["weights_sha256"], choice, [1], "fp32", False, ckpt)
    next(frames)
    first = child.pid
    os.kill(first, signal.SIGKILL)
    with pytest.raises(ComputeProcessDied, match=r"stopped in the middle of a run \(exit code -9\); press the "
                                                 "button again"):
        list(frames)
    assert not child.alive()
    done = frames_of(child, ckpt, choice, [1], final_only=True)
    assert child.pid != first and child.alive()
    torch.testing.assert_close(done[0].z, in_thread(ckpt, choice, [1])[-1].z, rtol=0, atol=0)


def test_a_file_saved_over_since_it_was_loaded_samples_the_model_the_server_holds(tmp_path, child):
    path = write_checkpoint(tmp_path, seed=1)
    before = load_checkpoint(path)
    torch.manual_seed(2)
    save_checkpoint(path, build_model(TINY_CNN), before.config | {"weights_sha256": None})  # a run saved over it
    assert load_checkpoint(path).config["weights_sha256"] != before.config["weights_sha256"]
    choice = SamplerChoice("ddim", 4)
    got = frames_of(child, before, choice, [0, 1], final_only=True)
    torch.testing.assert_close(got[0].z, in_thread(before, choice, [0, 1])[-1].z, rtol=0, atol=0)


def test_an_error_in_the_child_is_raised_here_as_itself(tmp_path, child):
    ckpt = load_checkpoint(write_checkpoint(tmp_path, T=20))
    choice = SamplerChoice("ddim", 30)  # more steps than the schedule has
    with pytest.raises(ValueError) as here:
        in_thread(ckpt, choice, [0])
    with pytest.raises(ValueError) as there:
        frames_of(child, ckpt, choice, [0])
    assert str(there.value) == str(here.value) and "steps" in str(here.value)
    assert len(frames_of(child, ckpt, SamplerChoice("ddim", 4), [0])) == 5  # and it goes on


def test_runs_borrow_children_as_many_as_compute_at_once_and_thread_mode_starts_none(tmp_path, monkeypatch):
    """Two runs at once borrow two children; the ten runs after them reuse those (a test suite's hundred queues,
    or a day of classes, never pile them up); DIFFUSION_LAB_COMPUTE=thread computes here, the same images."""
    ckpt = load_checkpoint(write_checkpoint(tmp_path))
    choice = SamplerChoice("ddim", 4)
    monkeypatch.setattr(compute_process, "_idle", [])
    monkeypatch.setattr(compute_process, "_all", [])
    gate = threading.Barrier(2)
    seen = []

    def run(hold: bool):
        frames = merged_frames(ckpt, choice, SEEDS, "fp32", final_only=True)
        last = next(frames)
        if hold:
            gate.wait(60)  # both runs hold their child at once
        seen.append(last.z)
        frames.close()

    try:
        workers = [threading.Thread(target=run, args=(True,)) for _ in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(120)
        assert len(compute_process.child_pids()) == 2
        for _ in range(10):
            run(False)
        assert len(compute_process.child_pids()) == 2 and len(seen) == 12
        for z in seen[1:]:
            torch.testing.assert_close(z, seen[0], rtol=0, atol=0)
        monkeypatch.setenv("DIFFUSION_LAB_COMPUTE", "thread")
        here = run_to_end(merged_frames(ckpt, choice, SEEDS, "fp32", final_only=True)).samples
        assert len(compute_process.child_pids()) == 2  # none started for it
        np.testing.assert_array_equal(here.numpy(), seen[0].numpy())
        monkeypatch.setenv("DIFFUSION_LAB_COMPUTE", "gpu")
        with pytest.raises(ValueError, match="DIFFUSION_LAB_COMPUTE must be one of process, thread; got 'gpu'"):
            merged_frames(ckpt, choice, SEEDS)
    finally:
        for proc in compute_process._all:
            proc.close()
