"""The loss by noise level: recorded by the trainer per epoch, computed on held-out digits against the known answer
for Gaussian data, drawn as a heat strip and curves, and shown on the Train and Evaluate pages."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from diffusion_core.evaluation.noise_levels import heldout_loss_by_t
from diffusion_core.figures import heldout_loss_figure, loss_by_t_strip_figure
from diffusion_core.io.files import read_jsonl
from diffusion_core.process import GaussianProcess
from diffusion_core.process.schedules import preset_schedule
from diffusion_core.training import trainer as training
from diffusion_core.training.objectives import LOSS_BUCKETS
from diffusion_core.training.trainer import train
from tests.app_support import app, errors, fake_run, no_exceptions, ship_tiny_model

from .test_samplers import GaussianOracleEps
from .test_training import fake_digits, tiny_config


def test_the_trainer_records_the_loss_by_noise_level_each_epoch(tmp_path, monkeypatch):
    monkeypatch.setattr(training, "load_dataset", lambda *a, **k: fake_digits())
    train(tiny_config(), tmp_path / "run")
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    for row in rows:
        means, counts = row["loss_by_t"], row["loss_by_t_n"]
        assert len(means) == len(counts) == LOSS_BUCKETS and sum(counts) == len(fake_digits())
        weighted = sum(m * c for m, c in zip(means, counts, strict=True) if c) / sum(counts)
        assert weighted == pytest.approx(row["loss"], rel=1e-5)  # the epoch's loss, split by t/T
        assert all((m is None) == (c == 0) for m, c in zip(means, counts, strict=True))


def test_heldout_loss_of_the_exact_denoiser_is_the_posterior_variance_of_eps():
    """Gaussian data (pixels N(μ, s²)) and the exact E[ε | z_t]: the loss at t is Var(ε | z_t) = a²s²/(a²s² + b²)."""
    mu, s = 0.1, 0.2
    sched = preset_schedule("default")
    images = mu + s * torch.randn((64, 1, 28, 28), generator=torch.Generator().manual_seed(123))  # ≠ the noise seed
    progress = []
    out = heldout_loss_by_t(GaussianProcess(sched), GaussianOracleEps(mu, s, sched), images, points=8,
                            on_progress=lambda i, n: progress.append((i, n)))
    assert progress == [(i, 8) for i in range(1, 9)]  # what the page's progress bar shows
    assert out["t"][0] == 1 and out["t"][-1] == 1000 and len(out["t"]) == 8 and out["n"] == 64
    for t, loss, se in zip(out["t"], out["loss"], out["se"], strict=True):
        ab = float(sched.alpha_bars[t])
        assert loss == pytest.approx(ab * s**2 / (ab * s**2 + 1 - ab), abs=4 * se + 1e-4), t
    assert out["loss"][0] > 0.9 and out["loss"][-1] < 0.01  # ε is hardest to tell from an almost clean z_t
    with pytest.raises(ValueError, match="points must be a whole number from 2 to 100"):
        heldout_loss_by_t(GaussianProcess(sched), GaussianOracleEps(mu, s, sched), images, points=1)


def test_the_figures_draw_what_they_are_given():
    rows = [{"epoch": 1, "loss_by_t": [0.1, None, 0.01]}, {"epoch": 2, "loss_by_t": [0.05, 0.02, 0.01]},
            {"epoch": 3, "loss": 0.1}]
    heat = loss_by_t_strip_figure(rows).data[0]
    assert list(heat.y) == [1, 2] and heat.z[0][1] is None and heat.z[1][0] == pytest.approx(np.log10(0.05))
    with pytest.raises(ValueError, match="no rows with a loss by noise level"):
        loss_by_t_strip_figure([{"epoch": 1, "loss": 0.1}])
    fig = heldout_loss_figure({"m": {"t_over_T": [0.1, 1.0], "loss": [0.5, 0.01], "se": [0.01, 0.001]}})
    assert list(fig.data[0].y) == [0.5, 0.01] and list(fig.data[0].error_y.array) == [0.01, 0.001]


def test_the_train_and_evaluate_pages_show_it(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    ship_tiny_model(tmp_path, monkeypatch)
    monkeypatch.setenv("DIFFUSION_LAB_RUNS", str(runs))
    run_dir = fake_run(runs, "run-a", 0, "finished", epoch=2, epochs=2, losses=(0.2, 0.1))
    rows = [{"epoch": e, "loss": loss, "loss_by_t": [loss * 3, loss, loss / 3]} for e, loss in ((1, 0.2), (2, 0.1))]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    train_page = app("pages/1_Train.py", query={"run": "run-a"}).run()
    no_exceptions(train_page)
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in train_page.get("plotly_chart")]
    assert "Training loss by noise level" in titles

    evaluate = app("pages/6_Evaluate.py").run()
    no_exceptions(evaluate)
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in evaluate.get("plotly_chart")]
    assert "Training loss by noise level · run-a" in titles
    evaluate.button(key="ev_heldout").click().run()
    no_exceptions(evaluate)
    assert errors(evaluate) == []
    held = [json.loads(c.proto.spec) for c in evaluate.get("plotly_chart")
            if json.loads(c.proto.spec)["layout"]["title"]["text"] == "Held-out loss by noise level"]
    assert [t["name"] for t in held[0]["data"]] == ["tiny"]  # the run has no checkpoint: only the shipped model
    assert len(held[0]["data"][0]["x"]) == 20
