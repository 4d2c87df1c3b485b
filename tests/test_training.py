"""The trainer: loss falls, run directory contents, exact resume, clean stop, divergence."""

import json
import math

import pytest
import torch

import diffusion_core.training.trainer as training
from diffusion_core.io.checkpoints import load_checkpoint
from diffusion_core.io.data import Dataset
from diffusion_core.io.files import read_jsonl
from diffusion_core.models import build_model
from diffusion_core.process.gaussian import ddpm_loss
from diffusion_core.process.schedules import make_schedule
from diffusion_core.training.config import TrainConfig, TrainingError
from diffusion_core.training.trainer import read_status, train

from .conftest import TINY_CNN


def fake_digits(n=64, seed=0, nan=False):
    """Blobs of random position: learnable structure, no dataset needed."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    cy, cx = torch.randint(8, 20, (n, 1, 1), generator=g).float(), torch.randint(8, 20, (n, 1, 1), generator=g).float()
    img = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 18.0) - 0.5
    if nan:
        img[:] = float("nan")
    return Dataset(images=img.unsqueeze(1), labels=torch.zeros(n, dtype=torch.long), name="mnist", source="fake")


@pytest.fixture
def fake_data(monkeypatch):
    state = {"nan": False}
    monkeypatch.setattr(training, "load_dataset", lambda *a, **k: fake_digits(nan=state["nan"]))
    return state


def tiny_config(**kw):
    base = dict(model=TINY_CNN, epochs=2, batch_size=16, lr=2e-3, seed=3, sample_epochs=[2], preview_n=4,
                diffusion={"type": "noise", "schedule": {"kind": "linear", "beta1": 1e-4, "beta2": 0.02, "T": 50}})
    return TrainConfig(**(base | kw))


def test_algorithm_1_loss_falls_on_a_small_batch():
    torch.manual_seed(0)
    model = build_model(TINY_CNN)
    sched = make_schedule("linear", 1e-4, 0.02, 50)
    x = fake_digits(32).images
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(60):
        loss = ddpm_loss(model, sched, x, torch.Generator().manual_seed(step % 4))  # 4 fixed noise draws
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-8:]) / 8 < 0.6 * sum(losses[:8]) / 8


def test_run_directory_contents(tmp_path, fake_data):
    path = train(tiny_config(ema_decay=0.9), tmp_path / "run")
    run = tmp_path / "run"
    rows = read_jsonl(run / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2] and all(r["loss"] > 0 for r in rows)
    assert rows[1]["sample"] == "samples/epoch_0002.png" and "sample" not in rows[0]
    assert (run / "samples" / "epoch_0002.png").is_file()
    import numpy as np

    previews = np.load(run / "samples" / "epoch_0002.npy")
    assert previews.shape == (4, 28, 28) and previews.min() >= 0 and previews.max() <= 1
    status = read_status(run)
    assert status["state"] == "finished" and status["epoch"] == 2
    ck = load_checkpoint(path)
    assert ck.config["epochs"] == 2 and ck.config["training"]["ema_decay"] == 0.9
    assert json.loads((run / "config.json").read_text())["epochs"] == 2


def test_resume_continues_exactly_where_it_stopped(tmp_path, fake_data):
    train(tiny_config(epochs=2), tmp_path / "straight")
    train(tiny_config(epochs=1), tmp_path / "split")
    train(tiny_config(epochs=2), tmp_path / "split", resume=True)
    a = load_checkpoint(tmp_path / "straight" / "model").model.state_dict()
    b = load_checkpoint(tmp_path / "split" / "model").model.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert [r["epoch"] for r in read_jsonl(tmp_path / "split" / "metrics.jsonl")] == [1, 2]


def test_stop_file_stops_cleanly_and_keeps_the_last_checkpoint(tmp_path, fake_data):
    run = tmp_path / "run"

    def on_batch(epoch, b, nb, loss):
        if epoch == 2 and b == 1:
            (run / "STOP").touch()

    train(tiny_config(epochs=3), run, on_batch=on_batch)
    status = read_status(run)
    assert status["state"] == "stopped" and "epoch 1" in status["message"]
    assert load_checkpoint(run / "model").config["epochs"] == 1
    train(tiny_config(epochs=3), run, resume=True)
    assert read_status(run)["state"] == "finished"


def test_nan_loss_fails_the_run_and_keeps_the_last_good_checkpoint(tmp_path, fake_data):
    run = tmp_path / "run"
    train(tiny_config(epochs=1), run)
    before = (run / "model.safetensors").read_bytes()
    fake_data["nan"] = True
    with pytest.raises(TrainingError, match="diverged"):
        train(tiny_config(epochs=2), run, resume=True)
    status = read_status(run)
    assert status["state"] == "failed" and "Lower the learning rate" in status["message"]
    assert (run / "model.safetensors").read_bytes() == before
    assert load_checkpoint(run / "model").config["epochs"] == 1


@pytest.mark.parametrize(
    "kw, word",
    [({"epochs": 0}, "epochs"), ({"batch_size": 0}, "batch_size"), ({"lr": 0.0}, "lr"), ({"lr": float("inf")}, "lr"),
     ({"seed": -3}, "seed"), ({"ema_decay": 1.0}, "ema_decay"), ({"device": "tpu"}, "device"),
     ({"warmup": -1}, "warmup"), ({"lr_decay": "step"}, "lr_decay must be one of none, cosine"),
     ({"model": {"arch": "mlp"}}, "arch"),
     ({"diffusion": {"type": "noise", "schedule": {"kind": "linear", "beta1": 0.1, "beta2": 0.01, "T": 10}}}, "beta1")],
)
def test_bad_training_parameters(tmp_path, kw, word):
    with pytest.raises(ValueError, match=word):
        train(tiny_config(**kw), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing written for a refused config


def test_unwritable_run_directory_gives_a_clear_error(tmp_path, fake_data):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(TrainingError, match="cannot write the run directory"):
        train(tiny_config(), blocker / "run")


def test_fid_during_training_is_written_and_matches_an_independent_measurement(tmp_path, fake_data):
    import warnings

    from diffusion_core.evaluation.classifier import load_classifier
    from diffusion_core.evaluation.metrics import evaluate_samples, fid_scale
    from diffusion_core.io.data import load_dataset
    from diffusion_core.io.images import to_unit_numpy
    from diffusion_core.training.objectives import objective_from_config
    from diffusion_core.training.precision import with_precision

    cfg = tiny_config(epochs=2, fid_every=1, fid_samples=32)
    train(cfg, tmp_path / "run")
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [r["fid_samples"] for r in rows] == [32, 32] and all(r["fid"] > 0 for r in rows)
    # recompute epoch 2's value from the saved checkpoint: same sampler, seed, reference and precision
    # (auto: bf16 autocast where the CPU has it natively, as the trainer's monitor ran it)
    model = with_precision(load_checkpoint(tmp_path / "run" / "model").model, cfg.precision, "cpu")
    samples = to_unit_numpy(objective_from_config(cfg.diffusion).preview(model, 32, cfg.seed, "cpu"))
    held = to_unit_numpy(load_dataset("mnist", "test", download=False).images)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = evaluate_samples(samples, load_classifier(), held)["fid"]
        real = to_unit_numpy(load_dataset("mnist", "train", download=False).images)
        floor = fid_scale(load_classifier(), held, real, 32, cfg.seed)["floor"]  # as `evaluate --scale` draws it
    assert rows[1]["fid"] == pytest.approx(expected, rel=1e-6)
    assert rows[0]["fid_floor"] == rows[1]["fid_floor"] == pytest.approx(floor, rel=1e-6) and floor < rows[1]["fid"]


def test_fid_is_skipped_with_a_reason_for_other_datasets(tmp_path, fake_data):
    train(tiny_config(epochs=1, fid_every=1, dataset="fashion-mnist"), tmp_path / "run")
    assert "fid" not in read_jsonl(tmp_path / "run" / "metrics.jsonl")[0]
    assert "needs MNIST" in read_status(tmp_path / "run")["message"]


def test_init_from_a_checkpoint_starts_from_its_weights(tmp_path, fake_data):
    first = train(tiny_config(epochs=1), tmp_path / "first")
    cfg = tiny_config(epochs=1, lr=1e-12, init_from=str(first))  # lr ≈ 0: the weights barely move
    second = train(cfg, tmp_path / "second")
    a, b = load_checkpoint(first).model.state_dict(), load_checkpoint(second).model.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="does not fit"):
        train(tiny_config(epochs=1, init_from=str(first), model={"arch": "cnn", "params": {"hidden": [8, 8]}}),
              tmp_path / "third")


def test_ema_warms_up_then_uses_the_configured_decay():
    from diffusion_core.training.optim import ema_decay_at, ema_update

    assert ema_decay_at(0.999, 0) == pytest.approx(0.1) and ema_decay_at(0.999, 90) == pytest.approx(0.91)
    assert ema_decay_at(0.999, 10**6) == 0.999
    ema, model = torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        ema.weight.fill_(0.0)
        model.weight.fill_(1.0)
    ema_update(ema, model, 0.999, step=0)  # θ_ema = 0.1·0 + 0.9·1
    assert ema.weight.item() == pytest.approx(0.9)
    ema_update(ema, model, 0.5, step=10**6)  # θ_ema = 0.5·0.9 + 0.5·1
    assert ema.weight.item() == pytest.approx(0.95)


def test_learning_rate_warms_up_linearly_then_falls_as_a_half_cosine():
    lr_at = training.lr_at
    assert [lr_at(1.0, s, 100, warmup=4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert lr_at(2.0, 0, 100, decay="cosine") == 2.0 and lr_at(2.0, 50, 100, decay="cosine") == pytest.approx(1.0)
    assert lr_at(2.0, 100, 100, decay="cosine") == pytest.approx(0.0, abs=1e-12)
    assert lr_at(1.0, 1, 100, warmup=4, decay="cosine") == pytest.approx(0.5 * 0.5 * (1 + math.cos(math.pi / 100)))


def test_a_run_follows_its_learning_rate_schedule_and_resumes_on_it(tmp_path, fake_data):
    """64 images in batches of 16: 4 steps an epoch. The optimiser's last rate is the schedule's at step 7 of 8,
    and a run killed after its first epoch and resumed ends on exactly the same weights."""
    config = dict(epochs=2, lr=1e-2, warmup=3, lr_decay="cosine")
    train(tiny_config(**config), tmp_path / "straight")
    state = torch.load(tmp_path / "straight" / "train_state.pt", weights_only=True)
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(training.lr_at(1e-2, 7, 8, 3, "cosine"))
    def kill(report):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(**config), tmp_path / "split", on_epoch=kill)
    train(tiny_config(epochs=1), tmp_path / "split", resume=True)  # the run's own config and total
    a = load_checkpoint(tmp_path / "straight" / "model").model.state_dict()
    b = load_checkpoint(tmp_path / "split" / "model").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert load_checkpoint(tmp_path / "straight" / "model").config["training"]["lr_decay"] == "cosine"
