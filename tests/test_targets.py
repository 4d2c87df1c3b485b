"""Prediction targets (ε, x0, v) and loss weightings (uniform, min-SNR-γ, soft-min-SNR): the loss against the
formulas, every sampler on an oracle model of each target, the config and the CLI's messages."""

import math

import pytest
import torch
from torch import nn

from diffusion_core.cli import main
from diffusion_core.evaluation.likelihood import variational_bound
from diffusion_core.process import GaussianProcess, SamplerChoice, process_from_config
from diffusion_core.process.gaussian import noise_diffusion_config
from diffusion_core.process.schedules import make_schedule
from diffusion_core.process.targets import PREDICTIONS, WEIGHTINGS, loss_weight, x0_weight
from diffusion_core.samplers import sampler_spec, samplers_of
from diffusion_core.sampling import sample
from diffusion_core.training.options import train_config

MU, S = 0.1, 0.2
SHAPE = (1, 28, 28)


class GaussianOracle(nn.Module):
    """The exact prediction of `prediction` when every pixel of x is N(μ, S²): x̂0 = E[x0 | z_t] =
    μ + a·S²·(z − aμ)/(a²S² + b²), a = √ᾱ_t, b = √(1−ᾱ_t), and ε̂, v̂ from it."""

    def __init__(self, prediction: str, schedule) -> None:
        super().__init__()
        self.prediction, self.ab, self.T = prediction, schedule.alpha_bars.double(), schedule.T

    def forward(self, z, t):
        ab = self.ab[torch.round(t.double() * self.T).long()].view(-1, 1, 1, 1)
        a, b, z = ab.sqrt(), (1 - ab).sqrt(), z.double()
        x0 = MU + a * S**2 * (z - a * MU) / (a**2 * S**2 + b**2)
        eps = (z - a * x0) / b
        return {"eps": eps, "x0": x0, "v": a * eps - b * x0}[self.prediction].float()


class KnowsTheImage(nn.Module):
    """Predicts (in `prediction`'s terms) x̂0 = x + δ for the one training image x: its x0 error is δ exactly."""

    def __init__(self, prediction, schedule, x, delta) -> None:
        super().__init__()
        self.prediction, self.ab, self.T, self.x0_hat = prediction, schedule.alpha_bars, schedule.T, x + delta

    def forward(self, z, t):
        ab = self.ab[torch.round(t * self.T).long()].view(-1, 1, 1, 1)
        a, b = ab.sqrt(), (1 - ab).sqrt()
        eps = (z - a * self.x0_hat) / b
        return {"eps": eps, "x0": self.x0_hat.expand_as(z), "v": a * eps - b * self.x0_hat}[self.prediction]


@pytest.fixture(scope="module")
def schedule():
    return make_schedule("linear", 1e-4, 0.02, 200)


def test_weights_follow_their_formulas():
    snr = torch.tensor([0.01, 1.0, 5.0, 100.0], dtype=torch.float64)
    assert torch.allclose(x0_weight("eps", "uniform", snr), snr)
    assert torch.allclose(x0_weight("v", "uniform", snr), snr + 1)
    assert torch.allclose(x0_weight("x0", "uniform", snr), torch.ones_like(snr))
    for prediction in PREDICTIONS:
        assert torch.allclose(x0_weight(prediction, "min-snr", snr, 5.0), torch.minimum(snr, torch.tensor(5.0)))
        assert torch.allclose(x0_weight(prediction, "soft-min-snr", snr, 5.0), 1 / (1 / snr + 1 / 5.0))
        assert torch.allclose(loss_weight(prediction, "uniform", snr), torch.ones_like(snr))
    # min-SNR on ε: 1 where SNR ≤ γ (the report's loss), γ/SNR above
    assert torch.allclose(loss_weight("eps", "min-snr", snr, 5.0), torch.tensor([1.0, 1.0, 1.0, 0.05],
                                                                                   dtype=torch.float64))


@pytest.mark.parametrize("weighting", WEIGHTINGS)
@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_loss_is_the_weight_times_the_x0_error_for_every_target(schedule, prediction, weighting):
    """A model whose x̂0 is off by δ has loss λ(t)·mean(δ²) per image whatever it predicts."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand((1, *SHAPE), generator=g) - 0.5
    delta = 0.1 * torch.randn((1, *SHAPE), generator=g)
    process = GaussianProcess(schedule, prediction=prediction, weighting=weighting, gamma=3.0)
    model = KnowsTheImage(prediction, schedule, x, delta)
    t = torch.tensor([1, 20, 80, 200])
    mean, _, each = process.loss_terms(model, x.expand(4, *SHAPE), torch.Generator().manual_seed(1), t=t)
    ab = schedule.alpha_bars[t].double()
    expected = x0_weight(prediction, weighting, ab / (1 - ab), 3.0) * (delta.double() ** 2).mean()
    assert torch.allclose(each.double(), expected, rtol=2e-3)
    assert mean.item() == pytest.approx(float(expected.mean()), rel=2e-3)


def test_the_reports_loss_is_unchanged(schedule):
    """ε with uniform weighting is Algorithm 1's ‖ε − g‖² to the bit."""
    model = nn.Conv2d(1, 1, 3, padding=1)
    wrapped = lambda z, t: model(z)  # noqa: E731
    x = torch.rand((8, *SHAPE), generator=torch.Generator().manual_seed(2))
    loss, t, _ = GaussianProcess(schedule).loss_terms(wrapped, x, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    t_ref = torch.randint(1, schedule.T + 1, (8,), generator=g)
    eps = torch.randn(x.shape, generator=g)
    ab = schedule.alpha_bars[t_ref].view(-1, 1, 1, 1)
    ref = ((eps - model(ab.sqrt() * x + (1 - ab).sqrt() * eps)) ** 2).mean()
    assert torch.equal(t, t_ref) and loss.item() == ref.item()


SAMPLERS = [s for s in samplers_of("noise") if not sampler_spec(s).all_steps] + ["ancestral"]


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("prediction", ["x0", "v"])
def test_every_sampler_gives_the_same_samples_for_every_target(schedule, sampler, prediction):
    """Oracles of each target are one model: every sampler's samples agree with the ε oracle's, and keep the
    data's mean and spread."""
    choice = SamplerChoice(sampler, None if sampler_spec(sampler).all_steps else 10, seed=4)
    ref = sample(GaussianProcess(schedule), GaussianOracle("eps", schedule), choice, 4, precision="fp32").samples
    process = GaussianProcess(schedule, prediction=prediction)
    out = sample(process, GaussianOracle(prediction, schedule), choice, 4, precision="fp32").samples
    assert torch.allclose(out, ref, atol=2e-3), (out - ref).abs().max()
    assert out.mean().item() == pytest.approx(MU, abs=0.02) and 0.5 * S < out.std().item() < 1.5 * S


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_x0_from_output_and_the_bound_read_each_target(schedule, prediction):
    z = torch.randn((2, *SHAPE), generator=torch.Generator().manual_seed(1))
    process = GaussianProcess(schedule, prediction=prediction)
    oracle = GaussianOracle(prediction, schedule)
    t = 50
    ab = schedule.alpha_bars[t].double()
    expected = MU + ab.sqrt() * S**2 * (z.double() - ab.sqrt() * MU) / (ab * S**2 + 1 - ab)
    out = oracle(z, torch.full((2,), t / schedule.T))
    assert torch.allclose(process.x0_from_output(z, out, t).double(), expected, atol=1e-5)
    x = MU + S * torch.randn((3, *SHAPE), generator=torch.Generator().manual_seed(2))
    bpd = variational_bound(process, oracle, x, t_samples=10)["bpd"]
    ref = variational_bound(GaussianProcess(schedule), GaussianOracle("eps", schedule), x, t_samples=10)["bpd"]
    assert bpd == pytest.approx(ref, rel=1e-3)


def test_config_declares_the_target_and_old_configs_read_as_eps():
    config = noise_diffusion_config(preset="default", prediction="v", weighting="soft-min-snr", gamma=2.0)
    process = process_from_config(config)
    assert (process.prediction, process.weighting, process.gamma) == ("v", "soft-min-snr", 2.0)
    assert process.config() == config and "soft-min-snr weighting (γ = 2)" in process.describe()
    old = {k: v for k, v in noise_diffusion_config(preset="default").items() if k != "prediction"}
    assert process_from_config(old).prediction == "eps"
    assert process_from_config(old).describe().endswith("predicts ε (no target declared: read as the report's)")
    assert "declared" not in process_from_config(noise_diffusion_config(preset="default")).describe()
    for bad, field in [({"prediction": "score"}, "prediction must be one of eps, x0, v"),
                       ({"weighting": "snr"}, "weighting must be one of"),
                       ({"weighting": "min-snr", "snr_gamma": -1}, "snr_gamma")]:
        with pytest.raises(ValueError, match=field):
            process_from_config({**old, **bad})


def test_training_options_and_cli_messages(tmp_path, capsys):
    config = train_config({"prediction": "x0", "weighting": "min-snr", "snr_gamma": 4})
    assert config.diffusion["prediction"] == "x0" and config.diffusion["snr_gamma"] == 4.0
    with pytest.raises(ValueError, match="--snr-gamma sets γ of --weighting min-snr"):
        train_config({"snr_gamma": 4})
    with pytest.raises(ValueError, match="are for noise models; a cold restorer predicts x0"):
        train_config({"degradation": "blur", "prediction": "v"})
    assert main(["train", "--out", str(tmp_path / "r"), "--prediction", "score"]) == 2
    assert "argument --prediction: invalid choice: 'score'" in capsys.readouterr().err
    assert math.isfinite(process_from_config(config.diffusion).gamma)
