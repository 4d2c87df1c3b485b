"""Disk and environment faults: a full disk during an end-of-epoch write (simulated inside
io_utils), an unwritable runs folder, and a dataset that is missing offline. Each gives a clear
message; the previous checkpoint stays loadable."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import pytest
import streamlit as st
import torch

import diffusion_core.io.files as io_utils
import diffusion_core.training.trainer as training
from diffusion_core.io.checkpoints import load_checkpoint
from diffusion_core.io.data import DEBIAN_FASHION_DIR
from diffusion_core.io.files import read_jsonl
from diffusion_core.services import jobs, run_status
from diffusion_core.training.config import TrainConfig, TrainingError
from diffusion_core.training.trainer import read_status, train
from tests.app_support import TINY_CNN, app, blobs, errors, no_exceptions

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))




@pytest.fixture(autouse=True)
def _blob_data(monkeypatch):
    monkeypatch.setattr(training, "load_dataset", lambda *a, **k: blobs())


def config(epochs: int) -> TrainConfig:
    return TrainConfig(model=TINY_CNN, epochs=epochs, batch_size=16, lr=2e-3, seed=3, sample_epochs=[], preview_n=4,
                       diffusion={"type": "noise", "schedule": {"kind": "linear", "beta1": 1e-4, "beta2": 0.02,
                                                                "T": 50}})


class _HalfWriter:
    """A file whose write stores half the bytes, then fails as a full disk does."""

    def __init__(self, f):
        self._f = f

    def write(self, data):
        self._f.write(data[: len(data) // 2])
        self._f.flush()
        raise ENOSPC

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()

    def __getattr__(self, name):
        return getattr(self._f, name)


class DiskFull:
    """Make io_utils' writes to files named `name` (atomic writes and JSON-lines appends) hit ENOSPC
    half-way, after letting the first `skip` of them through; every other write goes through. `hits`
    counts the failed writes."""

    def __init__(self, monkeypatch, name: str, skip: int = 0):
        self.name, self.hits, self.skip, self._fds = name, 0, skip, set()
        outer = self

        def fails() -> bool:
            outer.skip -= 1
            return outer.skip < 0

        class _Tempfile:
            def __getattr__(self, attr):
                return getattr(tempfile, attr)

            def mkstemp(self, *a, **k):
                fd, tmp = tempfile.mkstemp(*a, **k)
                if Path(tmp).name.startswith(f".{outer.name}.") and fails():
                    outer._fds.add(fd)
                return fd, tmp

        class _Os:
            def __getattr__(self, attr):
                return getattr(os, attr)

            def fdopen(self, fd, *a, **k):
                f = os.fdopen(fd, *a, **k)
                if fd in outer._fds:
                    outer._fds.discard(fd)
                    outer.hits += 1
                    return _HalfWriter(f)
                return f

        def _open(path, *a, **k):
            f = open(path, *a, **k)
            if Path(path).name == outer.name and fails():
                outer.hits += 1
                return _HalfWriter(f)
            return f

        monkeypatch.setattr(io_utils, "tempfile", _Tempfile())
        monkeypatch.setattr(io_utils, "os", _Os())
        monkeypatch.setattr(io_utils, "open", _open, raising=False)


def leftovers(run: Path) -> list[str]:
    return sorted(p.name for p in run.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A run folder after one epoch of the tiny config."""
    train(config(epochs=1), tmp_path / "run")
    return tmp_path / "run"


@pytest.mark.parametrize("name", ["train_state.pt", "model.safetensors", "model.json"])
def test_disk_full_during_a_checkpoint_write_keeps_the_previous_one(run, monkeypatch, name):
    # what Resume relies on: the checkpoint pair, or (written last) the training state
    kept = ("train_state.pt",) if name == "train_state.pt" else ("model.safetensors", "model.json")
    before = {f: (run / f).read_bytes() for f in kept}
    with monkeypatch.context() as m, pytest.raises(TrainingError) as info:
        disk = DiskFull(m, name)
        train(config(epochs=2), run, resume=True)
    assert disk.hits == 1  # the fault hit the file under test, once
    message = str(info.value)
    assert message.startswith("could not save epoch 2 in ") and "No space left on device" in message
    assert "Free disk space" in message and "Resume" in message
    status = read_status(run)
    assert status["state"] == "failed" and status["message"] == message
    assert leftovers(run) == []  # the half-written temporary file was removed
    if name == "train_state.pt":  # epoch 2's pair and row were written; Resume will redo epoch 2
        assert torch.load(run / "train_state.pt", weights_only=True)["epoch"] == 1
    else:
        assert [r["epoch"] for r in read_jsonl(run / "metrics.jsonl")] == [1]
        assert load_checkpoint(run / "model").config["epochs"] == 1  # the previous pair still loads …
    assert {f: (run / f).read_bytes() for f in before} == before  # … byte for byte


@pytest.mark.parametrize("name", ["train_state.pt", "model.safetensors", "metrics.jsonl"])
def test_after_a_full_disk_resume_loses_no_epoch(run, monkeypatch, name):
    with monkeypatch.context() as m:
        DiskFull(m, name, skip=1 if name == "metrics.jsonl" else 0)  # (Resume first rewrites metrics.jsonl)
        with pytest.raises(TrainingError, match="No space left on device"):
            train(config(epochs=2), run, resume=True)
    if name == "metrics.jsonl":  # the torn half line is on disk but never read as a row
        assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
        assert [r["epoch"] for r in read_jsonl(run / "metrics.jsonl")] == [1]
    train(config(epochs=3), run, resume=True)  # space freed: Resume
    assert read_status(run)["state"] == "finished"
    assert load_checkpoint(run / "model").config["epochs"] == 3
    rows = (run / "metrics.jsonl").read_text().splitlines()
    assert [r["epoch"] for r in read_jsonl(run / "metrics.jsonl")] == [1, 2, 3] and len(rows) == 3


def test_a_full_disk_that_also_blocks_the_status_still_gives_a_clear_error(run, monkeypatch):
    DiskFull(monkeypatch, "model.safetensors")
    real = training.write_status

    def status_fails_too(run_dir, **fields):
        if fields.get("state") == "failed":
            raise ENOSPC
        real(run_dir, **fields)

    monkeypatch.setattr(training, "write_status", status_fails_too)
    with pytest.raises(TrainingError, match="could not save epoch 2 .*No space left on device"):
        train(config(epochs=2), run, resume=True)


def test_a_full_disk_when_resuming_is_a_message_not_a_traceback(tmp_path, monkeypatch, capsys):
    from diffusion_core.cli import main

    run = tmp_path / "run"
    train(config(epochs=1), run)
    DiskFull(monkeypatch, "status.json")
    code = main(["train", "--resume", str(run), "--epochs", "2", "--quiet"])
    err = capsys.readouterr().err
    assert code in (1, 2) and "No space left on device" in err and "Traceback" not in err


def test_an_unwritable_runs_folder_is_a_message_on_the_train_page(tmp_path, monkeypatch):
    st.cache_resource.clear()
    (tmp_path / "shipped").mkdir()
    monkeypatch.setenv("DIFFUSION_LAB_CHECKPOINTS", str(tmp_path / "shipped"))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(run_status.RUNS_ENV, str(blocker / "runs"))
    at = app("pages/1_Train.py").run()
    no_exceptions(at)
    at.button(key="train_start").click().run()
    no_exceptions(at)
    assert len(errors(at)) == 1
    assert errors(at)[0].startswith("Could not start training: ") and str(blocker / "runs") in errors(at)[0]
    assert "run" not in at.query_params


@pytest.mark.slow
@pytest.mark.skipif(DEBIAN_FASHION_DIR.is_dir(), reason="Fashion-MNIST is installed here (Debian package)")
def test_a_dataset_missing_offline_fails_the_job_with_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFUSION_LAB_DATA", str(tmp_path / "empty-data"))
    run = jobs.start_training({"dataset": "fashion-mnist", "no_download": True, "epochs": 1, "hidden": [4, 4],
                               "kernel_size": 3, "limit": 16, "batch_size": 16})
    run = run_status.wait_for(run.run_id, ("failed", "finished", "died"), timeout=120)
    assert run.state == "failed"
    assert run.message.startswith("Fashion-MNIST is not available here")
    assert "apt-get install dataset-fashion-mnist" in run.message and "empty-data" in run.message
    assert run.checkpoint is None

    st.cache_resource.clear()
    (tmp_path / "shipped").mkdir()
    monkeypatch.setenv("DIFFUSION_LAB_CHECKPOINTS", str(tmp_path / "shipped"))
    at = app("pages/1_Train.py", query={"run": run.run_id}).run()
    no_exceptions(at)
    assert errors(at) == [f"Training failed: {run.message}"]
