"""The one contract for starting a run: options (the CLI's flags, the Train page's fields) → TrainConfig."""

from __future__ import annotations

import dataclasses
import json

import pytest

from diffusion_core.cli import build_parser, main
from diffusion_core.training.config import TrainConfig
from diffusion_core.training.options import TRAIN_OPTIONS, parse_key_values, train_config


def test_options_become_the_config_fields_with_its_defaults_for_the_rest():
    config = train_config({"epochs": 3, "schedule": "linear", "T": 50, "lr": 2e-4, "ema": None,
                           "no_download": True, "hidden": [4, 8], "kernel_size": 3, "fid_every": None})
    assert config.diffusion == {"type": "noise", "schedule": {"kind": "linear", "beta1": 1e-4, "beta2": 0.02, "T": 50},
                                "prediction": "eps"}
    assert config.model == {"arch": "cnn", "params": {"hidden": [4, 8], "kernel_size": 3}}
    assert (config.epochs, config.lr, config.ema_decay, config.download) == (3, 2e-4, None, False)
    defaults = TrainConfig()
    assert (config.batch_size, config.seed, config.fid_every, config.dataset) == (
        defaults.batch_size, defaults.seed, defaults.fid_every, defaults.dataset)
    assert train_config({}).diffusion["preset"] == "default" and train_config({}).epochs == defaults.epochs
    assert train_config({}, resume=True).epochs == 1  # resuming keeps the run's own total


def test_degradation_parameters_read_the_same_as_text_or_pairs():
    text = train_config({"degradation": "blur", "degradation_T": 20,
                         "degradation_param": "sigma_max=3.0, kernel_size=9"})
    pairs = train_config({"degradation": "blur", "degradation_T": 20,
                          "degradation_param": [("sigma_max", 3.0), ("kernel_size", 9)]})
    assert text.diffusion == pairs.diffusion
    assert text.diffusion["degradation"]["sigma_max"] == 3.0 and text.diffusion["degradation"]["kernel_size"] == 9
    assert parse_key_values("a=1, b=none, c=x, d=0.5") == [("a", 1), ("b", None), ("c", "x"), ("d", 0.5)]
    with pytest.raises(ValueError, match="must be KEY=VALUE pairs separated by commas; got 'sigma_max'"):
        parse_key_values("sigma_max")


@pytest.mark.parametrize(("options", "message"), [
    ({"preset": "default", "schedule": "linear"}, "either --preset or --schedule"),
    ({"T": 50}, "--T only apply with --schedule"),
    ({"degradation": "blur", "preset": "default"}, "noise schedule .* or --degradation, not both"),
    ({"loss": "l1"}, "need --degradation KIND"),
    ({"degradation": "blur", "degradation_param": "T=5"}, r"set \['T'\] with --degradation"),
    ({"conditional": True}, "--conditional needs a U-Net"),
    ({"schedule": "linear", "beta1": 0.5, "beta2": 0.02}, "beta1 must be smaller than beta2"),
    ({"degradation": "blur", "conditional": True, "arch": "unet"}, "class-conditional model needs Gaussian"),
    ({"epochz": 3}, r"unknown training option\(s\) \['epochz'\]"),
])
def test_each_rule_across_options_is_checked_once_here(options, message):
    with pytest.raises(ValueError, match=message):
        train_config(options)


def test_the_cli_flags_are_exactly_the_options(tmp_path):
    """Every `train` flag but the run's place (--out, --resume, --config, --quiet) is a training option."""
    args = build_parser().parse_args(["train", "--out", str(tmp_path / "r"), "--epochs", "2", "--hidden", "4,4",
                                      "--degradation", "blur", "--degradation-param", "sigma_max=3"])
    given = {k for k in vars(args) if k not in ("command", "out")}
    assert given == {"epochs", "hidden", "degradation", "degradation_param"} <= TRAIN_OPTIONS


def test_train_reads_a_config_file_and_refuses_options_beside_it(tmp_path, capsys):
    config = train_config({"epochs": 1, "schedule": "linear", "T": 5, "hidden": [4, 4], "kernel_size": 3,
                           "batch_size": 16, "limit": 32, "no_download": True, "sample_epochs": [1]})
    path = tmp_path / "train_config.json"
    path.write_text(json.dumps(dataclasses.asdict(config)))
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["diffusion"] == config.diffusion
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "r2"), "--epochs", "3"]) == 2
    assert "--config holds every setting of a new run; drop --epochs" in capsys.readouterr().err
    path.write_text("[1, 2]")
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "r3")]) == 2
    assert "is not a training config" in capsys.readouterr().err


def test_a_recipe_fills_the_options_not_given_and_yields_to_those_that_rule_it_out():
    from diffusion_core.training.recipes import RECIPES

    quick = train_config({"recipe": "quick"})
    for option, field in (("lr", "lr"), ("batch_size", "batch_size"), ("epochs", "epochs"), ("warmup", "warmup"),
                          ("lr_decay", "lr_decay"), ("ema", "ema_decay")):
        assert getattr(quick, field) == RECIPES["quick"][option]
    assert quick.model["arch"] == RECIPES["quick"]["arch"]
    assert quick.diffusion["prediction"] == RECIPES["quick"].get("prediction", "eps")
    mine = train_config({"recipe": "quick", "lr": 5e-4, "epochs": 3})
    assert (mine.lr, mine.epochs, mine.warmup) == (5e-4, 3, RECIPES["quick"]["warmup"])  # given options win
    cold = train_config({"recipe": "quick", "degradation": "mask"})  # no noise target beside a degradation
    assert cold.diffusion["type"] == "cold" and cold.model["arch"] == RECIPES["quick"]["arch"]
    assert train_config({"recipe": "quick", "arch": "cnn"}).model == {"arch": "cnn", "params": {}}
    assert quick.diffusion["schedule"]["kind"] == RECIPES["quick"]["schedule"] == "cosine"
    custom = train_config({"recipe": "quick", "schedule": "linear", "beta2": 0.01})
    assert (custom.diffusion["schedule"]["kind"], custom.diffusion["schedule"]["beta2"]) == ("linear", 0.01)
    preset = train_config({"recipe": "quick", "preset": "model1"})  # a preset rules out the recipe's schedule
    assert preset.diffusion["preset"] == "model1" and preset.diffusion["schedule"]["T"] == 1840
    report = train_config({"recipe": "report"})
    assert (report.model["arch"], report.epochs, report.batch_size, report.lr) == ("cnn", 100, 128, 2e-4)
    with pytest.raises(ValueError, match="recipe must be one of quick, flow, report; got 'fast'"):
        train_config({"recipe": "fast"})
    with pytest.raises(ValueError, match="--recipe starts a new run"):
        train_config({"recipe": "quick"}, resume=True)
