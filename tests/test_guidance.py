"""Class-conditional denoisers and classifier-free guidance: labels, the guided ε̃ formula, a sampler
against a known answer, starting a conditional model from an unconditional one, and the CLI."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from diffusion_core.cli import main
from diffusion_core.io.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from diffusion_core.io.images import to_unit_numpy
from diffusion_core.models import UNet, build_model
from diffusion_core.models.guidance import NO_LABEL, ClassGuided, drop_labels, sample_labels
from diffusion_core.process import GaussianProcess, SamplerChoice
from diffusion_core.process.gaussian import ddpm_loss
from diffusion_core.process.schedules import make_schedule, preset_schedule
from diffusion_core.sampling import sample, sample_checkpoint
from diffusion_core.training.config import TrainConfig
from diffusion_core.training.trainer import init_weights

TINY_UNET = {"base_channels": 8, "time_embed_dim": 16}
NOISE = {"type": "noise", "schedule": {"kind": "linear", "beta1": 1e-4, "beta2": 0.02, "T": 20}}


def tiny_unet(num_classes=None, seed=0):
    torch.manual_seed(seed)
    return UNet(**TINY_UNET, num_classes=num_classes).eval()


def inputs(n=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n, 1, 28, 28), generator=g), torch.rand(n, generator=g)


class TwoImageOracle(nn.Module):
    """Exact ε for data that is one of two fixed images, x_0 (label 0) or x_1 (label 1), equally likely.
    Conditional: ε = (z − √ᾱ x_y)/√(1−ᾱ). Unconditional (label −1): the posterior-weighted mixture."""

    num_classes = 2

    def __init__(self, xs: torch.Tensor, schedule) -> None:
        super().__init__()
        self.xs, self.ab, self.T = xs.double(), schedule.alpha_bars.double(), schedule.T

    def forward(self, z, t, y):
        ab = self.ab[torch.round(t.double() * self.T).long()].view(-1, 1, 1, 1)
        z = z.double()
        eps = [(z - ab.sqrt() * x) / (1 - ab).sqrt() for x in self.xs]  # ε if the data were x_k
        logp = torch.stack([-(e**2).flatten(1).sum(1) / 2 for e in eps], 1)  # log N(z; √ᾱ x_k, 1−ᾱ) + const
        w = torch.softmax(logp, 1).view(-1, 2, 1, 1, 1)
        uncond = (w * torch.stack(eps, 1)).sum(1)
        cond = torch.where((y == 0).view(-1, 1, 1, 1), eps[0], eps[1])
        return torch.where((y == NO_LABEL).view(-1, 1, 1, 1), uncond, cond).float()


def test_no_label_is_the_unconditional_path_and_a_zero_embedding_changes_nothing():
    model = tiny_unet(10)
    z, t = inputs()
    none = model(z, t)
    torch.testing.assert_close(model(z, t, torch.full((4,), NO_LABEL)), none)
    assert not torch.allclose(model(z, t, torch.tensor([0, 3, 5, 9])), none)  # a label does change ε
    with torch.no_grad():
        model.label_embed.weight.zero_()
    torch.testing.assert_close(model(z, t, torch.tensor([0, 3, 5, 9])), none)
    with pytest.raises(ValueError, match=r"class labels must be in 0\.\.9"):
        model(z, t, torch.tensor([0, 1, 2, 10]))


def test_drop_labels_drops_about_p_of_them_reproducibly():
    y = torch.arange(10_000) % 10
    a = drop_labels(y, 0.1, torch.Generator().manual_seed(4))
    b = drop_labels(y, 0.1, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    dropped = a == NO_LABEL
    assert 0.09 < dropped.float().mean() < 0.11
    assert torch.equal(a[~dropped], y[~dropped])  # kept labels are untouched
    assert torch.equal(drop_labels(y, 0.0, torch.Generator().manual_seed(4)), y)


def test_sample_labels_cycles_the_classes_or_repeats_one_digit():
    assert sample_labels(12, None, 10).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert sample_labels(3, 7, 10).tolist() == [7, 7, 7]
    for bad in (10, -2, 2.5, True):
        with pytest.raises(ValueError, match="digit must be a class 0..9"):
            sample_labels(3, bad, 10)


@pytest.mark.parametrize("w", [0.0, 0.5, 3.0])
def test_guided_prediction_follows_the_formula(w):
    model = tiny_unet(10)
    z, t = inputs()
    y = torch.tensor([1, 4, 4, 8])
    guided = ClassGuided(model, y, w)(z, t)
    eps_y, eps_none = model(z, t, y), model(z, t)
    torch.testing.assert_close(guided, (1 + w) * eps_y - w * eps_none, atol=1e-5, rtol=1e-5)


def test_guidance_is_validated_and_needs_a_conditional_model():
    for bad in (-0.1, float("nan"), 21.0, "2"):
        with pytest.raises(ValueError, match="guidance must be a number between 0 and 20"):
            ClassGuided(tiny_unet(10), torch.zeros(2, dtype=torch.long), bad)
    with pytest.raises(ValueError, match="class-conditional model"):
        ClassGuided(tiny_unet(None), torch.zeros(2, dtype=torch.long), 1.0)


@pytest.mark.parametrize("w", [0.0, 2.0])
def test_conditional_sampling_with_an_oracle_returns_the_requested_image(w):
    sched = preset_schedule("default")
    g = torch.Generator().manual_seed(3)
    xs = torch.rand((2, 1, 28, 28), generator=g) - 0.5
    oracle = TwoImageOracle(xs, sched)
    process, choice = GaussianProcess(sched), SamplerChoice("ddim", 50, seed=5)
    for digit in (0, 1):
        out = sample(process, ClassGuided(oracle, sample_labels(3, digit, 2), w), choice, 3,
                     precision="fp32").samples
        torch.testing.assert_close(out, xs[digit].expand_as(out), atol=1e-3, rtol=0)
    # unconditional samples land on either image, not in between
    out = sample(process, ClassGuided(oracle, sample_labels(8, NO_LABEL, 2), w), choice, 8, precision="fp32").samples
    dist = torch.stack([(out - x).abs().amax((1, 2, 3)) for x in xs], 1)
    assert (dist.min(1).values < 1e-3).all()


def test_the_loss_sees_the_labels_of_its_shard():
    seen = []

    class Recorder(nn.Module):
        def forward(self, z, t, y=None):
            seen.append(y)
            return torch.zeros_like(z)

    x = torch.zeros((6, 1, 28, 28))
    y = torch.tensor([0, 1, 2, 3, 4, 5])
    ddpm_loss(Recorder(), make_schedule("linear", 1e-4, 0.02, 10), x, torch.Generator().manual_seed(0),
              slice(2, 4), y)
    ddpm_loss(Recorder(), make_schedule("linear", 1e-4, 0.02, 10), x, torch.Generator().manual_seed(0))
    assert seen[0].tolist() == [2, 3] and seen[1] is None


def test_an_unconditional_unet_starts_a_conditional_one_unchanged(tmp_path):
    plain = tiny_unet(None, seed=1)
    path = save_checkpoint(tmp_path / "plain", plain, {"model": {"arch": "unet", "params": TINY_UNET},
                                                       "diffusion": NOISE})
    cond_config = {"arch": "unet", "params": {**TINY_UNET, "num_classes": 10}}
    config = TrainConfig(diffusion=NOISE, model=cond_config, init_from=str(path))
    model = build_model(cond_config)
    init_weights(model, load_checkpoint(path), config)
    z, t = inputs()
    torch.testing.assert_close(model(z, t, torch.tensor([0, 2, 7, 9])), plain(z, t))
    cnn = save_checkpoint(tmp_path / "cnn", build_model({"arch": "cnn", "params": {"hidden": [4, 4]}}),
                          {"model": {"arch": "cnn", "params": {"hidden": [4, 4]}}, "diffusion": NOISE})
    with pytest.raises(ValueError, match="does not fit this run"):
        init_weights(build_model(cond_config), load_checkpoint(cnn), config)


def test_conditional_training_config_is_checked():
    cond = {"arch": "unet", "params": {**TINY_UNET, "num_classes": 10}}
    with pytest.raises(ValueError, match="label_dropout must be a number with 0 ≤ p < 1"):
        TrainConfig(diffusion=NOISE, model=cond, label_dropout=1.0).validate()
    cold = {"type": "cold", "degradation": {"kind": "blur", "T": 10}}
    with pytest.raises(ValueError, match="class-conditional model needs Gaussian-noise diffusion"):
        TrainConfig(diffusion=cold, model=cond).validate()
    with pytest.raises(ValueError, match="num_classes must be 10"):
        TrainConfig(diffusion=NOISE, model={"arch": "unet", "params": {**TINY_UNET, "num_classes": 7}}).validate()


def test_train_conditional_then_sample_a_digit_from_the_cli(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--arch", "unet", "--base-channels", "8", "--conditional",
                 "--label-dropout", "0.2", "--schedule", "linear", "--T", "20", "--epochs", "1", "--limit", "32",
                 "--batch-size", "16", "--no-download", "--quiet"]) == 0
    ck = load_checkpoint(run / "model.safetensors")
    assert ck.config["model"]["params"]["num_classes"] == 10 and ck.config["training"]["label_dropout"] == 0.2
    a = sample_checkpoint(ck, SamplerChoice("ddim", 5, seed=0, digit=3, guidance=1.0), 4).samples
    b = sample_checkpoint(ck, SamplerChoice("ddim", 5, seed=0, digit=5, guidance=1.0), 4).samples
    assert not torch.allclose(a, b)  # the digit reaches the network
    # the checkpoint's stored guidance is the default
    stored = save_checkpoint(tmp_path / "stored", ck.model, {**ck.config, "guidance": 1.0})
    torch.testing.assert_close(sample_checkpoint(load_checkpoint(stored), SamplerChoice("ddim", 5, seed=0, digit=3), 4)
                               .samples, a)
    # the run's previews are the digits 0–9 in turn, unguided (w = 0), 20 DDIM steps
    preview = np.load(run / "samples" / "epoch_0001.npy")
    unguided = sample_checkpoint(ck, SamplerChoice("ddim", 20, seed=0, guidance=0.0), 16).samples
    np.testing.assert_allclose(preview, to_unit_numpy(unguided), atol=1e-5)
    out = tmp_path / "s"
    assert main(["sample", str(run), "--n", "2", "--sampler", "ddim", "--steps", "3", "--digit", "7",
                 "--guidance", "2", "--out", str(out)]) == 0
    assert (tmp_path / "s.npy").is_file()
    capsys.readouterr()
    assert main(["train", "--out", str(tmp_path / "r2"), "--conditional", "--epochs", "1", "--no-download"]) == 2
    assert "--conditional needs a U-Net" in capsys.readouterr().err


def test_digit_or_guidance_on_an_unconditional_model_is_refused(tiny_noise_checkpoint, capsys):
    ck = load_checkpoint(tiny_noise_checkpoint)
    with pytest.raises(ValueError, match="not class-conditional"):
        sample_checkpoint(ck, SamplerChoice("ddim", 3, digit=1), 2)
    assert main(["sample", str(tiny_noise_checkpoint), "--guidance", "1", "--n", "2"]) == 2
    assert "not class-conditional" in capsys.readouterr().err


def test_a_bad_stored_guidance_is_refused_on_load(tmp_path):
    path = save_checkpoint(tmp_path / "c", tiny_unet(10), {"model": {"arch": "unet", "params": {
        **TINY_UNET, "num_classes": 10}}, "diffusion": NOISE, "guidance": 1.5})
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["guidance"] = -3
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="guidance must be a number between 0 and 20"):
        load_checkpoint(path)
