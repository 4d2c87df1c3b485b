"""Shared fixtures: tiny models and checkpoints, isolated data/run/checkpoint folders."""

from __future__ import annotations

import pytest
import torch

from diffusion_core.checkpoints import save_checkpoint
from diffusion_core.models import build_model

TINY_CNN = {"arch": "cnn", "params": {"hidden": [4, 4], "kernel_size": 3, "time_embed_dim": 8}}


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    """Keep every test away from the user's data, runs and shipped checkpoints."""
    monkeypatch.setenv("DIFFUSION_LAB_RUNS", str(tmp_path_factory.mktemp("runs")))
    monkeypatch.setenv("DIFFUSION_LAB_DATA", str(tmp_path_factory.mktemp("data")))
    torch.manual_seed(0)


@pytest.fixture
def tiny_noise_checkpoint(tmp_path):
    """A saved tiny CNN noise model (T = 20)."""
    torch.manual_seed(1)
    model = build_model(TINY_CNN)
    config = {"model": TINY_CNN, "diffusion": {"type": "noise", "schedule": {
        "kind": "linear", "beta1": 1e-4, "beta2": 0.02, "T": 20}}, "dataset": "mnist", "epochs": 1}
    return save_checkpoint(tmp_path / "tiny", model, config)
