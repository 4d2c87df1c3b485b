"""Shipping a run: measured metrics in the checkpoint config and a card with the recompute command."""

import json

import pytest

from diffusion_core.cli import main
from diffusion_core.io.cards import quality_verdict
from diffusion_core.io.checkpoints import load_checkpoint


def test_quality_verdict_applies_the_bar():
    good = {"fid_over_floor": 2.9, "confident_fraction": 0.86, "class_entropy": 2.25, "classes_present": 10}
    assert all(quality_verdict(good).values())
    for key, bad in (("fid_over_floor", 3.1), ("confident_fraction", 0.84), ("class_entropy", 2.1),
                     ("classes_present", 9)):
        verdict = quality_verdict(good | {key: bad})
        assert sum(not ok for ok in verdict.values()) == 1


def test_ship_writes_checkpoint_metrics_and_card(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--schedule", "linear", "--T", "20", "--epochs", "1", "--limit", "32",
                 "--batch-size", "16", "--hidden", "4,4", "--kernel-size", "3", "--no-download", "--quiet"]) == 0
    out = tmp_path / "shipped"
    assert main(["ship", str(run), "--name", "tiny", "--out-dir", str(out), "--n", "200", "--sampler", "ddim",
                 "--steps", "5", "--no-download"]) == 0
    ck = load_checkpoint(out / "tiny")
    m = ck.config["metrics"]
    assert ck.config["name"] == "tiny" and m["n"] == 200 and m["sampler"] == "ddim" and m["steps"] == 5
    assert m["fid"] > m["fid_floor"] > 0 and m["fid_over_floor"] == pytest.approx(m["fid"] / m["fid_floor"])
    assert m["optimizer_steps"] == 2 and "loss" in m  # the run's own metrics are kept
    assert (out / "tiny.metrics.jsonl").read_text() == (run / "metrics.jsonl").read_text()
    card = (out / "tiny.md").read_text()
    assert f"**{m['fid']:.1f}**" in card and "floor" in card and "1 epochs (2 Adam steps)" in card
    assert "python -m diffusion_core evaluate tiny --n 200 --sampler ddim --seed 0 --scale --steps 5" in card
    assert "Against the default-model bar" in card
    capsys.readouterr()
    # the recompute command reproduces the card's FID (same seed, sampler, reference)
    assert main(["evaluate", str(out / "tiny.safetensors"), "--n", "200", "--sampler", "ddim", "--steps", "5",
                 "--seed", "0", "--no-download"]) == 0
    assert json.loads(capsys.readouterr().out)["fid"] == pytest.approx(m["fid"], rel=1e-6)


def test_every_shipped_models_card_recipe_trains_its_config():
    """A card's Recipe line, parsed by the real CLI, gives back the shipped model's architecture, process and
    training settings (init_from aside, what `train` builds is what was shipped)."""
    import json
    import shlex

    from diffusion_core.cli import build_parser
    from diffusion_core.io.cards import train_command
    from diffusion_core.io.files import PROJECT_ROOT
    from diffusion_core.training.options import TRAIN_OPTIONS, train_config

    shipped = [json.loads(p.read_text()) for p in sorted((PROJECT_ROOT / "checkpoints").glob("*.json"))]
    models = [c for c in shipped if "diffusion" in c]
    assert len(models) >= 6
    for config in models:
        argv = shlex.split(train_command(config, "runs/x"))
        assert argv[:4] == ["python", "-m", "diffusion_core", "train"]
        args = build_parser().parse_args(argv[3:])
        built = train_config({k: v for k, v in vars(args).items() if k in TRAIN_OPTIONS}).__dict__
        train = config["training"]
        assert built["model"]["arch"] == config["model"]["arch"], config["name"]
        assert {k: v for k, v in built["model"]["params"].items() if v is not None} == \
            {k: v for k, v in config["model"]["params"].items() if v is not None}, config["name"]
        assert built["diffusion"] == config["diffusion"], config["name"]
        assert (built["epochs"], built["batch_size"], built["seed"]) == \
            (config["epochs"], train["batch_size"], train["seed"]), config["name"]
        assert built["lr"] == pytest.approx(train["lr"]) and built["ema_decay"] == train.get("ema_decay")
        assert (built["warmup"], built["lr_decay"]) == (train.get("warmup", 0), train.get("lr_decay", "none"))


def test_every_shipped_models_card_names_its_recipe_and_machine():
    """#14: each shipped denoiser's card gives the command that trains it and the machine its wall time was
    measured on (the JSON's training.machine, so the app and the card say the same)."""
    import json

    from diffusion_core.io.cards import train_command
    from diffusion_core.io.files import PROJECT_ROOT

    for path in sorted((PROJECT_ROOT / "checkpoints").glob("*.json")):
        config = json.loads(path.read_text())
        if "diffusion" not in config:
            continue
        card = path.with_suffix(".md").read_text()
        machine = config["training"].get("machine")
        assert machine, f"{path.name}: training.machine is missing"
        wall = next(line for line in card.splitlines() if line.startswith("- **Wall time:**"))
        assert f"of training on {machine}" in wall, path.name
        recipe = next(line for line in card.splitlines() if line.startswith("- **Recipe:**"))
        coupling = config["training"].get("coupling")
        if not config["training"].get("init_from") or coupling:  # a reflow starts from its teacher, named
            assert f"`{train_command(config, 'runs/' + config['name'])}`" in recipe, path.name
            assert not coupling or f"--reflow-from {coupling['teacher']}" in recipe, path.name
        else:  # a fine-tuned model names the run its weights started from, then its own command
            assert "--init-from runs/" in recipe, path.name
