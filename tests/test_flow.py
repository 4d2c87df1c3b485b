"""Flow matching (#28): the loss against its formula, the flow's samplers against the exact flow of Gaussian data
(first and second order), the denoiser view against the noise process on the same Gaussian path, the CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from diffusion_core.cli import main
from diffusion_core.io.checkpoints import load_checkpoint
from diffusion_core.process import FlowProcess, GaussianProcess, SamplerChoice, process_from_config
from diffusion_core.process.runs import SeedBatch, seeded_noise
from diffusion_core.process.schedules import NoiseSchedule
from diffusion_core.sampling import sample

MU, S = 0.3, 0.5  # every pixel of the data ~ N(μ, s²)
SHAPE = (1, 4, 4)


class GaussianVelocity(nn.Module):
    """The exact velocity E[ε − x0 | z_t] of the linear path when every pixel of x0 is N(μ, s²): with
    Var_t = (1 − t)²s² + t² and r = z − (1 − t)μ, v = (t − (1 − t)s²)/Var_t · r − μ."""

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t.double().view(-1, *([1] * (z.dim() - 1)))
        var = (1 - t) ** 2 * S**2 + t**2
        return ((t - (1 - t) * S**2) / var * (z.double() - (1 - t) * MU) - MU).float()


class GaussianEps(nn.Module):
    """The exact E[ε | z_t] of a variance-preserving path z = a·x0 + b·ε on the same data: b(z − aμ)/(a²s² + b²)."""

    def __init__(self, alpha_bars: torch.Tensor) -> None:
        super().__init__()
        self.ab, self.T = alpha_bars.double(), len(alpha_bars) - 1

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ab = self.ab[torch.round(t.double() * self.T).long()].view(-1, *([1] * (z.dim() - 1)))
        a, b = ab.sqrt(), (1 - ab).sqrt()
        return (b * (z.double() - a * MU) / (a**2 * S**2 + b**2)).float()


def exact_endpoints(n: int, seed: int) -> torch.Tensor:
    """Where the exact flow carries the run's noise z_1 = ξ: the ODE is affine for Gaussian data, x = μ + s·ξ."""
    return MU + S * seeded_noise((n, *SHAPE), SeedBatch(seed, n), "cpu")


def run(process, model, sampler: str, steps: int, n: int = 8, seed: int = 0, **knobs) -> torch.Tensor:
    return sample(process, model, SamplerChoice(sampler, steps, seed=seed, knobs=knobs), n, precision="fp32").samples


def test_the_loss_is_the_velocity_error_on_the_linear_path():
    process = FlowProcess(T=10, data_shape=SHAPE)
    x = torch.randn((6, *SHAPE), generator=torch.Generator().manual_seed(1))
    k = torch.tensor([1, 2, 5, 7, 9, 10])

    class Recorder(nn.Module):
        def forward(self, z, t):
            self.seen = (z, t)
            return torch.zeros_like(z) + 0.1

    model = Recorder()
    loss, got_k, each = process.loss_terms(model, x, torch.Generator().manual_seed(4), t=k)
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(4))  # the same draw: t was given
    t = (k.float() / 10).view(-1, 1, 1, 1)
    torch.testing.assert_close(model.seen[0], (1 - t) * x + t * eps)  # z_t = (1 − t)·x + t·ε
    torch.testing.assert_close(model.seen[1], k.float() / 10)
    torch.testing.assert_close(loss, (((eps - x) - 0.1) ** 2).mean())  # ‖(ε − x) − g‖²
    assert torch.equal(got_k, k) and each.shape == (6,)


def test_a_flows_uniform_steps_are_equal_steps_in_t_down_to_zero():
    """N Euler steps of 1/N each (two calls: t = 1 → ½ → 0), not the noise grid's T … 1, whose last call at
    t = 1/T is wasted on a flow."""
    process = FlowProcess(1000)
    assert process.timesteps("uniform", 1000, 2) == [1000, 500]
    assert process.timesteps("uniform", 1000, 4) == [1000, 750, 500, 250]
    assert process.timesteps("uniform", 500, 2) == [500, 250]  # from midway
    assert FlowProcess(20).timesteps("uniform", 20, 20) == list(range(20, 0, -1))
    with pytest.raises(ValueError):
        process.timesteps("uniform", 10, 11)


def test_logit_normal_time_sampling_favours_the_middle_of_the_path():
    uniform = FlowProcess(T=1000).draw_steps(20_000, torch.Generator().manual_seed(0)).float() / 1000
    logit = FlowProcess(T=1000, time_sampling="logit-normal").draw_steps(20_000, torch.Generator().manual_seed(0))
    t = logit.float() / 1000
    assert abs(float(uniform.mean()) - 0.5) < 0.01 and abs(float(uniform.std()) - math.sqrt(1 / 12)) < 0.01
    # t = sigmoid(n), n ~ N(0, 1): median ½, a quarter of the draws within ±0.1 of it where uniform puts a fifth
    assert abs(float(t.median()) - 0.5) < 0.01 and float(((t - 0.5).abs() < 0.1).float().mean()) > 0.26
    assert int(logit.min()) >= 1 and int(logit.max()) <= 1000


@pytest.mark.parametrize(("sampler", "order"), [("flow-euler", 1), ("flow-heun", 2)])
def test_the_flows_samplers_converge_to_the_exact_flow_at_their_order(sampler, order):
    """Error of each sample against where the exact ODE takes its noise, at 5 to 40 steps: slope −1 (Euler) and
    about −2 (Heun; its last step to t = 0 is Euler, so a little less)."""
    process, model = FlowProcess(T=1000, data_shape=SHAPE), GaussianVelocity()
    steps = [5, 10, 20, 40]
    errors = [float((run(process, model, sampler, n) - exact_endpoints(8, 0)).abs().max()) for n in steps]
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert (-1.2 < slope < -0.8) if order == 1 else slope < -1.6, (errors, slope)
    assert errors[-1] < (0.06 if order == 1 else 2e-3)  # Heun's last step (1/40 to t = 0) is Euler's


def test_the_sde_keeps_the_datas_distribution_and_gamma_zero_is_euler():
    process, model = FlowProcess(T=1000, data_shape=SHAPE), GaussianVelocity()
    out = run(process, model, "flow-sde", 100, n=1000)
    assert abs(float(out.mean()) - MU) < 0.01 and abs(float(out.std()) - S) < 0.01
    torch.testing.assert_close(run(process, model, "flow-sde", 10, flow_noise=0.0),
                               run(process, model, "flow-euler", 10), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match=r"flow_noise \(flow-sde's γ\) must be a number from 0 to 2"):
        run(process, model, "flow-sde", 10, flow_noise=3.0)


def test_through_the_denoiser_view_a_flow_and_a_noise_model_on_the_same_path_sample_alike():
    """x = z/(1 − t) = x0 + σ·ε with σ = t/(1 − t): the flow is the Gaussian path of ᾱ = 1/(1 + σ²) in another clock,
    so DDIM (and any σ-space sampler) on the exact flow equals DDIM on the exact ε of that noise process."""
    flow = FlowProcess(T=1000, data_shape=SHAPE)
    alpha_bars = torch.tensor(flow.alpha_bars(), dtype=torch.float64)
    betas = torch.zeros_like(alpha_bars)
    betas[1:] = 1 - alpha_bars[1:] / alpha_bars[:-1]
    noise = GaussianProcess(NoiseSchedule("linear", 1e-4, 0.02, 1000, betas.float()), data_shape=SHAPE)
    noise.timesteps = flow.timesteps  # the same grid of steps (both read it from the same ᾱ)
    for sampler, steps in (("ddim", 20), ("euler", 10), ("dpm++2m", 10)):
        # from σ_T ≈ 10⁴, where z_T ~ N(0, I) stands for the same state in both (to 1/σ_T), on the same timesteps
        # (a flow's uniform steps are its own, equal in t: the noise process is given them)
        choice = SamplerChoice(sampler, steps, seed=0, spacing="uniform")
        a = sample(flow, GaussianVelocity(), choice, 8, precision="fp32").samples
        b = sample(noise, GaussianEps(noise.schedule.alpha_bars), choice, 8, precision="fp32").samples
        torch.testing.assert_close(a, b, atol=2e-3, rtol=0)
        assert float((a - exact_endpoints(8, 0)).abs().max()) < 0.5  # and both go where the exact flow goes


def test_config_round_trip_and_refusals():
    process = process_from_config({"type": "flow", "T": 200, "time_sampling": "logit-normal", "logit_std": 0.8})
    assert isinstance(process, FlowProcess) and process.config() == {
        "type": "flow", "T": 200, "time_sampling": "logit-normal", "logit_mean": 0.0, "logit_std": 0.8}
    assert process.samplers[:3] == ("flow-euler", "flow-heun", "flow-sde") and "ddim" in process.samplers
    assert "improved" not in process.samplers
    with pytest.raises(ValueError, match="unknown flow field"):
        process_from_config({"type": "flow", "schedule": {}})
    with pytest.raises(ValueError, match="time sampling must be one of uniform, logit-normal"):
        FlowProcess(time_sampling="beta")
    with pytest.raises(ValueError, match="a flow's T"):
        FlowProcess(T=0)


def test_the_cli_trains_and_samples_a_flow_model(tmp_path, capsys):
    out = tmp_path / "flow"
    assert main(["train", "--flow", "--T", "50", "--arch", "cnn", "--hidden", "8,8", "--epochs", "1", "--limit", "64",
                 "--batch-size", "32", "--no-download", "--fid-every", "0", "--out", str(out), "--quiet"]) == 0
    ckpt = load_checkpoint(out / "model")
    assert isinstance(ckpt.process, FlowProcess) and ckpt.process.T == 50
    for sampler in ("flow-heun", "dpm++2m"):
        assert main(["sample", str(out), "--sampler", sampler, "--n", "2", "--out", str(tmp_path / sampler),
                     "--quiet"]) == 0
        assert np.load(tmp_path / f"{sampler}.npy").shape == (2, 28, 28)
    capsys.readouterr()
    assert main(["train", "--flow", "--preset", "default", "--out", str(tmp_path / "x")]) == 2
    assert "--preset is for noise or cold models" in capsys.readouterr().err
    assert main(["train", "--time-sampling", "logit-normal", "--out", str(tmp_path / "x")]) == 2
    assert "--time-sampling is for flow models only: add --flow" in capsys.readouterr().err


def test_the_editing_tools_run_on_a_flow_model_through_its_forward_map_and_view(tmp_path):
    """SDEdit noises by the flow's own path and runs its sampler back; inpainting keeps the known pixels; a
    DDIM round trip decodes what it encoded; guidance written on ε̂ and ᾱ_t is refused with the reason."""
    from diffusion_core.editing.guidance import guided_samples
    from diffusion_core.editing.inpainting import inpaint
    from diffusion_core.editing.inversion import decode, invert
    from diffusion_core.editing.sdedit import sdedit, signal_left
    from tests.app_support import write_flow_checkpoint

    ckpt = load_checkpoint(write_flow_checkpoint(tmp_path, "flow", T=40))
    x = torch.rand((2, 1, 28, 28), generator=torch.Generator().manual_seed(0)) - 0.5
    assert signal_left(ckpt.process, 10) == {"t": 10, "signal": 0.75, "snr": 9.0}  # α = 1 − t, SNR = (α/t)²
    edit = sdedit(ckpt, x, 0.5, SamplerChoice("flow-euler", 5, seed=3))
    assert edit.t == 20 and edit.edited.shape == x.shape and torch.isfinite(edit.edited).all()
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(ckpt.process.diffuse(x, 0, 20, eps), 0.5 * x + 0.5 * eps)  # the path at t = ½
    mask = torch.ones_like(x)
    mask[..., :14] = 0
    filled = inpaint(ckpt, x, mask, "RePaint", steps=5, seed=0)
    assert torch.equal(filled[..., 14:], x[..., 14:]) and torch.isfinite(filled).all()
    z = invert(ckpt, x, steps=40)
    assert float((decode(ckpt, z, steps=40) - x).abs().max()) < 0.1  # the ODE run back and forth (40 Euler steps)
    with pytest.raises(ValueError, match="guidance by a classifier or a loss is written for noise models"):
        guided_samples(ckpt, "ink", 1.0, 2)


def test_the_mixtures_closed_form_velocity_satisfies_the_continuity_equation():
    """∂p_t/∂t + ∇·(p_t v) = 0 for the linear path's marginal p_t (a = 1 − t, s = t): with ∂_t log p and ∇·v by
    central finite differences, ∂_t log p + ∇·v + v·∇log p vanishes where the density is not negligible."""
    from diffusion_core.io.points import mixture_presets

    mixture = next(iter(mixture_presets().values()))
    z = mixture.sample(64, seed=1).double() * 0.7 + 0.3 * torch.randn(64, 2, generator=torch.Generator().manual_seed(2))
    h = 1e-4
    for t in (0.2, 0.5, 0.8):
        def log_p(t_):
            return mixture.log_density(z, 1 - t_, t_)
        dlogp_dt = (log_p(t + h) - log_p(t - h)) / (2 * h)
        v = mixture.flow_velocity(z, t)
        div = sum((mixture.flow_velocity(z + h * e, t)[:, i] - mixture.flow_velocity(z - h * e, t)[:, i]) / (2 * h)
                  for i, e in enumerate(torch.eye(2, dtype=torch.float64)))
        residual = dlogp_dt + div + (v * mixture.score(z, 1 - t, t)).sum(1)
        scale = dlogp_dt.abs() + div.abs() + 1.0
        assert float((residual.abs() / scale).max()) < 1e-5, t
    torch.testing.assert_close(mixture.flow_velocity(z, 0.0), -z)  # at t = 0 the state is the data: v = E[ε] − x
    with pytest.raises(ValueError, match=r"the path's time t must lie in \[0, 1\]"):
        mixture.flow_velocity(z, 1.5)


def test_flow_heun_on_the_exact_mixture_velocity_reproduces_the_mixtures_moments():
    from diffusion_core.io.points import ExactVelocity, mixture_presets

    mixture = next(iter(mixture_presets().values()))
    process = FlowProcess(T=1000, data_shape=(2,))
    out = sample(process, ExactVelocity(mixture), SamplerChoice("flow-heun", 40, seed=0), 2000,
                 precision="fp32").samples.double()
    torch.testing.assert_close(out.mean(0), mixture.mean(), atol=0.08, rtol=0)
    torch.testing.assert_close(torch.cov(out.T), mixture.covariance(), atol=0.15, rtol=0.05)


def test_the_edit_page_edits_with_a_flow_model_and_says_why_guidance_needs_a_noise_model(tmp_path, monkeypatch):
    from tests.app_support import app, errors, no_exceptions, shipped_folder, write_flow_checkpoint

    write_flow_checkpoint(shipped_folder(tmp_path, monkeypatch), "flow", T=40)
    at = app("pages/8_Edit.py").run(timeout=60)
    at.radio(key="ed_sd_source").set_value("A test digit").run()
    at.slider(key="ed_strength").set_value(0.25).run()
    assert {m.label: m.value for m in at.metric}["Signal left α_t = 1 − t"] == "0.750"  # t = 10 of 40
    at.button(key="ed_run").click().run(timeout=120)
    no_exceptions(at)
    assert not errors(at)
    at.selectbox(key="ed_g_kind").set_value("ink").run()
    at.button(key="ed_g_run").click().run(timeout=120)
    no_exceptions(at)
    assert any("guidance by a classifier or a loss is written for noise models" in e for e in errors(at))


def test_reflow_straightens_a_2d_flow_and_the_distilled_one_step_generator_lands_on_its_teacher():
    """Rectified flow on the 2-D lab's two unequal Gaussians: S = E∫‖(Z₁ − Z₀) − v‖² dt falls from ~0.7 to ~0.002
    after one reflow (measured: 0.73 → 0.0018), and the one-step generator distilled from it lands within 0.05 (mean
    distance; the data's spread is 1.4) of where the reflowed flow's whole ODE takes held-out noise (measured 0.02;
    one Euler step of the reflowed flow alone: 0.07)."""
    from diffusion_core.io.points import mixture_presets
    from diffusion_core.sampling import model_frames
    from diffusion_core.views.points import distil_points, flow_pairs, flow_straightness, reflow_points, train_points

    data = mixture_presets()["2 Gaussians, unequal"].sample(4000, seed=0)
    flow = train_points(data, steps=800, flow=True, hidden=128)
    reflowed = reflow_points(flow, steps=800, hidden=128, n_pairs=2048)
    before, after = flow_straightness(flow), flow_straightness(reflowed)
    assert before > 0.2 and after < 0.1 * before, (before, after)
    one_step = distil_points(reflowed, steps=400, n_pairs=2048)
    teacher = flow_pairs(reflowed, 500, seed=7)[:, :2]  # held-out noise: seed 7, not the pairs' seed 0
    frames = list(model_frames(one_step.process, one_step.model, SamplerChoice("flow-euler", 1, seed=7), 500,
                               precision="fp32"))
    assert len(frames) == 2  # one network call
    assert float((frames[-1].z - teacher).norm(dim=1).mean()) < 0.05
    with pytest.raises(ValueError, match="distil_steps must be a whole number from 1 to 8"):
        flow.process.coupled(distil_steps=0)
