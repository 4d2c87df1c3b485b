"""Divergence: a NaN or Inf loss in the middle of an epoch stops the run, marks it failed with the
reason, keeps the last good checkpoint byte for byte, and the Train page shows the reason."""

from __future__ import annotations

import math

import pytest
import streamlit as st

import diffusion_core.training.trainer as training
from diffusion_core.io.checkpoints import load_checkpoint
from diffusion_core.io.files import read_jsonl
from diffusion_core.services import run_status
from diffusion_core.training.config import TrainConfig, TrainingError
from diffusion_core.training.trainer import read_status, train
from tests.app_support import TINY_CNN, app, blobs, no_exceptions


class Diverging:
    """The real objective, whose loss turns into `bad` from the `at`-th batch on (as a too-large learning
    rate eventually does; the seed CNN's LayerNorms keep even lr = 1 finite, so it is injected here)."""

    def __init__(self, objective, bad: float, at: int):
        self.objective, self.bad, self.at, self.calls = objective, bad, at, 0

    def loss(self, model, x, generator, shard=slice(None), y=None):
        self.calls += 1
        loss = self.objective.loss(model, x, generator, shard, y)
        return loss * self.bad if self.calls >= self.at else loss

    def __getattr__(self, name):
        return getattr(self.objective, name)


def diverge(monkeypatch, bad: float, at: int) -> None:
    real = training.objective_from_config
    monkeypatch.setattr(training, "objective_from_config", lambda *cfg: Diverging(real(*cfg), bad, at))


@pytest.fixture(autouse=True)
def _isolated_app(tmp_path, monkeypatch):
    st.cache_resource.clear()
    monkeypatch.setattr(training, "load_dataset", lambda *a, **k: blobs())
    (tmp_path / "shipped").mkdir()
    monkeypatch.setenv("DIFFUSION_LAB_CHECKPOINTS", str(tmp_path / "shipped"))


def config(**kw) -> TrainConfig:
    base = dict(model=TINY_CNN, epochs=3, batch_size=16, lr=2e-3, seed=3, sample_epochs=[], preview_n=4,
                diffusion={"type": "noise", "schedule": {"kind": "linear", "beta1": 1e-4, "beta2": 0.02, "T": 50}})
    return TrainConfig(**(base | kw))


@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_a_non_finite_loss_mid_epoch_fails_the_run_and_the_train_page_says_why(monkeypatch, bad):
    run = run_status.runs_root() / "run-diverged"
    train(config(epochs=1), run)  # one good epoch (3 batches of 16)
    before = {f: (run / f).read_bytes() for f in ("model.safetensors", "model.json", "train_state.pt")}
    diverge(monkeypatch, bad, at=2)  # the second batch of epoch 2
    with pytest.raises(TrainingError) as info:
        train(config(epochs=3), run, resume=True)
    word = "inf" if math.isinf(bad) else "nan"
    expected = (f"loss became {word} at epoch 2, batch 2: training diverged. Lower the learning rate (now 0.002); "
                "the checkpoint of epoch 1 is kept.")
    assert str(info.value) == expected
    status = read_status(run)
    assert status["state"] == "failed" and status["message"] == expected and status["epoch"] == 1
    assert {f: (run / f).read_bytes() for f in before} == before  # nothing of the bad epoch was written
    assert load_checkpoint(run / "model").config["epochs"] == 1
    assert [r["epoch"] for r in read_jsonl(run / "metrics.jsonl")] == [1]

    info = run_status.read_run("run-diverged")
    assert info.state == "failed" and info.message == expected
    at = app("pages/1_Train.py", query={"run": "run-diverged"}).run()
    no_exceptions(at)
    assert [e.value for e in at.error] == [f"Training failed: {expected}"]
    assert at.get("progress")[0].proto.text.startswith("failed · epoch 1/3")
    assert at.button(key="train_resume")  # the kept epoch can be continued
