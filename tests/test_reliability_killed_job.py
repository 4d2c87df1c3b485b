"""A training process killed with SIGKILL (no clean-up runs): the run directory keeps a loadable last
checkpoint and valid metrics, nothing half-written is read as valid, and `train --resume` finishes. The killed
trainers are real processes; the resumes run the CLI's entry point in the test's process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from diffusion_core.cli import main
from diffusion_core.io.checkpoints import load_checkpoint
from diffusion_core.io.files import read_jsonl
from diffusion_core.services import run_status
from diffusion_core.training.trainer import read_status

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--schedule", "linear", "--T", "50", "--hidden", "4,4", "--kernel-size", "3", "--batch-size", "8",
        "--no-download", "--seed", "0", "--quiet", "--limit", "64"]
# 32 batches per epoch, so that a kill lands inside an epoch
SLOW_EPOCHS = [*TINY, "--limit", "256", "--sample-epochs", "1"]


def cli(*args: str, code: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "diffusion_core", *args]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def metric_lines(run: Path) -> list[str]:
    return (run / "metrics.jsonl").read_text().splitlines() if (run / "metrics.jsonl").exists() else []


def saved_epoch(run: Path) -> int:
    """The epoch of train_state.pt, the file Resume continues from (tensors only: weights_only=True)."""
    if not (run / "train_state.pt").exists():  # killed before the first epoch's state was written
        return 0
    return int(torch.load(run / "train_state.pt", map_location="cpu", weights_only=True)["epoch"])


@pytest.mark.slow
def test_sigkill_mid_epoch_keeps_the_last_checkpoint_and_resume_finishes(tmp_path, capsys):
    run = tmp_path / "run"
    proc = cli("train", "--out", str(run), "--epochs", "3", *SLOW_EPOCHS)
    try:
        deadline = time.monotonic() + 180
        while not metric_lines(run):  # the first epoch is complete: kill inside the second
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "no epoch finished in time"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL  # (not finished before the kill)
    assert read_status(run)["epoch"] < 3

    # every line on disk is a complete JSON row; epochs run 1, 2, … without gaps or repeats
    lines = metric_lines(run)
    rows = [json.loads(line) for line in lines]
    assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1)) and len(rows) >= 1
    assert all(r["loss"] > 0 for r in rows)
    # the checkpoint pair is complete and matches the last metrics row or is one epoch ahead of it
    kept = load_checkpoint(run / "model")
    assert kept.config["epochs"] in (len(rows), len(rows) + 1)
    # Resume continues after train_state.pt's epoch, written after the metrics row: never ahead of the rows
    assert saved_epoch(run) in (len(rows) - 1, len(rows)) and saved_epoch(run) <= kept.config["epochs"]
    # the kill left status "running": the jobs module reports the run as died, with the Resume hint
    assert read_status(run)["state"] == "running"
    info = run_status.read_run("run", root=tmp_path)
    assert info.state == "died" and info.checkpoint == run / "model.safetensors"
    # Resume continues after train_state.pt's epoch; killed before the first one was written, it starts again
    assert info.message == (run_status.DIED_MESSAGE if saved_epoch(run) else run_status.DIED_EARLY_MESSAGE)

    target = 3  # the run's own number of epochs: Resume without --epochs keeps it
    assert main(["train", "--resume", str(run)]) == 0  # the CLI's entry point, in this process
    assert f"epoch {target}/{target}" in capsys.readouterr().out
    status = read_status(run)
    assert status["state"] == "finished" and status["epoch"] == target
    final = load_checkpoint(run / "model")
    assert final.config["epochs"] == target
    epochs = [r["epoch"] for r in read_jsonl(run / "metrics.jsonl")]
    assert epochs == sorted(set(epochs)) and epochs[-1] == target  # no epoch repeated
    assert epochs == list(range(1, target + 1))  # and none missing


def test_half_written_files_from_a_kill_are_never_read_as_valid(tmp_path):
    """What SIGKILL can leave behind: an orphaned temporary file of an atomic write and a torn last metrics
    line. Readers ignore both, and Resume rewrites metrics.jsonl without the torn line."""
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--epochs", "1", *TINY]) == 0
    good = (run / "model.safetensors").read_bytes()
    (run / ".model.safetensors.abc123.tmp").write_bytes(good[: len(good) // 2])  # an interrupted atomic write
    (run / ".model.json.abc123.tmp").write_text('{"format": "diffusion-lab-che')
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 2, "loss": 0.3')  # torn: the writer died inside the line
    assert [r["epoch"] for r in read_jsonl(run / "metrics.jsonl")] == [1]
    assert load_checkpoint(run / "model").config["epochs"] == 1
    assert run_status.read_run("run", root=tmp_path).losses == [(1, pytest.approx(read_jsonl(run / "metrics.jsonl")[0]
                                                                              ["loss"]))]
    assert main(["train", "--resume", str(run), "--epochs", "2", "--quiet"]) == 0
    lines = metric_lines(run)
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]  # every line parses: the torn one is gone
    assert load_checkpoint(run / "model").config["epochs"] == 2


# The trainer, killed after it has written epoch 2's checkpoint and before its metrics line (train_state.pt is
# written after the metrics line, so it still says epoch 1 and Resume redoes epoch 2).
KILL_IN_WINDOW = """
import os, signal, sys
import diffusion_core.training.trainer as training
real = training.append_jsonl
def append_then_die(path, row):
    if row.get("epoch") == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    real(path, row)
training.append_jsonl = append_then_die
from diffusion_core.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_kill_between_checkpoint_and_metrics_loses_no_epoch(tmp_path):
    run = tmp_path / "run"
    proc = cli("train", "--out", str(run), "--epochs", "3", *TINY,
               code=KILL_IN_WINDOW)
    proc.communicate(timeout=180)
    assert proc.returncode == -signal.SIGKILL
    assert load_checkpoint(run / "model").config["epochs"] == 2  # epoch 2's checkpoint was written …
    assert saved_epoch(run) == 1 and [r["epoch"] for r in read_jsonl(run / "metrics.jsonl")] == [1]  # … not its row
    assert main(["train", "--resume", str(run), "--epochs", "3", "--quiet"]) == 0
    assert load_checkpoint(run / "model").config["epochs"] == 3
    assert [r["epoch"] for r in read_jsonl(run / "metrics.jsonl")] == [1, 2, 3]
