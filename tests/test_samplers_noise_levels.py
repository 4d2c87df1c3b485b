"""Samplers in noise-level space and where their steps go: Euler, Heun (with churn), Euler-ancestral, a
predictor–corrector, and every sampler on every spacing — against Gaussian data with the exact ε, their order
of accuracy, and the cost they report (network evaluations)."""

import math

import numpy as np
import pytest
import torch

from diffusion_core.cli import main
from diffusion_core.process import ColdProcess, GaussianProcess, SamplerChoice
from diffusion_core.process.degradations import make_degradation
from diffusion_core.process.schedules import log_snr, make_schedule, preset_schedule
from diffusion_core.process.spacing import EDM_SIGMA_MAX, EDM_SIGMA_MIN, SPACINGS, sigma_of, spaced_by
from diffusion_core.samplers import LOG_SNR_MIN, run_to_end, sampler_spec, samplers_of, spaced_timesteps
from diffusion_core.samplers.base import SeedBatch, seeded_noise
from diffusion_core.sampling import sample

from .test_samplers import SHAPE, GaussianOracleEps

MU, S = 0.1, 0.2
FEW_STEP = [s for s in samplers_of("noise") if not sampler_spec(s).all_steps]


@pytest.fixture(scope="module")
def oracle():
    sched = preset_schedule("default")
    return GaussianProcess(sched), GaussianOracleEps(MU, S, sched)


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("sampler", FEW_STEP)
def test_every_sampler_runs_on_every_spacing_and_keeps_the_datas_mean(oracle, sampler, spacing):
    process, model = oracle
    choice = SamplerChoice(sampler, 20, seed=0, spacing=spacing)
    ts = process.sampler(sampler).timesteps(process, choice)
    assert len(ts) == 20 and all(a > b for a, b in zip(ts, ts[1:], strict=False)) and ts[-1] >= 1
    out = sample(process, model, choice, 6, precision="fp32").samples
    assert torch.isfinite(out).all()
    assert out.mean().item() == pytest.approx(MU, abs=0.02)
    assert 0.5 * S < out.std().item() < 1.5 * S  # 20 steps: first-order solvers narrow it, none loses it


def exact_ode_solution(process, z_T):
    """For Gaussian data the probability-flow ODE keeps (z_t − aμ)/√(a²s² + b²) constant."""
    ab_T = process.schedule.alpha_bars[-1].double()
    return MU + S * (z_T - ab_T.sqrt() * MU) / (ab_T * S**2 + 1 - ab_T).sqrt()


@pytest.mark.parametrize(("sampler", "steps", "lo", "hi"), [
    ("euler", (8, 16, 32), -1.2, -0.8), ("ddim", (8, 16, 32), -1.2, -0.8), ("heun", (8, 16, 32), -3.2, -1.8),
    ("dpm++2m", (16, 24, 32, 48), -4.0, -1.8),  # the multistep solver settles into its order after ~16 steps
])
def test_order_of_accuracy_from_error_against_steps(oracle, sampler, steps, lo, hi):
    """Log-log slope of the error against the exact ODE solution (log-SNR spacing): about −1 for the first-order
    solvers, −2 or steeper for Heun and DPM-Solver++(2M)."""
    process, model = oracle
    z_T = seeded_noise((4, *SHAPE), SeedBatch(0, 4), "cpu").double()  # sample k's z_T: seed 0 + k
    exact = exact_ode_solution(process, z_T)
    errors = []
    for n in steps:
        out = sample(process, model, SamplerChoice(sampler, n, seed=0, spacing="log-snr"), 4,
                     precision="fp32").samples.double()
        errors.append((out - exact).abs().mean().item())
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert lo < slope < hi, (errors, slope)


def test_euler_is_ddim_with_eta_0_on_the_same_steps(oracle):
    process, model = oracle
    for spacing in ("uniform", "karras"):
        euler = run_to_end(process.frames(model, SamplerChoice("euler", 10, seed=2, spacing=spacing), 3)).samples
        ddim = run_to_end(process.frames(model, SamplerChoice("ddim", 10, seed=2, spacing=spacing), 3)).samples
        torch.testing.assert_close(euler, ddim, rtol=1e-4, atol=1e-5)


def test_heun_churn_adds_seeded_noise_and_keeps_the_statistics(oracle):
    process, model = oracle
    plain = [sample(process, model, SamplerChoice("heun", 18, seed=s), 6, precision="fp32").samples for s in (0, 0)]
    churned = [sample(process, model, SamplerChoice("heun", 18, seed=s, knobs={"churn": 10.0}), 6,
                      precision="fp32").samples for s in (0, 0, 1)]
    assert torch.equal(plain[0], plain[1]) and torch.equal(churned[0], churned[1])
    assert not torch.allclose(churned[0], churned[2]) and not torch.allclose(plain[0], churned[0])
    assert churned[0].mean().item() == pytest.approx(MU, abs=0.02)
    assert churned[0].std().item() == pytest.approx(S, rel=0.25)


def test_network_evaluations_per_run(oracle):
    process, _ = oracle
    nfe = {s: process.network_calls(SamplerChoice(s, 10)) for s in FEW_STEP}
    assert nfe == {s: 19 if s in ("heun", "pc") else 10 for s in FEW_STEP}
    assert process.network_calls(SamplerChoice("ancestral")) == 1000
    calls = []
    model = GaussianOracleEps(MU, S, process.schedule)
    model.register_forward_hook(lambda *a: calls.append(1))
    for s in FEW_STEP:
        calls.clear()
        run_to_end(process.frames(model, SamplerChoice(s, 10, seed=0), 2))
        assert len(calls) == nfe[s], s


def test_spacings_place_steps_where_they_say():
    ab = preset_schedule("default").alpha_bars.tolist()
    T = len(ab) - 1
    assert spaced_by("uniform", ab, T, 10) == spaced_timesteps(T, 10)
    levels = {name: [sigma_of(ab[t]) for t in spaced_by(spacing, ab, T, 10, rho)]
              for name, spacing, rho in (("log-snr", "log-snr", 7.0), ("karras", "karras", 7.0),
                                         ("even σ", "karras", 1.0))}
    assert {v[0] for v in levels.values()} == {sigma_of(ab[T])}  # all start at T: the report's schedule ends in noise
    low = {name: sum(s < 1 for s in v) for name, v in levels.items()}
    assert low["log-snr"] > low["karras"] > low["even σ"]  # ρ = 7 sits between even in σ and even in log σ
    edm = [sigma_of(ab[t]) for t in spaced_by("edm", ab, T, 10)]
    assert EDM_SIGMA_MAX * 0.98 < edm[0] <= EDM_SIGMA_MAX * 1.02 and edm[-1] >= sigma_of(ab[1]) >= EDM_SIGMA_MIN
    rho1 = spaced_by("karras", ab, T, 10, rho=1.0)  # ρ = 1: evenly spaced in σ
    gaps = np.diff([sigma_of(ab[t]) for t in rho1])
    assert np.all(gaps < 0) and gaps.max() / gaps.min() < 1.2
    cosine = make_schedule("cosine").alpha_bars.tolist()
    for spacing in ("log-snr", "karras", "edm"):  # the β-capped tail of the cosine schedule gets no steps
        first = spaced_by(spacing, cosine, len(cosine) - 1, 20)[0]
        assert log_snr(cosine[first]) >= LOG_SNR_MIN > log_snr(cosine[997])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"sampler": "euler", "steps": 1001}, "steps must be an integer between 1 and T=1000; got 1001"),
    ({"sampler": "heun", "steps": 10, "spacing": "karras", "rho": 0.0}, r"rho \(ρ of the Karras spacing\) must be"),
    ({"sampler": "heun", "steps": 10, "spacing": "cubic"}, "spacing must be one of uniform, log-snr, karras, edm"),
    ({"sampler": "ancestral", "spacing": "karras"}, "the ancestral sampler places no steps of its own"),
    ({"sampler": "heun", "steps": 10, "knobs": {"churn": -1.0}}, r"churn \(Heun's S_churn\) must be a number from 0"),
])
def test_bad_choices_are_refused_with_the_reason(oracle, kwargs, message):
    process, model = oracle
    with pytest.raises(ValueError, match=message):
        run_to_end(process.frames(model, SamplerChoice(seed=0, **kwargs), 2))


def test_a_cold_process_has_no_noise_levels_to_space_by():
    process = ColdProcess(make_degradation("blur", 20))
    with pytest.raises(ValueError, match="a cold process has no noise levels to place steps by"):
        process.step_count(SamplerChoice("improved", 5, spacing="karras"))
    assert process.step_count(SamplerChoice("improved", 5, spacing="uniform")) == 5


def test_the_cli_samples_with_a_sampler_and_a_spacing(tmp_path, capsys):
    from diffusion_core.io.checkpoints import save_checkpoint
    from diffusion_core.models import build_model

    from .conftest import TINY_CNN

    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "m", build_model(TINY_CNN), {
        "model": TINY_CNN, "diffusion": {"type": "noise", "schedule": {"kind": "linear", "beta1": 1e-4,
                                                                        "beta2": 0.02, "T": 100}}})
    out = tmp_path / "s"
    assert main(["sample", str(ckpt), "--sampler", "heun", "--spacing", "karras", "--steps", "18", "--n", "2",
                 "--out", str(out), "--quiet"]) == 0
    assert np.load(out.with_suffix(".npy")).shape == (2, 28, 28)
    assert main(["sample", str(ckpt), "--sampler", "heun", "--spacing", "karras", "--rho", "-1", "--n", "2",
                 "--out", str(out), "--quiet"]) == 2
    assert "--rho" in capsys.readouterr().err
    assert main(["sample", str(ckpt), "--sampler", "ancestral", "--spacing", "edm", "--n", "2",
                 "--out", str(out), "--quiet"]) == 2
    assert "places no steps of its own" in capsys.readouterr().err
    assert math.isfinite(float(np.load(out.with_suffix(".npy")).mean()))
