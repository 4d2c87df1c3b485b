"""The DDPM variational bound in bits per dimension: its terms against closed forms for a single training image
with the exact denoiser, its estimate against the exact sum, the bound against the true likelihood of Gaussian data,
and the Evaluate page."""

from __future__ import annotations

import json
import math

import pytest
import torch
from scipy.stats import norm

from diffusion_core.evaluation.likelihood import HALF_BIN, strata, variational_bound
from diffusion_core.process import ColdProcess, GaussianProcess
from diffusion_core.process.degradations import make_degradation
from diffusion_core.process.schedules import make_schedule, preset_schedule
from tests.app_support import app, errors, no_exceptions, ship_tiny_model

from .test_samplers import GaussianOracleEps, OracleEps

LN2 = math.log(2)


@pytest.fixture(scope="module")
def single_image():
    sched = make_schedule("linear", 1e-4, 0.02, 200)
    x_star = torch.randint(0, 256, (1, 1, 28, 28), generator=torch.Generator().manual_seed(1)).float() / 255 - 0.5
    return sched, x_star, OracleEps(x_star, sched)


def test_each_term_is_its_closed_form_for_one_image_and_the_exact_denoiser(single_image):
    """With the data one image x*, the exact denoiser's reverse mean is q's for t ≥ 2, so L_{t−1} =
    ½(log β/β̃ + β̃/β − 1) per pixel; L_T is the KL of N(√ᾱ_T x*, 1 − ᾱ_T) from N(0, 1); the decoder is the mass of
    x*'s pixel level under N(μ_θ(z_1), β_1), here from scipy's normal CDF on the same z_1."""
    sched, x_star, oracle = single_image
    out = variational_bound(GaussianProcess(sched), oracle, x_star, t_samples=None, seed=0)
    b, ab, x, D = sched.betas.double(), sched.alpha_bars.double(), x_star.double().flatten(), 784
    prior = 0.5 * ((1 - ab[-1]) + ab[-1] * x**2 - 1 - torch.log(1 - ab[-1])).sum().item()
    kl = sum(0.5 * (math.log(b[t] / ((1 - ab[t - 1]) / (1 - ab[t]) * b[t])) + (1 - ab[t - 1]) / (1 - ab[t]) - 1)
             for t in range(2, 201)) * D
    eps = torch.randn(x_star.shape, generator=torch.Generator().manual_seed(0)).double().flatten()  # z_1's draw
    z1 = ab[1].sqrt() * x + (1 - ab[1]).sqrt() * eps
    eps_hat = (z1 - ab[1].sqrt() * x) / (1 - ab[1]).sqrt()
    mean1 = ((z1 - b[1] / (1 - ab[1]).sqrt() * eps_hat) / (1 - b[1]).sqrt()).tolist()
    sd, levels = math.sqrt(b[1]), x.tolist()
    decoder = 0.0
    for v, m in zip(levels, mean1, strict=True):
        lo = -math.inf if v < -0.5 + HALF_BIN else (v - HALF_BIN - m) / sd
        hi = math.inf if v > 0.5 - HALF_BIN else (v + HALF_BIN - m) / sd
        decoder -= math.log(norm.cdf(hi) - norm.cdf(lo))
    terms = out["terms"]
    assert terms["prior L_T"] == pytest.approx(prior / (D * LN2), rel=1e-9)
    assert terms["diffusion Σ L_t−1"] == pytest.approx(float(kl) / (D * LN2), rel=1e-5)  # float32 ε̂
    assert terms["decoder L_0"] == pytest.approx(decoder / (D * LN2), rel=1e-3)
    assert out["bpd"] == pytest.approx(sum(terms.values()), rel=1e-12)
    assert sum(out["by_t"]) == pytest.approx(terms["diffusion Σ L_t−1"], rel=1e-9)


def test_the_estimate_from_a_few_timesteps_agrees_with_the_exact_sum(single_image):
    sched, x_star, oracle = single_image
    batch = x_star.repeat(32, 1, 1, 1)  # the same z_1 draws (the decoder) in every call: seed 0
    exact = variational_bound(GaussianProcess(sched), oracle, batch, t_samples=None)["bpd"]
    for t_samples in (10, 40):
        est = variational_bound(GaussianProcess(sched), oracle, batch, t_samples=t_samples)
        assert abs(est["bpd"] - exact) < 3 * est["se"] + 1e-4, (t_samples, est["bpd"], est["se"], exact)
    assert strata(200, None)[:2] == [(2, 3), (3, 4)] and strata(200, 10)[0] == (2, 3)  # small t: single
    assert sum(hi - lo for lo, hi in strata(200, 10)) == 199


def test_for_gaussian_data_the_bound_lies_just_above_the_true_likelihood():
    """Pixels N(0, 0.1²), quantised to the 256 levels: the exact denoiser's bound is at least the true
    −log p(x) (continuous density × level width) and within 0.3 bits of it at T = 1000."""
    s = 0.1
    sched = preset_schedule("default")
    x = (s * torch.randn((32, 1, 28, 28), generator=torch.Generator().manual_seed(5))).clamp(-0.5, 0.5)
    x = torch.round((x + 0.5) * 255) / 255 - 0.5
    progress = []
    out = variational_bound(GaussianProcess(sched), GaussianOracleEps(0.0, s, sched), x, t_samples=50,
                            on_progress=lambda i, n: progress.append((i, n)))
    assert progress[-1][0] == progress[-1][1] == len(progress) > 1  # the page's progress bar reaches the end
    true = (0.5 * math.log(2 * math.pi * s * s) + x.double() ** 2 / (2 * s * s) + math.log(255)).mean().item() / LN2
    assert true - 3 * out["se"] < out["bpd"] < true + 0.3


def test_bad_input_is_refused():
    sched = make_schedule("linear", 1e-4, 0.02, 20)
    x = torch.zeros(2, 1, 28, 28)
    with pytest.raises(ValueError, match="t_samples must be a whole number from 1 to T − 1 = 19"):
        variational_bound(GaussianProcess(sched), GaussianOracleEps(0, 0.1, sched), x, t_samples=0)
    with pytest.raises(ValueError, match="the variational bound is for noise models; this is a cold model"):
        variational_bound(ColdProcess(make_degradation("blur", 10)), GaussianOracleEps(0, 0.1, sched), x)


def test_evaluate_computes_it_for_the_noise_models(tmp_path, monkeypatch):
    ship_tiny_model(tmp_path, monkeypatch)
    monkeypatch.setenv("DIFFUSION_LAB_RUNS", str(tmp_path / "runs"))
    at = app("pages/6_Evaluate.py").run()
    at.button(key="ev_bound").click().run()
    no_exceptions(at)
    assert errors(at) == []
    table = next(d.value for d in at.dataframe if "bits/dim" in d.value.columns)
    assert list(table["model"]) == ["tiny"] and table["bits/dim"][0] > 0 and table["± SE"][0] > 0
    fig = json.loads(at.get("plotly_chart")[-1].proto.spec)
    assert fig["layout"]["title"]["text"] == "The bound's diffusion terms by noise level"
