"""Cold diffusion: Algorithm 3's loss, the direct / naive / improved samplers, black and mixture
starts, the training objective, checkpoint sampling and the CLI end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from diffusion_core.cli import main
from diffusion_core.io.checkpoints import load_checkpoint, save_checkpoint
from diffusion_core.models import build_model
from diffusion_core.process import ColdProcess, SamplerChoice, Start
from diffusion_core.process.cold import (
    Restorer,
    black_start,
    cold_loss,
    cold_start,
    conditional_start,
    fit_mixture_start,
)
from diffusion_core.process.degradations import DEGRADATION_KINDS, make_degradation
from diffusion_core.samplers import run_to_end, samplers_of, spaced_timesteps
from diffusion_core.samplers.cold import sample_improved
from diffusion_core.sampling import sample_checkpoint
from diffusion_core.training.objectives import Objective, objective_from_config
from tests.idx_files import write_idx_split

REPO = Path(__file__).resolve().parent.parent
TINY_CNN = {"arch": "cnn", "params": {"hidden": [4, 4], "kernel_size": 3, "time_embed_dim": 8}}
SMALL_T = {"blur": 40, "cumulative-blur": 15, "mask": 30, "pixelate": 25, "fade": 20, "noise-blur": 40}


# -- controlled data: eight stroke "classes", each shifted by up to 2 pixels -------------------------

def _template(k: int) -> np.ndarray:
    yy, xx = np.mgrid[0:28, 0:28]
    r = np.hypot(yy - 13.5, xx - 13.5)
    shapes = [
        (r > 6) & (r < 9),  # ring
        (abs(xx - 14) < 2) & (abs(yy - 14) < 10),  # vertical bar
        (abs(yy - 14) < 2) & (abs(xx - 14) < 10),  # horizontal bar
        (abs(yy - xx) < 2) & (r < 11),  # diagonal \
        (abs(yy + xx - 27) < 2) & (r < 11),  # diagonal /
        ((abs(xx - 14) < 2) | (abs(yy - 14) < 2)) & (r < 10),  # cross
        (abs(yy - 7) < 2) & (xx > 6) & (xx < 22) | (abs(xx - 21) < 2) & (yy > 6) & (yy < 22),  # 7-like
        (abs(xx - 8) < 2) & (yy > 5) & (yy < 22) | (abs(yy - 21) < 2) & (xx > 6) & (xx < 22),  # L
    ]
    return shapes[k].astype(np.float32)


def stroke_images() -> tuple[torch.Tensor, torch.Tensor]:
    """72 images (8 classes × 9 shifts) in data space, and their class labels."""
    imgs, labels = [], []
    for k in range(8):
        for dy in (-2, 0, 2):
            for dx in (-2, 0, 2):
                imgs.append(np.roll(_template(k), (dy, dx), axis=(0, 1)))
                labels.append(k)
    return torch.from_numpy(np.stack(imgs))[:, None] - 0.5, torch.tensor(labels)


class Constant(nn.Module):
    """R(z, t) = a fixed batch of images, whatever its input (a 'perfect' restorer when it is x)."""

    def __init__(self, images: torch.Tensor) -> None:
        super().__init__()
        self.images = images

    def forward(self, z, t):
        return self.images.clone()


class Identity(nn.Module):
    def forward(self, z, t):
        return z


class NearestRestorer(nn.Module):
    """An oracle over a bank of real images: R(z, t) = the bank image x_i whose D(x_i, t) is nearest z."""

    def __init__(self, bank: torch.Tensor, degradation) -> None:
        super().__init__()
        self.bank, self.d = bank, degradation

    def forward(self, z, t_norm):
        t = round(float(t_norm[0]) * self.d.T)
        cands = self.d(self.bank, t)
        dist = ((z[:, None] - cands[None]) ** 2).sum(dim=(2, 3, 4))
        return self.bank[dist.argmin(dim=1)]


def nearest_labels(x: torch.Tensor, bank: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return labels[torch.cdist(x.flatten(1), bank.flatten(1)).argmin(dim=1)]


# -- Algorithm 3 -------------------------------------------------------------------------------------

@pytest.mark.parametrize("loss", ["l2", "l1"])
def test_algorithm_3_loss_against_its_formula(loss):
    """Identity restorer with fade: x − R(D(x, t)) = s_t·(x − c), with t drawn as the loss draws it."""
    d = make_degradation("fade", 20, target=0.0)
    x, _ = stroke_images()
    x = x[:16]
    got = cold_loss(Identity(), d, x, torch.Generator().manual_seed(5), loss)
    t = torch.randint(1, 21, (16,), generator=torch.Generator().manual_seed(5))
    err = (t.double() / 20).view(-1, 1, 1, 1) * (x.double() + 0.5)
    want = (err**2).mean() if loss == "l2" else err.abs().mean()
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    assert cold_loss(Constant(x), d, x, torch.Generator().manual_seed(5), loss).item() == 0.0


def test_loss_shards_of_a_global_batch_average_to_the_whole_batch_loss():
    """Distributed training: each rank draws t and ε for the whole batch and takes its own shard."""
    d = make_degradation("noise-blur", 30)
    x, _ = stroke_images()
    x = x[:16]
    whole = cold_loss(Identity(), d, x, torch.Generator().manual_seed(9))
    halves = [cold_loss(Identity(), d, x, torch.Generator().manual_seed(9), shard=sl)
              for sl in (slice(0, 8), slice(8, 16))]
    assert whole.item() == pytest.approx(sum(h.item() for h in halves) / 2, rel=1e-5)


# -- samplers ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", DEGRADATION_KINDS)
def test_improved_sampler_with_a_perfect_restorer_gives_back_x(kind):
    """Starting from x_T = D(x, T) and R returning the true x, every state is x_t = D(x, t)
    and the last is x."""
    d = make_degradation(kind, SMALL_T[kind])
    x, _ = stroke_images()
    x = x[::9]
    eps = d.draw_noise(tuple(x.shape), torch.Generator().manual_seed(0))
    R = Restorer(Constant(x), d, eps)
    frames = list(sample_improved(R, d(x, d.T, eps), spaced_timesteps(d.T, d.T), torch.Generator()))
    assert [f.t for f in frames] == list(range(d.T, -1, -1))
    for f in frames[:: max(1, d.T // 4)]:
        assert torch.allclose(f.z, d(x, f.t, eps), atol=1e-4)
    assert torch.allclose(frames[-1].z, x, atol=1e-4)
    assert torch.equal(frames[-1].z, frames[-1].x0_hat)


def test_improved_cancels_a_restorer_error_that_naive_keeps():
    """The paper's key property, exactly: with R = x + δ for blur (D(·, t) = B_t·), improved ends at
    x + (δ − B_T δ) and naive at x + δ. A brightness error δ = c survives blur (B_T c = c), so improved
    returns x exactly while naive is off by c; the same holds with fewer steps. (With a truly perfect
    R both end at x: naive's x_s = D(x, s) is then exact too.)"""
    d = make_degradation("blur", 40)
    x, _ = stroke_images()
    x = x[::9]
    const = torch.full_like(x, 0.07)
    process = ColdProcess(d)
    for steps in (None, 8):
        improved = list(process.frames(Constant(x + const), SamplerChoice("improved", steps, start=d(x, 40)),
                                       len(x)))[-1].z
        naive = list(process.frames(Constant(x + const), SamplerChoice("naive", steps, start=d(x, 40)),
                                    len(x)))[-1].z
        assert torch.allclose(improved, x, atol=1e-5)
        assert torch.allclose(naive, x + 0.07, atol=1e-5)
    delta = 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    improved = list(process.frames(Constant(x + delta), SamplerChoice("improved", start=d(x, 40)), len(x)))[-1].z
    assert torch.allclose(improved, x + delta - d(delta, 40), atol=1e-4)


def test_direct_and_naive_frames():
    d = make_degradation("pixelate", 25)
    x, _ = stroke_images()
    x = x[:4]
    x_T = d(x, 25)
    process = ColdProcess(d)
    direct = list(process.frames(Constant(x), SamplerChoice("direct", start=x_T), len(x)))
    assert [f.t for f in direct] == [25, 0]
    assert torch.equal(direct[0].z, x_T) and torch.equal(direct[0].x0_hat, x) and torch.equal(direct[1].z, x)
    naive = list(process.frames(Constant(x), SamplerChoice("naive", 5, start=x_T), len(x)))
    assert [f.t for f in naive] == [25, 19, 13, 7, 1, 0]
    assert torch.allclose(naive[2].z, d(x, 13))  # x_s = D(x̂0, s)


def test_sampler_arguments_are_checked():
    d = make_degradation("blur", 10)
    x = torch.zeros(2, 1, 28, 28)
    with pytest.raises(ValueError, match="cold sampler must be one of improved, naive, direct"):
        ColdProcess(d).frames(Identity(), SamplerChoice("ancestral", start=x), len(x))
    with pytest.raises(ValueError, match="steps must be an integer between 1 and T=10"):
        ColdProcess(d).frames(Identity(), SamplerChoice("improved", 11, start=x), len(x))
    with pytest.raises(ValueError, match="start must be one of mixture, black"):
        cold_start(d, Start("white"), 4, torch.Generator())
    with pytest.raises(ValueError, match="needs a fitted mixture"):
        cold_start(d, Start("mixture"), 4, torch.Generator())
    with pytest.raises(ValueError, match="cold loss must be one of"):
        cold_loss(Identity(), d, x, torch.Generator(), "huber")


# -- starts --------------------------------------------------------------------------------------------

def test_black_start_is_the_degraded_black_image():
    for kind, value in (("blur", -0.5), ("mask", -0.5), ("pixelate", -0.5)):
        assert torch.allclose(black_start(make_degradation(kind, 10), 3), torch.full((3, 1, 28, 28), value),
                              atol=1e-6)
    fade = make_degradation("fade", 10, target=0.25)
    assert torch.allclose(black_start(fade, 2), torch.full((2, 1, 28, 28), -0.25))


def test_mixture_start_is_seeded_and_looks_like_degraded_images():
    d = make_degradation("blur", 40)
    bank, _ = stroke_images()
    mix = fit_mixture_start(d, bank, seed=0)
    a = mix.sample(64, torch.Generator().manual_seed(1))
    b = fit_mixture_start(d, bank, seed=0).sample(64, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert not torch.equal(a, mix.sample(64, torch.Generator().manual_seed(2)))
    target = d(bank, 40)
    assert (a.mean(0) - target.mean(0)).abs().max() < 0.05
    # smooth like blurred images: little energy left between neighbouring pixels
    rough = lambda v: (v[..., 1:] - v[..., :-1]).pow(2).mean().sqrt()  # noqa: E731
    assert rough(a) < 3 * rough(target) + 0.02 and rough(a) < 0.1 * rough(bank)


def test_mixture_start_gives_more_varied_digits_than_black():
    """Controlled setup: a nearest-neighbour oracle restorer over 72 real images of 8 stroke classes.
    It restores perfectly whatever it recognises, so any difference between the starts comes from the
    start alone (a briefly trained network would add its own errors and cost minutes). The report's
    black start is one point, so every sample is the same digit; the paper's mixture spreads x_T
    over fully blurred images, so the improved sampler lands on many classes."""
    bank, labels = stroke_images()
    d = make_degradation("blur", 40)
    oracle = NearestRestorer(bank, d)
    mix = fit_mixture_start(d, bank, seed=0)
    process = ColdProcess(d)
    black = run_to_end(process.frames(oracle, SamplerChoice("improved", 10, seed=0, start="black"), 32)).samples
    mixed = run_to_end(process.frames(oracle, SamplerChoice("improved", 10, seed=0, start=Start(fitted=mix)),
                                      32)).samples

    def spread(x):
        return torch.pdist(x.flatten(1)).mean().item(), len(set(nearest_labels(x, bank, labels).tolist()))

    (black_dist, black_classes), (mix_dist, mix_classes) = spread(black), spread(mixed)
    assert black_classes == 1 and black_dist < 1e-6
    assert mix_classes >= 4
    assert mix_dist > 0.5 * torch.pdist(bank.flatten(1)).mean().item()


def test_conditional_start_from_degraded_digits():
    """Degrading real digits with conditional_start and sampling with the same seed keeps the hybrid's
    ε, so a perfect restorer gives the digits back exactly."""
    d = make_degradation("noise-blur", 40)
    bank, _ = stroke_images()
    x = bank[::9]
    x_T = conditional_start(d, x, seed=3)
    process = ColdProcess(d)
    final = run_to_end(process.frames(Constant(x), SamplerChoice("improved", seed=3, start=x_T), len(x))).samples
    assert torch.allclose(final, x, atol=1e-4)
    half = conditional_start(d, x, seed=3, t=20)
    choice = SamplerChoice("naive", 5, seed=3, start=half, t_start=20)
    final = run_to_end(process.frames(Constant(x), choice, len(x))).samples
    assert torch.allclose(final, x, atol=1e-5)
    with pytest.raises(ValueError, match="N×C×H×W"):
        cold_start(d, Start(states=x[0]), 1, torch.Generator())


# -- objective, checkpoints, CLI -------------------------------------------------------------------

def test_cold_objective_from_config_and_its_preview():
    obj = objective_from_config({"type": "cold", "degradation": {"kind": "blur", "T": 10}, "loss": "l1"})
    assert isinstance(obj, Objective) and isinstance(obj.process, ColdProcess) and obj.process.loss_kind == "l1"
    torch.manual_seed(0)
    model = build_model(TINY_CNN)
    black = obj.preview(model, 4, seed=0, device="cpu")
    assert black.shape == (4, 1, 28, 28)
    assert torch.allclose(black[0], black[3])  # nothing seen yet: the black start, one image
    bank, _ = stroke_images()
    obj.loss(model, bank[:40], torch.Generator().manual_seed(0))
    mixed = obj.preview(model, 4, seed=0, device="cpu")
    assert (mixed[0] - mixed[3]).abs().max() > 1e-3  # mixture start from the images it has seen
    with pytest.raises(ValueError, match="loss must be one of l2, l1"):
        objective_from_config({"type": "cold", "degradation": {"kind": "blur"}, "loss": "l3"})
    with pytest.raises(ValueError, match="unknown cold diffusion field"):
        objective_from_config({"type": "cold", "degradation": {"kind": "blur"}, "schedule": {}})


def write_mnist_idx(root: Path, n_train: int = 72) -> None:
    """Tiny MNIST IDX files (the stroke images) where torchvision looks for them."""
    bank, labels = stroke_images()
    pix = ((bank[:, 0] + 0.5) * 255).round().to(torch.uint8).numpy()
    for split, idx in (("train", np.arange(n_train) % len(pix)), ("test", np.arange(8))):
        write_idx_split(root / "MNIST" / "raw", split, pix[idx], labels.numpy()[idx])


def test_cold_checkpoint_sampling(tmp_path):
    write_mnist_idx(Path(os.environ["DIFFUSION_LAB_DATA"]))
    torch.manual_seed(1)
    config = {"model": TINY_CNN, "dataset": "mnist", "epochs": 1,
              "diffusion": {"type": "cold", "degradation": make_degradation("blur", 12).config(), "loss": "l2"}}
    ckpt = load_checkpoint(save_checkpoint(tmp_path / "cold", build_model(TINY_CNN), config))
    assert ckpt.process.samplers == samplers_of("cold")
    for sampler in samplers_of("cold"):
        a = sample_checkpoint(ckpt, SamplerChoice(sampler, seed=4, start="black"), n=3).samples
        b = sample_checkpoint(ckpt, SamplerChoice(sampler, seed=4, start="black"), n=3).samples
        assert a.shape == (3, 1, 28, 28) and torch.equal(a, b)
    m1 = sample_checkpoint(ckpt, SamplerChoice("improved", 4, seed=4), n=3).samples  # the mixture start
    assert (m1[0] - m1[1]).abs().max() > 1e-4
    with pytest.raises(ValueError, match="cold sampler must be one of"):
        sample_checkpoint(ckpt, SamplerChoice("ddim"), n=2)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "diffusion_core", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240)


def test_cli_train_and_sample_cold_end_to_end(tmp_path, capsys):
    write_mnist_idx(Path(os.environ["DIFFUSION_LAB_DATA"]))
    run = tmp_path / "run"
    done = run_cli("train", "--degradation", "blur", "--degradation-T", "20", "--loss", "l1", "--out", str(run),
                   "--limit", "64", "--epochs", "1", "--batch-size", "32", "--hidden", "4,4", "--kernel-size", "3",
                   "--quiet", "--no-download")
    assert done.returncode == 0, done.stderr
    meta = json.loads((run / "model.json").read_text())
    assert meta["diffusion"] == {"type": "cold", "loss": "l1", "degradation": {
        "kind": "blur", "T": 20, "schedule": "linear", "sigma_min": 0.02, "sigma_max": 5.02, "kernel_size": None}}
    assert np.load(run / "samples" / "epoch_0001.npy").shape == (16, 28, 28)

    # sampling in-process (one interpreter start is enough to prove the module entry point)
    assert main(["sample", str(run), "--n", "6", "--out", str(tmp_path / "imp")]) == 0  # improved, mixture
    out = np.load(tmp_path / "imp.npy")
    assert out.shape == (6, 28, 28) and out.min() >= 0 and out.max() <= 1
    assert (tmp_path / "imp.png").stat().st_size > 0
    for sampler in ("naive", "direct"):
        assert main(["sample", str(run), "--sampler", sampler, "--n", "4", "--start", "black",
                     "--steps", "5", "--out", str(tmp_path / sampler)]) == 0
        black = np.load(tmp_path / f"{sampler}.npy")
        assert black.shape == (4, 28, 28) and np.array_equal(black[0], black[3])  # one start, one image

    capsys.readouterr()
    assert main(["sample", str(run), "--sampler", "ancestral", "--out", str(tmp_path / "x")]) == 2
    assert "cold sampler must be one of improved, naive, direct" in capsys.readouterr().err
    assert main(["train", "--degradation", "blur", "--degradation-param", "sigma_max=-1",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "sigma_max must be a number" in capsys.readouterr().err
    assert main(["train", "--loss", "l1", "--out", str(tmp_path / "bad")]) == 2
    assert "need --degradation KIND" in capsys.readouterr().err
    assert main(["train", "--degradation", "mask", "--preset", "default", "--out", str(tmp_path / "bad")]) == 2
    assert "not both" in capsys.readouterr().err


def test_blur_generation_starts_where_the_blur_is_about_2_5_pixels():
    """generation_t: the last t with σ_t ≤ 2.52 for blur (t = 250 of the report's σ_t = 0.02 + 0.01·t, T = 500);
    T for the other kinds (measured for blur only) and for a blur that never gets that strong."""
    report = make_degradation("blur", 500)
    t = report.generation_t
    assert t == 250 and float(report.sigmas[t]) <= 2.52 < float(report.sigmas[t + 1])
    assert make_degradation("blur", 40, sigma_max=2.0).generation_t == 40
    assert make_degradation("noise-blur", 500).generation_t == 500
    assert make_degradation("mask", 100).generation_t == 100


def test_a_mixture_start_runs_from_where_its_mixture_is_fitted():
    """The default "mixture" start fits D(x, generation_t) and the walk starts there; a fitted mixture starts at
    its own t and refuses another; black cannot start midway."""
    bank, _ = stroke_images()
    d = make_degradation("blur", 40, sigma_max=5.02)  # σ_t = 0.02 + 0.125·t: generation_t = 20
    process = ColdProcess(d)
    oracle = NearestRestorer(bank, d)
    mix = fit_mixture_start(d, bank, seed=0, t=d.generation_t)
    assert mix.t == 20 == d.generation_t
    # the mixture models D(x, 20): its mean is that of the bank blurred to t = 20, not to T
    draws = mix.sample(256, torch.Generator().manual_seed(0))
    assert (draws.mean(0) - d(bank, 20).mean(0)).abs().max() < 0.05
    assert (draws.mean(0) - d(bank, 40).mean(0)).abs().max() > 0.05
    frames = list(process.frames(oracle, SamplerChoice("improved", 5, seed=0, start=Start(fitted=mix)), 4))
    assert frames[0].t == 20 and process.step_count(SamplerChoice("improved", 5, start=Start(fitted=mix))) == 5
    with pytest.raises(ValueError, match="at t = 20; a run from it starts there, not at t_start = 40"):
        process.step_count(SamplerChoice("improved", 5, start=Start(fitted=mix), t_start=40))
    assert process.resolve(SamplerChoice("improved", 5)).t_start == 20
    assert process.resolve(SamplerChoice("improved", 5, t_start=40)).t_start == 40
    with pytest.raises(ValueError, match="needs the degraded images x_t or the mixture"):
        process.start(SamplerChoice("improved", 5, start="black", t_start=20), 2, torch.Generator())
