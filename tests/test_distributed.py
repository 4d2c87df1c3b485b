"""torchrun with two CPU processes (gloo) gives the same model as one process with the same global batch."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from diffusion_core.io.checkpoints import load_checkpoint
from diffusion_core.io.files import read_jsonl
from diffusion_core.training.distributed import Distributed

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["train", "--schedule", "linear", "--T", "50", "--epochs", "2", "--limit", "40", "--batch-size", "16",
        "--hidden", "4,4", "--kernel-size", "3", "--no-download", "--quiet", "--sample-epochs", "2", "--ema", "0.9",
        "--lr", "1e-3", "--precision", "fp32"]  # exact gradient averaging is a float32 claim: bf16 rounds per shard


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_shards_cover_the_batch_without_overlap():
    for batch in (16, 8, 5, 1):
        parts = [Distributed(r, 3).shard(batch) for r in range(3)]
        covered = [i for p in parts for i in range(batch)[p]]
        assert covered == list(range(batch))
        assert max(p.stop - p.start for p in parts) - min(p.stop - p.start for p in parts) <= 1


@pytest.mark.extended  # (28 s: torchrun with two gloo processes; the sharding above is checked in-process)
def test_two_gloo_processes_match_one_process(tmp_path):
    env = os.environ | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "diffusion_core", *ARGS, "--out", tmp_path / "one"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", str(free_port()), "-m", "diffusion_core", *ARGS, "--out", tmp_path / "two"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stdout + two.stderr
    status = json.loads((tmp_path / "two" / "status.json").read_text())
    assert status["state"] == "finished" and status["world_size"] == 2
    # the last batch of each epoch (40 = 16 + 16 + 8) is split 4 + 4 and still averaged correctly
    a = load_checkpoint(tmp_path / "one" / "model").model.state_dict()
    b = load_checkpoint(tmp_path / "two" / "model").model.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    la = [r["loss"] for r in read_jsonl(tmp_path / "one" / "metrics.jsonl")]
    lb = [r["loss"] for r in read_jsonl(tmp_path / "two" / "metrics.jsonl")]
    assert len(lb) == 2 and all(abs(x - y) < 1e-5 for x, y in zip(la, lb, strict=True))  # rank 0 logs once
