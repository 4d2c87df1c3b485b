"""Samplers against the formulas and against cases with a known answer."""

import numpy as np
import pytest
import torch
from torch import nn

from diffusion_core.process import GaussianProcess, SamplerChoice
from diffusion_core.process.gaussian import ddpm_loss, q_sample
from diffusion_core.process.schedules import make_schedule, preset_schedule
from diffusion_core.samplers import run_to_end, spaced_timesteps
from diffusion_core.samplers.ancestral import sample_ancestral
from diffusion_core.samplers.base import SeedBatch, seeded_noise
from diffusion_core.sampling import sample

SHAPE = (1, 28, 28)


class ConstantEps(nn.Module):
    """g(z, t) = a fixed, hand-made ε."""

    def __init__(self, eps: torch.Tensor) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, z, t):
        return self.eps.expand_as(z)


class OracleEps(nn.Module):
    """The exact ε-predictor when the data is one fixed image x*: ε = (z − √ᾱ_t x*)/√(1−ᾱ_t)."""

    def __init__(self, x_star: torch.Tensor, schedule) -> None:
        super().__init__()
        self.x_star, self.ab, self.T = x_star, schedule.alpha_bars.double(), schedule.T

    def forward(self, z, t):
        idx = torch.round(t.double() * self.T).long()
        ab = self.ab[idx].view(-1, 1, 1, 1)
        return ((z.double() - ab.sqrt() * self.x_star.double()) / (1 - ab).sqrt()).float()


class GaussianOracleEps(nn.Module):
    """Exact E[ε | z_t] when every pixel of x is N(μ, s²): ε̂ = b (z − aμ) / (a² s² + b²), a = √ᾱ, b = √(1−ᾱ)."""

    def __init__(self, mu: float, s: float, schedule) -> None:
        super().__init__()
        self.mu, self.s, self.ab, self.T = mu, s, schedule.alpha_bars.double(), schedule.T

    def forward(self, z, t):
        ab = self.ab[torch.round(t.double() * self.T).long()].view(-1, 1, 1, 1)
        a, b = ab.sqrt(), (1 - ab).sqrt()
        return (b * (z.double() - a * self.mu) / (a**2 * self.s**2 + b**2)).float()


def ancestral_steps(model: nn.Module, sched, z_T: torch.Tensor, gen: torch.Generator):
    """Algorithm 2's frames over the noise process's denoiser view of `model`, on every t = T..1."""
    return sample_ancestral(GaussianProcess(sched).view(model), z_T, list(range(sched.T, 0, -1)), gen)


@pytest.fixture
def x_star():
    g = torch.Generator().manual_seed(3)
    return torch.rand((1, *SHAPE), generator=g) - 0.5


def test_one_ancestral_step_matches_algorithm_2():
    sched = make_schedule("linear", 1e-4, 0.02, 50)
    eps = torch.randn((1, *SHAPE), generator=torch.Generator().manual_seed(7))
    gen = torch.Generator().manual_seed(11)
    z_T = torch.randn((2, *SHAPE), generator=gen)
    frames = ancestral_steps(ConstantEps(eps), sched, z_T, gen)
    first, second = next(frames), next(frames)
    # independent computation in float64 with the same noise draw
    ref_gen = torch.Generator().manual_seed(11)
    z = torch.randn((2, *SHAPE), generator=ref_gen).double()
    noise = torch.randn((2, *SHAPE), generator=ref_gen).double()
    T = 50
    beta = 1e-4 + (0.02 - 1e-4) * T / T
    abar = np.prod([1 - (1e-4 + (0.02 - 1e-4) * s / T) for s in range(T + 1)])
    expected = (z - beta / np.sqrt(1 - abar) * eps.double()) / np.sqrt(1 - beta) + np.sqrt(beta) * noise
    assert first.t == 50 and second.t == 49
    torch.testing.assert_close(second.z.double(), expected, rtol=1e-5, atol=1e-5)
    # x̂0 reported with the frame: (z_t − √(1−ᾱ_t) ε) / √ᾱ_t
    torch.testing.assert_close(first.x0_hat.double(), (z - np.sqrt(1 - abar) * eps.double()) / np.sqrt(abar),
                               rtol=1e-4, atol=1e-4)


def test_last_ancestral_step_adds_no_noise():
    sched = make_schedule("linear", 1e-4, 0.02, 1)
    eps = torch.randn((1, *SHAPE), generator=torch.Generator().manual_seed(2))
    z_T = torch.randn((3, *SHAPE), generator=torch.Generator().manual_seed(5))
    outs = [list(ancestral_steps(ConstantEps(eps), sched, z_T, torch.Generator().manual_seed(s)))[-1].z
            for s in (0, 1)]
    torch.testing.assert_close(outs[0], outs[1])  # generator state does not matter at t = 1
    b1, ab1 = sched.betas[1].item(), sched.alpha_bars[1].item()
    torch.testing.assert_close(outs[0], (z_T - b1 / (1 - ab1) ** 0.5 * eps) / (1 - b1) ** 0.5)


def test_ancestral_with_an_oracle_converges_to_the_single_training_image(x_star):
    sched = preset_schedule("default")
    out = sample(GaussianProcess(sched), OracleEps(x_star, sched), SamplerChoice("ancestral", seed=0), 4,
                 precision="fp32").samples
    err = (out - x_star).abs()
    assert err.mean() < 0.02 and err.max() < 0.1


@pytest.mark.parametrize("sampler,steps", [("ddim", 10), ("ddim", 50), ("dpm++2m", 5), ("dpm++2m", 20),
                                           ("dpm++2m-sde", 20)])
def test_deterministic_samplers_with_an_oracle_return_the_image_exactly(x_star, sampler, steps):
    """(And the SDE solver: with one training image, x̂0 = x* whatever the noise.)"""
    sched = preset_schedule("default")
    out = sample(GaussianProcess(sched), OracleEps(x_star, sched), SamplerChoice(sampler, steps, seed=1), 3,
                 precision="fp32").samples
    torch.testing.assert_close(out, x_star.expand_as(out), atol=2e-4, rtol=0)


def test_ddim_eta_zero_is_deterministic_and_eta_one_is_not():
    sched = make_schedule("linear", 1e-4, 0.02, 100)
    torch.manual_seed(0)
    model = GaussianOracleEps(0.1, 0.3, sched)
    z_T = torch.randn((2, *SHAPE), generator=torch.Generator().manual_seed(9))
    from diffusion_core.samplers.ddim import sample_ddim

    def final(eta, gen_seed):
        ts = spaced_timesteps(sched.T, 20)
        D = GaussianProcess(sched).view(model)
        return list(sample_ddim(D, z_T, ts, torch.Generator().manual_seed(gen_seed), eta=eta))[-1].z

    torch.testing.assert_close(final(0.0, 1), final(0.0, 2))  # η = 0: the generator is never used
    assert not torch.allclose(final(1.0, 1), final(1.0, 2))


def test_same_seed_same_samples_different_seed_different():
    sched = make_schedule("linear", 1e-4, 0.02, 30)
    model = GaussianOracleEps(0.0, 0.25, sched)
    a = sample(GaussianProcess(sched), model, SamplerChoice("ancestral", seed=5), 2, precision="fp32").samples
    b = sample(GaussianProcess(sched), model, SamplerChoice("ancestral", seed=5), 2, precision="fp32").samples
    c = sample(GaussianProcess(sched), model, SamplerChoice("ancestral", seed=6), 2, precision="fp32").samples
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_samplers_reproduce_gaussian_data_statistics():
    """Data x ~ N(μ, s²) per pixel with the exact ε-predictor: samples must have mean μ and std s."""
    mu, s = 0.1, 0.2
    sched = preset_schedule("default")
    model = GaussianOracleEps(mu, s, sched)
    for sampler, steps, tol in [("ancestral", None, 0.05), ("ddim", 200, 0.04), ("dpm++2m", 20, 0.02),
                                ("dpm++2m-sde", 20, 0.04), ("dpm++2m-sde", 10, 0.04)]:
        out = sample(GaussianProcess(sched), model, SamplerChoice(sampler, steps, seed=0), 32,
                     precision="fp32").samples
        assert out.mean().item() == pytest.approx(mu, abs=0.01), sampler
        assert out.std().item() == pytest.approx(s, rel=tol), sampler


def test_stochastic_second_order_solver_keeps_the_spread_that_ddim_eta_one_loses_in_few_steps():
    """Both add fresh noise at every step, and at first order they are the same update; with 20 steps
    DDIM η = 1 drops the uncertainty of x̂0 and shrinks the data's spread, the 2M SDE solver keeps it."""
    mu, s = 0.1, 0.2
    sched = preset_schedule("default")
    model = GaussianOracleEps(mu, s, sched)
    process = GaussianProcess(sched)
    ddim = sample(process, model, SamplerChoice("ddim", 20, seed=0, knobs={"eta": 1.0}), 32, precision="fp32").samples
    sde = sample(process, model, SamplerChoice("dpm++2m-sde", 20, seed=0), 32, precision="fp32").samples
    assert ddim.std().item() < 0.75 * s
    assert sde.std().item() == pytest.approx(s, rel=0.04)
    again = sample(process, model, SamplerChoice("dpm++2m-sde", 20, seed=0), 32, precision="fp32").samples
    other = sample(process, model, SamplerChoice("dpm++2m-sde", 20, seed=1), 32, precision="fp32").samples
    assert torch.equal(sde, again) and not torch.allclose(sde, other)  # seeded noise


def test_second_order_solver_tracks_the_exact_ode_better_than_ddim():
    """For Gaussian data the probability-flow ODE keeps (z_t − aμ)/√(a²s²+b²) constant, so
    x = μ + s·(z_T − a_T μ)/√(a_T² s² + b_T²) exactly. Compare both solvers at 8 steps."""
    mu, s = 0.1, 0.2
    sched = preset_schedule("default")
    model = GaussianOracleEps(mu, s, sched)
    ab_T = sched.alpha_bars[-1].double()
    z_T = seeded_noise((4, *SHAPE), SeedBatch(0, 4), "cpu").double()  # sample k's z_T: seed 0 + k
    exact = mu + s * (z_T - ab_T.sqrt() * mu) / (ab_T * s**2 + 1 - ab_T).sqrt()
    err = {}
    for sampler in ("ddim", "dpm++2m"):
        out = sample(GaussianProcess(sched), model, SamplerChoice(sampler, 8, seed=0), 4,
                     precision="fp32").samples.double()
        err[sampler] = (out - exact).abs().mean().item()
    assert err["dpm++2m"] < 0.5 * err["ddim"]
    assert err["dpm++2m"] < 0.01


def test_frames_are_steppable_and_run_to_end_returns_the_last():
    sched = make_schedule("linear", 1e-4, 0.02, 40)
    model = GaussianOracleEps(0.0, 0.25, sched)
    process = GaussianProcess(sched)
    frames = list(process.frames(model, SamplerChoice("ddim", 10, seed=0), 2))
    assert [f.t for f in frames] == spaced_timesteps(40, 10) + [0]
    assert all(f.z.shape == (2, *SHAPE) and f.x0_hat.shape == (2, *SHAPE) for f in frames)
    res = run_to_end(process.frames(model, SamplerChoice("ancestral", seed=0), 2))
    full = list(process.frames(model, SamplerChoice("ancestral", seed=0), 2))
    torch.testing.assert_close(res.samples, full[-1].z)


def test_spaced_timesteps():
    assert spaced_timesteps(1000, 1) == [1000]
    ts = spaced_timesteps(1000, 10)
    assert ts[0] == 1000 and ts[-1] == 1 and len(ts) == 10 and all(a > b for a, b in zip(ts, ts[1:], strict=False))
    assert spaced_timesteps(5, 5) == [5, 4, 3, 2, 1]
    with pytest.raises(ValueError, match="steps must be"):
        spaced_timesteps(10, 11)


@pytest.mark.parametrize(
    "kwargs, word",
    [({"sampler": "lms"}, "sampler must be"), ({"n": 0}, "number of samples"), ({"n": 10**6}, "number of samples"),
     ({"seed": -1}, "seed"), ({"sampler": "ancestral", "steps": 10}, "ancestral sampler takes all"),
     ({"sampler": "ddim", "steps": 0}, "steps must be"),
     ({"sampler": "ddim", "knobs": {"eta": 2.0}}, r"eta \(DDIM η\) must be a number from 0 to 1; got 2.0"),
     ({"sampler": "euler", "knobs": {"eta": 0.5}}, r"the euler sampler has no eta \(euler takes no knobs\)")],
)
def test_bad_sampler_arguments(kwargs, word):
    sched = make_schedule("linear", 1e-4, 0.02, 20)
    args = {"sampler": "ddim", "n": 2, "seed": 0} | kwargs
    n = args.pop("n")
    with pytest.raises(ValueError, match=word):
        sample(GaussianProcess(sched), GaussianOracleEps(0, 0.2, sched), SamplerChoice(**args), n, precision="fp32")


def test_q_sample_and_algorithm_1_loss_match_the_formula():
    sched = make_schedule("linear", 1e-4, 0.02, 100)
    x = torch.rand((6, *SHAPE), generator=torch.Generator().manual_seed(1)) - 0.5
    t = torch.tensor([1, 10, 50, 99, 100, 3])
    eps = torch.randn_like(x)
    ab = sched.alpha_bars[t].view(-1, 1, 1, 1)
    torch.testing.assert_close(q_sample(sched, x, t, eps), ab.sqrt() * x + (1 - ab).sqrt() * eps)

    class Zero(nn.Module):
        def forward(self, z, tt):
            assert ((tt * 100).round() >= 1).all() and ((tt * 100).round() <= 100).all()  # t ~ U{1..T}
            return torch.zeros_like(z)

    loss = ddpm_loss(Zero(), sched, x, torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    torch.randint(1, 101, (6,), generator=g)
    expected = (torch.randn(x.shape, generator=g) ** 2).mean()  # ‖ε − 0‖²
    torch.testing.assert_close(loss, expected)


def test_quick_sampler_fits_the_checkpoint():
    from pathlib import Path

    from diffusion_core.io.checkpoints import LoadedCheckpoint
    from diffusion_core.process.degradations import make_degradation
    from diffusion_core.samplers import samplers_of

    def ckpt(diffusion):
        return LoadedCheckpoint(nn.Identity(), {"diffusion": diffusion}, Path("<test>"))

    noise = {"type": "noise", "schedule": {"kind": "linear", "beta1": 1e-4, "beta2": 0.02, "T": 1000}}
    assert ckpt(noise).process.quick_choice() == SamplerChoice("dpm++2m-sde", 20)
    short = {**noise, "schedule": {**noise["schedule"], "T": 8}}
    assert ckpt(short).process.quick_choice().steps == 8  # never more steps than T
    cold = {"type": "cold", "degradation": make_degradation("blur", T=10).config()}  # the process is built from it
    assert ckpt(cold).process.quick_choice() == SamplerChoice(samplers_of("cold")[0])
    assert SamplerChoice("ddim", 50, knobs={"eta": 0.5}).describe() == "ddim, 50 steps, η = 0.5"
