"""Memorisation and novelty: nearest training digits, the novelty score on cases with a known answer, and the ideal
denoiser against Tweedie's formula over its training set (and that sampling it reproduces training digits)."""

import shutil

import numpy as np
import pytest
import torch

from diffusion_core.evaluation.classifier import load_classifier
from diffusion_core.evaluation.memorisation import IdealDenoiser, nearest_training, novelty
from diffusion_core.io.data import Dataset
from diffusion_core.io.files import PROJECT_ROOT
from diffusion_core.io.images import to_unit_numpy
from diffusion_core.process import GaussianProcess, SamplerChoice
from diffusion_core.process.schedules import make_schedule, preset_schedule
from diffusion_core.sampling import sample
from diffusion_core.views.memorisation import IDEAL, memorisation_view
from tests.app_support import app, charts, errors, no_exceptions, ship_tiny_model


def digits(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 28, 28)).astype(np.float32)


def test_nearest_training_digits_in_pixel_space_match_brute_force():
    train, queries = digits(50, 0), digits(7, 1)
    idx, dist = nearest_training(queries, train, k=3)
    brute = np.linalg.norm(queries.reshape(7, 1, -1) - train.reshape(1, 50, -1), axis=2)
    assert np.array_equal(idx, np.argsort(brute, axis=1)[:, :3])
    assert np.allclose(dist, np.sort(brute, axis=1)[:, :3], atol=1e-5)
    with pytest.raises(ValueError, match="k must be a whole number from 1 to the training set's size 50"):
        nearest_training(queries, train, k=51)
    with pytest.raises(ValueError, match="space must be one of pixel, feature"):
        nearest_training(queries, train, space="fourier")


def test_a_training_digit_is_its_own_nearest_neighbour_in_feature_space():
    classifier = load_classifier(None)
    train = digits(40, 2)
    idx, dist = nearest_training(train[[3, 17]], train, k=2, space="feature", classifier=classifier)
    assert idx[:, 0].tolist() == [3, 17] and np.allclose(dist[:, 0], 0, atol=1e-3) and (dist[:, 1] > 1e-3).all()


def test_novelty_score_is_near_zero_for_copies_and_one_for_fresh_real_data():
    train, heldout = digits(60, 3), digits(30, 4)
    jitter = 1e-4 * np.random.default_rng(5).standard_normal((30, 28, 28))
    copies = np.clip(train[:30] + jitter, 0, 1).astype(np.float32)
    copied = novelty(copies, train, heldout)
    assert copied["score"] < 0.01 and copied["copies"] == 1.0
    fresh = novelty(heldout, train, heldout)  # generated digits distributed exactly as held-out ones
    assert fresh["score"] == pytest.approx(1.0) and fresh["copies"] <= 1 / 30  # at most the quantile's own
    with pytest.raises(ValueError, match="at least 2 generated and 2 held-out"):
        novelty(copies[:1], train, heldout)


def test_ideal_denoiser_is_tweedies_formula_over_the_training_set():
    """E[x0 | z_t] = (z + (1−ᾱ)∇log p_t(z)) / √ᾱ with p_t the mixture of N(√ᾱ x_i, (1−ᾱ)I) over the training set."""
    g = torch.Generator().manual_seed(0)
    train = torch.rand((6, 1, 4, 4), generator=g, dtype=torch.float64) - 0.5
    sched = make_schedule("linear", 1e-4, 0.02, 100)
    ideal = IdealDenoiser(train, sched.alpha_bars)
    for t in (1, 10, 40, 100):
        ab = sched.alpha_bars[t].double()
        z = (ab.sqrt() * train[2:4] + (1 - ab).sqrt() * torch.randn((2, 1, 4, 4), generator=g,
                                                                  dtype=torch.float64)).requires_grad_(True)
        d2 = ((z.flatten(1)[:, None, :] - ab.sqrt() * train.flatten(1)[None]) ** 2).sum(-1)
        log_p = torch.logsumexp(-d2 / (2 * (1 - ab)), dim=1).sum()
        (score,) = torch.autograd.grad(log_p, z)
        tweedie = (z + (1 - ab) * score) / ab.sqrt()
        x0 = ideal.x0(z.detach(), torch.full((2,), t))
        assert torch.allclose(x0, tweedie.detach(), atol=1e-8), t
        eps = ideal(z.detach().float(), torch.full((2,), t / 100))
        assert torch.allclose(eps.double(), -(1 - ab).sqrt() * score, atol=1e-4)


@pytest.mark.parametrize("sampler", ["ddim", "dpm++2m-sde"])
def test_sampling_the_ideal_denoiser_reproduces_training_digits(sampler):
    train = torch.from_numpy(digits(20, 6)).unsqueeze(1) - 0.5
    process = GaussianProcess(preset_schedule("default"))
    out = sample(process, IdealDenoiser(train, process.schedule.alpha_bars), SamplerChoice(sampler, 20, seed=1), 8,
                 precision="fp32").samples
    _, dist = nearest_training(to_unit_numpy(out), to_unit_numpy(train), k=1)
    assert (dist < 1e-3).all(), dist.ravel()


def test_the_memorisation_view_of_the_ideal_denoiser_finds_the_copies():
    data = torch.from_numpy(digits(40, 7)).unsqueeze(1) - 0.5
    train = Dataset(data[:30], torch.zeros(30, dtype=torch.long), "mnist", "test digits")
    heldout = Dataset(data[30:], torch.zeros(10, dtype=torch.long), "mnist", "test digits")
    view = memorisation_view(None, train, heldout, load_classifier(None), n=6, seed=0)
    assert view.generated.shape == (6, 28, 28) and IDEAL in view.choice
    idx, dist = view.neighbours["pixel"]
    assert idx.shape == (6, 3) and np.allclose(view.generated, view.train[idx[:, 0]], atol=1e-4)
    assert view.novelty["pixel"]["score"] < 0.01 and view.novelty["feature"]["copies"] == 1.0
    with pytest.raises(ValueError, match="draw 2 to 256 samples"):
        memorisation_view(None, train, heldout, load_classifier(None), n=1)


def test_evaluate_shows_the_memorisation_view(tmp_path, monkeypatch):
    shipped = ship_tiny_model(tmp_path, monkeypatch)
    monkeypatch.setenv("DIFFUSION_LAB_RUNS", str(tmp_path / "runs"))
    at = app("pages/6_Evaluate.py").run()
    assert any("needs the shipped classifier" in w.value for w in at.warning)  # none in this folder yet
    for name in ("classifier.safetensors", "classifier.json"):
        shutil.copy(PROJECT_ROOT / "checkpoints" / name, shipped)
    at = app("pages/6_Evaluate.py").run()
    at.selectbox(key="ev_mem_model").set_value(IDEAL)
    at.number_input(key="ev_mem_n").set_value(8)
    at.button(key="ev_mem_run").click().run()
    no_exceptions(at)
    assert not errors(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Novelty · pixels"] == "0.00" and metrics["Copies"] == "100%"
    titles = [f["layout"]["title"]["text"] for f in charts(at)]
    assert "Generated digits and their nearest training digits" in titles and "How far from the training set" in titles
    at.selectbox(key="ev_mem_model").set_value("tiny")
    at.button(key="ev_mem_run").click().run()
    assert float({m.label: m.value for m in at.metric}["Novelty · pixels"]) > 0.5  # an untrained net draws noise
    at.number_input(key="ev_mem_n").set_value(1)
    at.button(key="ev_mem_run").click().run()
    no_exceptions(at)
    assert "Could not compute the memorisation view: Samples must be a whole number from 2 to 256; got 1" in errors(at)
