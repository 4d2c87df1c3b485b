"""Every noise sampler on every schedule kind and preset: through the library with the exact ε of
Gaussian data (known answer: the data's mean and spread), and through the CLI on saved checkpoints."""

import math

import numpy as np
import pytest
import torch

from diffusion_core.cli import main
from diffusion_core.io.checkpoints import save_checkpoint
from diffusion_core.models import build_model
from diffusion_core.process import GaussianProcess, SamplerChoice
from diffusion_core.process.schedules import PRESETS, SCHEDULE_KINDS, log_snr, make_schedule, preset_schedule
from diffusion_core.process.spacing import LOG_SNR_MIN, spaced_by
from diffusion_core.samplers import samplers_of
from diffusion_core.sampling import sample

from .conftest import TINY_CNN
from .test_samplers import GaussianOracleEps

SCHEDULES = {kind: (lambda kind=kind: make_schedule(kind)) for kind in SCHEDULE_KINDS} | {
    f"preset {name}": (lambda name=name: preset_schedule(name)) for name in PRESETS}
# spread after each sampler at its default steps, relative to the data's (DDIM η = 0 narrows it at 50 steps)
# (the first-order ODE and ancestral solvers narrow it in 20 steps too; Heun widens it a little in 18)
STD_TOLERANCE = {"ancestral": 0.08, "ddim": 0.25, "dpm++2m": 0.08, "dpm++2m-sde": 0.1, "euler": 0.2, "heun": 0.1,
                 "euler-a": 0.3, "pc": 0.15}


@pytest.mark.parametrize("sampler", samplers_of("noise"))
@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_every_sampler_reproduces_gaussian_data_on_every_schedule(schedule, sampler):
    """x ~ N(μ, s²) per pixel with the exact ε-predictor: finite samples with the data's mean and std."""
    mu, s = 0.1, 0.2
    sched = SCHEDULES[schedule]()
    # 6 images of 1×28×28 (the process's fixed shape): 4,704 independent pixels, as many as the 64 of 1×8×8 before
    out = sample(GaussianProcess(sched), GaussianOracleEps(mu, s, sched), SamplerChoice(sampler, seed=0), 6,
                 precision="fp32").samples
    assert torch.isfinite(out).all()
    assert out.mean().item() == pytest.approx(mu, abs=0.02)
    assert out.std().item() == pytest.approx(s, rel=STD_TOLERANCE[sampler])


def test_log_snr_steps_skip_the_cosine_schedules_capped_tail_and_keep_the_presets():
    cosine = make_schedule("cosine").alpha_bars.tolist()
    ts = spaced_by("log-snr", cosine, len(cosine) - 1, 20)
    assert sum(t >= 992 for t in ts) <= 2  # evenly in λ from −9.9 it was 8 of 20
    assert log_snr(cosine[ts[0]]) >= LOG_SNR_MIN > log_snr(cosine[ts[0] + 1])  # LOG_SNR_MIN is in log-SNR units
    lam = [0.5 * log_snr(cosine[t]) for t in ts]  # λ = ½·log SNR
    gaps = np.diff(lam)
    assert gaps.min() > 0 and gaps.max() < 1.6 * np.median(gaps)  # evenly spaced in λ where t allows
    assert math.isinf(log_snr(cosine[0]))  # ᾱ_0 = 1: never a step, no math domain error
    for name in PRESETS:  # their log-SNR_T ≥ LOG_SNR_MIN: they start at T as before
        sched = preset_schedule(name)
        assert spaced_by("log-snr", sched.alpha_bars.tolist(), sched.T, 20)[0] == sched.T


@pytest.mark.parametrize("kind", SCHEDULE_KINDS)
def test_cli_samples_every_schedule_kind_with_every_sampler(tmp_path, kind, capsys):
    torch.manual_seed(0)
    config = {"model": TINY_CNN, "dataset": "mnist", "epochs": 1,
              "diffusion": {"type": "noise", "schedule": {"kind": kind, "beta1": 1e-4, "beta2": 0.02, "T": 100}}}
    path = save_checkpoint(tmp_path / kind, build_model(TINY_CNN), config)
    for sampler in samplers_of("noise"):
        out = tmp_path / f"{kind}-{sampler}"
        steps = [] if sampler == "ancestral" else ["--steps", "10"]
        assert main(["sample", str(path), "--sampler", sampler, *steps, "--n", "4", "--out", str(out)]) == 0, \
            capsys.readouterr().err
        images = np.load(out.with_suffix(".npy"))
        assert images.shape == (4, 28, 28) and np.isfinite(images).all()
        assert images.min() >= 0.0 and images.max() <= 1.0
