"""The command line refuses every bad number in one line before doing any work, and shows how far long
sampling has got (a bar on stderr over the sampler's steps; --quiet silences it)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusion_core.cli import build_parser, main
from diffusion_core.cli.arguments import _key_value
from diffusion_core.io.checkpoints import load_checkpoint, save_checkpoint
from diffusion_core.models import build_model
from diffusion_core.process.degradations import make_degradation
from diffusion_core.samplers import sampler_spec
from diffusion_core.sampling import SamplerChoice, checkpoint_frames, sample_checkpoint
from tests.app_support import ROOT, TINY_CNN, write_checkpoint, write_conditional_checkpoint


def refused(err: str, flag: str, bad: str) -> None:
    """One line naming the flag, its allowed values and what was given; no traceback."""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: argument {flag}: must be "), err
    assert re.search(r"between -?\d+ and \d+|with -?[\d.]+ [<≤] value|below 2\*\*63", lines[0]), err  # the range
    assert f"got {bad!r}" in lines[0], err


# ---------------------------------------------------------------- the README's examples, mistyped

def readme_examples() -> list[list[str]]:
    """The argument lists of the `python -m diffusion_core` commands in the README's Command line section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Command line", 1)[1].split("\n## ", 1)[0]
    return [shlex.split(line.split("-m diffusion_core ", 1)[1]) for line in section.splitlines()
            if "-m diffusion_core " in line and not line.lstrip().startswith("#")]


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


ZERO_ALLOWED = {"--seed", "--digit", "--guidance", "--eta", "--fid-every"}
README_CASES = [
    pytest.param(argv, i, bad, id=f"{argv[0]} {argv[i]} {bad}")
    for argv in readme_examples()
    for i in range(1, len(argv))
    if argv[i].startswith("--") and i + 1 < len(argv) and is_number(argv[i + 1])
    for bad in ["-3", "abc", "9" * 20, "nan", "1e9x"] + ([] if argv[i] in ZERO_ALLOWED else ["0"])
]


def test_the_readme_has_numeric_examples_for_the_main_commands():
    commands = {p.values[0][0] for p in README_CASES}
    flags = {p.values[0][p.values[1]] for p in README_CASES}
    assert {"train", "sample", "evaluate"} <= commands
    assert {"--n", "--steps", "--seed", "--epochs", "--T", "--ema", "--digit", "--guidance"} <= flags


@pytest.mark.parametrize("argv, i, bad", README_CASES)
def test_readme_example_with_a_mistyped_number_is_refused(tmp_path, monkeypatch, capsys, argv, i, bad):
    monkeypatch.chdir(tmp_path)  # the examples' relative run directories would land here
    argv = list(argv)
    argv[i + 1] = bad
    assert main(argv) == 2
    out, err = capsys.readouterr()
    refused(err, argv[i], bad)
    assert out == "" and list(tmp_path.iterdir()) == []  # refused before anything was done


# ---------------------------------------------------------------- every numeric flag of every command

BASE = {"train": ["train", "--out", "{tmp}/run"], "sample": ["sample", "{ckpt}"], "evaluate": ["evaluate", "{ckpt}"],
        "ship": ["ship", "{tmp}", "--name", "x"], "figures": ["figures", "--out", "{tmp}/figs"],
        "train-classifier": ["train-classifier", "--out", "{tmp}/c"], "info": ["info"],
        "train-noisy-classifier": ["train-noisy-classifier", "--out", "{tmp}/n"], "lessons": ["lessons", "list"]}
FLAG_CASES = [
    ("train", "--epochs", "0"), ("train", "--batch-size", "0"), ("train", "--lr", "0"), ("train", "--lr", "nan"),
    ("train", "--T", "0"), ("train", "--beta1", "2"), ("train", "--beta2", "-0.1"), ("train", "--limit", "0"),
    ("train", "--label-dropout", "1.5"), ("train", "--ema", "1.5"), ("train", "--ema", "1"),
    ("train", "--snr-gamma", "0"), ("train", "--warmup", "-1"),
    ("train", "--fid-samples", "0"), ("train", "--fid-every", "-1"), ("train", "--seed", "-1"),
    ("train", "--degradation-T", "0"), ("train", "--kernel-size", "0"), ("train", "--base-channels", "100000"),
    ("train", "--hidden", "4,0"), ("train", "--hidden", "4,x"), ("train", "--sample-epochs", "-1"),
    ("sample", "--n", "-5"), ("sample", "--n", "abc"), ("sample", "--n", "1e9"), ("sample", "--n", "4097"),
    ("sample", "--steps", "0"), ("sample", "--steps", "-3"), ("sample", "--eta", "2"), ("sample", "--eta", "nan"),
    ("sample", "--rho", "0"), ("sample", "--churn", "-1"), ("evaluate", "--rho", "-7"), ("evaluate", "--churn", "1e9"),
    ("ship", "--rho", "nan"), ("ship", "--churn", "-0.5"),
    ("train", "--logit-mean", "4"), ("train", "--logit-std", "0"), ("sample", "--flow-noise", "-0.1"),
    ("train", "--pairs", "10"), ("train", "--pair-steps", "0"), ("train", "--distil-steps", "9"),
    ("evaluate", "--flow-noise", "3"), ("ship", "--flow-noise", "inf"),
    ("sample", "--seed", "-1"), ("sample", "--digit", "12"), ("sample", "--digit", "-2"),
    ("sample", "--guidance", "-1"), ("sample", "--guidance", "inf"),
    ("evaluate", "--n", "0"), ("evaluate", "--steps", "1.5"), ("evaluate", "--eta", "-1"),
    ("evaluate", "--seed", "x"), ("evaluate", "--digit", "10"), ("evaluate", "--guidance", "21"),
    ("ship", "--n", "0"), ("ship", "--steps", "-3"), ("ship", "--eta", "nan"), ("ship", "--seed", "1e3"),
    ("ship", "--digit", "-5"), ("ship", "--guidance", "-0.5"),
    ("figures", "--n", "0"), ("figures", "--steps", "0"), ("figures", "--seed", "-1"),
    ("figures", "--real-n", "0"), ("figures", "--fid-floor", "-1"), ("figures", "--fid-floor", "nan"),
    ("train-classifier", "--epochs", "0"), ("train-classifier", "--batch-size", "-64"),
    ("train-classifier", "--lr", "0"), ("train-classifier", "--seed", "-1"), ("train-classifier", "--val-size", "0"),
    ("train-classifier", "--limit", "1"),
    ("train-noisy-classifier", "--epochs", "0"), ("train-noisy-classifier", "--batch-size", "0"),
    ("train-noisy-classifier", "--lr", "2"), ("train-noisy-classifier", "--seed", "-1"),
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A tiny T = 20 checkpoint: were a bad value let through, the command would end quickly (and fail)."""
    return write_checkpoint(tmp_path_factory.mktemp("ckpt"), T=20)


@pytest.mark.parametrize("command, flag, bad", FLAG_CASES)
def test_every_numeric_flag_refuses_a_bad_value_in_one_line(tmp_path, monkeypatch, capsys, tiny, command, flag,
                                                            bad):
    monkeypatch.chdir(tmp_path)  # where sample's default ./samples would go
    argv = [a.format(tmp=tmp_path, ckpt=tiny) for a in BASE[command]] + [flag, bad]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    refused(err, flag, bad)
    assert out == "" and sorted(tmp_path.iterdir()) == []


def test_the_cases_cover_every_numeric_flag_of_every_command():
    """A flag whose value is converted (a number, a list of numbers) must have a bad-value case above."""
    subcommands = next(a for a in build_parser()._actions if a.dest == "command").choices
    assert set(subcommands) == set(BASE)
    converted = {(name, a.option_strings[0]) for name, sub in subcommands.items() for a in sub._actions
                 if a.option_strings and a.type not in (None, Path, str, _key_value)}
    assert converted == {(c, f) for c, f, _ in FLAG_CASES}


def test_a_real_process_refuses_a_negative_count_in_one_line():
    r = subprocess.run([sys.executable, "-m", "diffusion_core", "sample", "default-unet", "--n", "-5"],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 2 and r.stdout == ""
    refused(r.stderr, "--n", "-5")
    assert "between 1 and 4096" in r.stderr


def test_accepted_values_reach_the_command():
    args = build_parser().parse_args(["sample", "x", "--n", "7", "--eta", "0.5", "--digit", "-1", "--guidance", "0",
                                      "--seed", str(2**63 - 1), "--steps", "3"])
    assert (args.n, args.eta, args.digit, args.guidance, args.seed, args.steps) == (7, 0.5, -1, 0.0, 2**63 - 1, 3)
    args = build_parser().parse_args(["train", "--hidden", "4, 8", "--ema", "0.999", "--label-dropout", "0"])
    assert args.hidden == [4, 8] and args.ema == 0.999 and args.label_dropout == 0.0


# ---------------------------------------------------------------- limits that depend on the checkpoint

def cold_checkpoint(folder: Path, T: int = 10) -> Path:
    blur = make_degradation("blur", T)
    config = {"model": TINY_CNN, "diffusion": {"type": "cold", "degradation": blur.config(), "loss": "l2"},
              "dataset": "mnist", "epochs": 1}
    torch.manual_seed(1)
    return save_checkpoint(Path(folder) / "blur", build_model(TINY_CNN), config)


@pytest.mark.parametrize("kind, args, message", [
    ("noise", ["--sampler", "ddim", "--steps", "21"], "error: steps must be an integer between 1 and T=20; got 21"),
    ("noise", ["--sampler", "dpm++2m-sde", "--steps", "1000"], "between 1 and T=20; got 1000"),
    ("noise", ["--sampler", "ancestral", "--steps", "5"], "the ancestral sampler takes all T=20 steps"),
    ("cold", ["--sampler", "naive", "--steps", "11", "--start", "black"], "between 1 and T=10; got 11"),
])
def test_steps_above_the_checkpoints_T_are_refused_in_one_line(tmp_path, capsys, kind, args, message):
    ckpt = write_checkpoint(tmp_path, T=20) if kind == "noise" else cold_checkpoint(tmp_path, T=10)
    assert main(["sample", str(ckpt), "--out", str(tmp_path / "s"), *args]) == 2  # not --quiet: no bar started
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "s.npy").exists()


def test_a_conditional_model_checks_n_seed_and_digit_before_building_labels(tmp_path):
    ckpt = load_checkpoint(write_conditional_checkpoint(tmp_path))
    for n, choice, message in ((-5, {}, "number of samples"), (0, {"digit": 3}, "number of samples"),
                               (5000, {}, "number of samples"), (16, {"seed": -1}, "seed must be"),
                               (16, {"digit": 12}, "digit must be a class 0..9")):
        with pytest.raises(ValueError, match=message):
            checkpoint_frames(ckpt, SamplerChoice("ddim", 2, **choice), n)
        with pytest.raises(ValueError, match=message):
            sample_checkpoint(ckpt, SamplerChoice("ddim", 2, **choice), n)


# ---------------------------------------------------------------- progress

@pytest.mark.parametrize("kind, sampler, steps", [
    ("noise", "ancestral", None), ("noise", "ddim", 7), ("noise", "dpm++2m", 5), ("noise", "dpm++2m-sde", None),
    ("cold", "improved", None), ("cold", "naive", 4), ("cold", "direct", None),
])
def test_step_count_is_the_number_of_steps_a_run_takes(tmp_path, kind, sampler, steps):
    ckpt = load_checkpoint(write_checkpoint(tmp_path, T=20) if kind == "noise" else cold_checkpoint(tmp_path, T=10))
    seen, start = [], "black" if kind == "cold" else None  # a cold model from its black start, noise from noise
    sample_checkpoint(ckpt, SamplerChoice(sampler, steps, start=start), n=2, on_step=lambda f: seen.append(f.t))
    assert seen[-1] == 0 and all(t > 0 for t in seen[:-1])  # on_step sees every frame, the result last
    assert ckpt.process.step_count(SamplerChoice(sampler, steps, start=start)) == len(seen) - 1
    expected = {"ancestral": 20, "dpm++2m-sde": sampler_spec("dpm++2m-sde").default_steps, "improved": 10, "direct": 1}
    assert len(seen) - 1 == (steps or expected[sampler])


def final_bar(err: str, desc: str) -> str:
    """The last rendering of the bar labelled `desc` (tqdm redraws it after carriage returns)."""
    return [line for line in re.split(r"[\r\n]+", err) if line.startswith(desc)][-1]


@pytest.mark.parametrize("sampler, steps, total", [("ancestral", None, 20), ("ddim", 7, 7)])
def test_sample_shows_a_bar_over_the_sampler_steps_unless_quiet(tmp_path, capsys, sampler, steps, total):
    ckpt = write_checkpoint(tmp_path, T=20)
    extra = ["--steps", str(steps)] if steps else []
    assert main(["sample", str(ckpt), "--n", "3", "--sampler", sampler, "--out", str(tmp_path / "a"), *extra]) == 0
    out, err = capsys.readouterr()
    bar = final_bar(err, f"tiny ({sampler}): ")
    assert "100%" in bar and f" {total}/{total} " in bar and "wrote" in out, err
    assert main(["sample", str(ckpt), "--n", "3", "--sampler", sampler, "--out", str(tmp_path / "b"), *extra,
                 "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))  # the bar changes nothing


@pytest.mark.parametrize("command", ["evaluate", "figures"])
def test_evaluate_and_figures_show_the_bar_when_they_sample(tmp_path, capsys, command):
    ckpt = str(write_checkpoint(tmp_path, T=20))
    argv = (["evaluate", ckpt] if command == "evaluate" else ["figures", "--out", str(tmp_path / "f"),
                                                             "--checkpoints", ckpt, "--real-n", "50"])
    argv += ["--n", "4", "--sampler", "dpm++2m", "--steps", "3", "--no-download"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert " 3/3 " in final_bar(err, "tiny (dpm++2m): "), err
    assert main([*argv, "--quiet"]) == 0
    assert "3/3" not in capsys.readouterr().err
