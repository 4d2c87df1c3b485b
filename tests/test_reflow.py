"""Reflow and one-step distillation on images: a flow trained on its teacher's own (noise, sample) pairs
(training/coupling.py), through the CLI, with the pairs checked against the teacher's sampler and the one-step
objective checked by where its training steps land."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from diffusion_core.cli import main
from diffusion_core.io.checkpoints import load_checkpoint
from diffusion_core.process import SamplerChoice
from diffusion_core.sampling import sample_checkpoint
from diffusion_core.services import run_status
from diffusion_core.training.coupling import coupling_dataset
from diffusion_core.training.objectives import objective_from_config
from diffusion_core.training.options import train_config
from tests.app_support import fake_run, stand_in_job, write_checkpoint, write_flow_checkpoint


def reflow(tmp_path, teacher, out: str, *extra: str) -> int:
    return main(["train", "--reflow-from", str(teacher), "--pairs", "64", "--pair-steps", "3", "--epochs", "2",
                 "--batch-size", "32", "--out", str(tmp_path / out), "--quiet", *extra])


def test_the_pairs_are_the_teachers_noise_and_where_its_sampler_takes_it(tmp_path):
    teacher = write_flow_checkpoint(tmp_path, T=50)
    assert reflow(tmp_path, teacher, "reflow", "--seed", "7") == 0
    pairs = load_file(str(tmp_path / "reflow" / "pairs.safetensors"))
    expected = sample_checkpoint(load_checkpoint(teacher), SamplerChoice("flow-heun", 3, seed=7), 64).samples
    torch.testing.assert_close(pairs["x0"], expected, rtol=0, atol=1e-6)  # a sampled image, seed for seed
    assert not torch.allclose(pairs["x0"], pairs["z1"])
    ckpt = load_checkpoint(tmp_path / "reflow" / "model")
    assert ckpt.config["diffusion"] == load_checkpoint(teacher).config["diffusion"]
    assert ckpt.config["training"]["coupling"] == {"teacher": "flow", "pairs": 64, "sampler": "flow-heun",
                                                   "steps": 3, "distil_steps": 0}
    assert ckpt.config["training"]["init_from"] == "flow"
    assert ckpt.config["training"]["data_source"] == "64 (noise, sample) pairs of flow (flow-heun, 3 steps)"


def test_a_two_step_distillation_trains_at_its_grids_two_times(tmp_path):
    """N = 2: every training step at t = 1 or t = ½ (the 2-step Euler grid), about half each; previewed in 2 steps."""
    teacher = write_flow_checkpoint(tmp_path, T=50)
    process = objective_from_config(load_checkpoint(teacher).config["diffusion"], {"distil_steps": 2}).process
    assert process.at_ts == (50, 25) and process.preview_choice(torch.empty(0), 0).steps == 2
    rows = torch.randn(400, 1, 28, 56)
    _, k, _ = process.loss_terms(lambda z, t: z, rows, torch.Generator().manual_seed(0))
    assert set(k.tolist()) == {25, 50} and 150 < int((k == 50).sum()) < 250
    with pytest.raises(ValueError, match="distil_steps must be a whole number from 1 to 8"):
        process.coupled(9)


def test_a_resumed_run_reads_its_pairs_and_refuses_pairs_drawn_another_way(tmp_path, monkeypatch):
    teacher = write_flow_checkpoint(tmp_path, T=50)
    assert reflow(tmp_path, teacher, "reflow") == 0
    run = tmp_path / "reflow"
    before = (run / "pairs.safetensors").read_bytes()
    monkeypatch.setattr("diffusion_core.training.coupling.draw_pairs",
                        lambda *a, **k: pytest.fail("a resumed run drew its pairs again"))
    assert main(["train", "--resume", str(run), "--epochs", "3", "--quiet"]) == 0
    assert (run / "pairs.safetensors").read_bytes() == before
    assert [r["epoch"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())] == [1, 2, 3]
    config = json.loads((run / "config.json").read_text())
    with pytest.raises(ValueError, match="holds pairs drawn another way .* delete it to draw them afresh"):
        coupling_dataset({**config["coupling"], "steps": 4}, 0, run)


def test_the_one_step_distillation_trains_at_t_1_only(tmp_path):
    teacher = write_flow_checkpoint(tmp_path, T=50)
    assert reflow(tmp_path, teacher, "one", "--distil-steps", "1") == 0
    rows = [json.loads(line) for line in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    for row in rows:  # every training step in the last bucket of t/T (t = T)
        assert row["loss_by_t_n"][:-1] == [0] * 9 and row["loss_by_t_n"][-1] == 64
    # the loss at t = 1 is the one-step generator's error against its teacher: ‖(z1 − x0) − v(z1, 1)‖²
    process = objective_from_config(load_checkpoint(teacher).config["diffusion"],
                                    {"distil_steps": 1}).process
    pairs = load_file(str(tmp_path / "one" / "pairs.safetensors"))
    student = load_checkpoint(tmp_path / "one" / "model").model.eval()
    with torch.no_grad():
        loss, k, _ = process.loss_terms(student, torch.cat([pairs["x0"], pairs["z1"]], dim=-1))
        v = student(pairs["z1"], torch.ones(64))
    assert (k == 50).all()
    assert float(loss) == pytest.approx(float((((pairs["z1"] - pairs["x0"]) - v) ** 2).mean()), rel=1e-5)
    assert process.preview_choice(torch.empty(0), 0).steps == 1


def test_reflow_options_are_refused_with_the_reason(tmp_path):
    flow, noise = write_flow_checkpoint(tmp_path), write_checkpoint(tmp_path, "noise")
    with pytest.raises(ValueError, match="this is a noise model \\(train a teacher with --flow first\\)"):
        train_config({"reflow_from": str(noise)})
    with pytest.raises(ValueError, match="--reflow-from trains on the teacher's own process; drop --preset"):
        train_config({"reflow_from": str(flow), "preset": "default"})
    with pytest.raises(ValueError, match="--pairs, --distil-steps shape the pairs of --reflow-from TEACHER"):
        train_config({"pairs": 100, "distil_steps": 1})
    with pytest.raises(ValueError, match="deterministic sampler, one of flow-heun.*got 'flow-sde'"):
        train_config({"reflow_from": str(flow), "pair_sampler": "flow-sde"})
    assert main(["train", "--reflow-from", str(flow), "--pairs", "10", "--out", str(tmp_path / "x")]) == 2


def test_a_reflow_keeps_its_teachers_path_and_may_draw_t_its_own_way(tmp_path):
    """The teacher's path and grid (so sampling is the same), with t drawn as the student asks: a few-step
    student needs v near t = 1, which a logit-normal teacher hardly trained."""
    teacher = write_flow_checkpoint(tmp_path, T=50)  # uniform t
    kept = train_config({"reflow_from": str(teacher)})
    assert kept.diffusion == load_checkpoint(teacher).config["diffusion"]
    own = train_config({"reflow_from": str(teacher), "time_sampling": "logit-normal", "logit_std": 0.5})
    assert own.diffusion == {"type": "flow", "T": 50, "time_sampling": "logit-normal", "logit_mean": 0.0,
                             "logit_std": 0.5}
    from diffusion_core.io.cards import train_command

    meta = {"model": own.model, "diffusion": own.diffusion, "epochs": 3, "training": {
        "coupling": {**own.coupling, "teacher": str(teacher)}, "init_from": str(teacher), "batch_size": 32,
        "lr": 2e-4, "seed": 0}}
    argv = train_command(meta).split()
    assert argv[argv.index("--reflow-from") + 1] == str(teacher) and "--init-from" not in argv
    assert argv[argv.index("--time-sampling"):argv.index("--time-sampling") + 6] == [
        "--time-sampling", "logit-normal", "--logit-mean", "0", "--logit-std", "0.5"]
    assert "--flow" not in argv and "--T" not in argv


def test_a_run_drawing_its_pairs_says_so():
    live = stand_in_job()
    try:
        run_dir = fake_run(run_status.runs_root(), "drawing", live.pid, state=None)
        (run_dir / "status.json").write_text(json.dumps({"state": "drawing", "pid": live.pid, "drawn": 250,
                                                         "pairs": 10000}))
        run = run_status.read_run("drawing")
        assert run.state == "starting" and run.active
        assert run.phase == "the teacher is drawing its (noise, sample) pairs: 250 of 10,000"
    finally:
        live.kill()
        live.wait()
    assert run_status.read_run("drawing").state == "failed"
