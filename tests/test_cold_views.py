"""cold_views: parameter specs, the preview over t, restorations with known answers, the spread of
black-start and mixture-start samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from diffusion_core.evaluation.restoration_metrics import rmse, ssim
from diffusion_core.io.checkpoints import LoadedCheckpoint
from diffusion_core.models import build_model
from diffusion_core.process.degradations import DEGRADATION_KINDS, make_degradation
from diffusion_core.process.gaussian import noise_diffusion_config
from diffusion_core.views import degradations as view

TINY_CNN = {"arch": "cnn", "params": {"hidden": [4, 4], "kernel_size": 3, "time_embed_dim": 8}}


class Constant(nn.Module):
    """A restorer that always answers `x` (whatever it is shown)."""

    def __init__(self, x: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("x", x)

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.x.expand_as(z)


def cold(model: nn.Module, degradation) -> LoadedCheckpoint:
    config = {"model": TINY_CNN, "diffusion": {"type": "cold", "degradation": degradation.config(), "loss": "l2"},
              "dataset": "mnist"}
    return LoadedCheckpoint(model=model, config=config, path=Path("mem"))


def digits(n: int = 2) -> torch.Tensor:
    """Data-space images in [−0.4, 0.3]: a restorer error of +0.07 never leaves [0, 1] as pixels."""
    g = torch.Generator().manual_seed(3)
    return torch.rand((n, 1, 28, 28), generator=g) * 0.7 - 0.4


def test_parameters_list_each_kinds_defaults_and_integer_ones():
    blur = {p.name: p for p in view.degradation_parameters("blur")}
    assert {n: p.default for n, p in blur.items()} == {"sigma_min": 0.02, "sigma_max": 5.02, "kernel_size": None}
    assert blur["kernel_size"].integer and not blur["sigma_max"].integer
    assert [(p.name, p.default, p.integer) for p in view.degradation_parameters("pixelate")] == [("min_size", 4, True)]
    for kind in DEGRADATION_KINDS:  # the defaults rebuild the kind's default degradation
        params = {p.name: p.default for p in view.degradation_parameters(kind)}
        assert make_degradation(kind, **params).config() == make_degradation(kind).config()
    with pytest.raises(ValueError, match="degradation kind must be one of"):
        view.degradation_parameters("smudge")


def test_preview_of_the_report_blur_is_figure_6():
    x = digits(1)[0]
    p = view.degradation_preview(make_degradation("blur"), x)
    assert p.label == "blur σ_t"
    np.testing.assert_allclose(p.curve, 0.02 + 0.01 * np.arange(501), atol=1e-12)
    assert p.ts == list(range(0, 501, 50))
    np.testing.assert_allclose(p.frames[0], (x[0] + 0.5).numpy(), atol=1e-6)  # t = 0 is the image itself
    energy = [np.abs(np.diff(f, axis=1)).sum() for f in p.frames]  # blur removes detail as t grows
    assert all(a > b for a, b in zip(energy, energy[1:], strict=False))


def test_restorations_score_known_answers():
    """With R = x + 0.07 on the blur, improved gives back x exactly while naive and direct stay 0.07 off."""
    x = digits(2)
    d = make_degradation("blur", T=30)
    res = view.restore(cold(Constant(x + 0.07), d), x, steps=10)
    assert list(res.restored) == ["improved", "naive", "direct"] and res.t_start == 30
    np.testing.assert_allclose(res.original, (x[:, 0] + 0.5).numpy(), atol=1e-6)
    np.testing.assert_allclose(res.degraded, (d(x, 30)[:, 0] + 0.5).numpy(), atol=1e-5)
    assert res.scores["improved"]["rmse"] == pytest.approx(0, abs=1e-5)
    assert res.scores["improved"]["ssim"] == pytest.approx(1, abs=1e-5)
    assert res.scores["naive"]["rmse"] == pytest.approx(0.07, abs=1e-5)
    assert res.scores["direct"]["rmse"] == pytest.approx(0.07, abs=1e-5)
    for s, img in res.restored.items():  # the scores are restoration_metrics of the shown arrays
        assert res.scores[s]["rmse"] == pytest.approx(float(rmse(img, res.original).mean()))
        assert res.scores[s]["ssim"] == pytest.approx(float(ssim(img, res.original).mean()))


def test_restoration_from_a_partial_degradation_and_bad_inputs():
    x = digits(1)
    d = make_degradation("blur", T=30)
    res = view.restore(cold(Constant(x), d), x, samplers=("direct",), t_start=5)
    np.testing.assert_allclose(res.degraded, (d(x, 5)[:, 0] + 0.5).numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="t_start .* between 1 and T=30"):
        view.restore(cold(Constant(x), d), x, t_start=31)
    noise = LoadedCheckpoint(model=Constant(x), config={"diffusion": noise_diffusion_config()}, path=Path("m"))
    with pytest.raises(ValueError, match="restorations need a cold-diffusion model"):
        view.restore(noise, x)


def test_pairwise_spread():
    a = np.zeros((3, 28, 28))
    a[1] += 0.5  # RMSE to the others: 0.5, 0.5 and (image 2 equals image 0) 0
    assert view.mean_pairwise_distance(a) == pytest.approx((0.0 + 0.5 + 0.5) / 3)
    with pytest.raises(ValueError, match="at least 2 images"):
        view.mean_pairwise_distance(a[:1])


def test_black_start_collapses_and_the_mixture_does_not(monkeypatch, tmp_path):
    monkeypatch.setenv("DIFFUSION_LAB_DATA", str(tmp_path))
    torch.manual_seed(0)
    ckpt = cold(build_model(TINY_CNN), make_degradation("blur", T=10))
    out = view.unconditional_samples(ckpt, "improved", n=4, seed=1, steps=5)
    assert set(out) == {"mixture", "black"} and out["black"].shape == (4, 28, 28)
    assert view.mean_pairwise_distance(out["black"]) == 0.0  # one start image, a deterministic sampler
    assert view.mean_pairwise_distance(out["mixture"]) > 0.01


@pytest.mark.parametrize("kind,heading", [("blur", "x blurred at t = "), ("mask", "x masked at t = "),
                                          ("pixelate", "x pixelated at t = "), ("fade", "x faded at t = ")])
def test_the_strip_heading_says_what_the_degradation_does(kind, heading):
    """Before: every preview's strip was headed 'x blurred at t = …', masks and pixelation too."""
    p = view.degradation_preview(make_degradation(kind, T=20), digits(1)[0])
    assert p.kind == kind and p.strip_title == heading + ", ".join(map(str, p.ts))


def test_start_comparison_shows_why_black_collapses(monkeypatch, tmp_path):
    """A restorer that answers black: black-start samples are empty squares, all alike, and the words say so."""
    monkeypatch.setenv("DIFFUSION_LAB_DATA", str(tmp_path))
    blur = make_degradation("blur", T=10)
    ckpt = cold(Constant(torch.full((1, 1, 28, 28), -0.5)), blur)
    samples = view.unconditional_samples(ckpt, "improved", n=4, seed=0, steps=5)
    x = digits(3)
    why = view.start_comparison(ckpt, samples["black"], x, n=4, seed=0)
    assert list(why.starts) == ["black start x_T = D(black, T)", "real digits at t = T", "mixture start x_T"]
    assert why.starts["black start x_T = D(black, T)"].shape == (3, 28, 28)  # n: as many real digits as given
    assert why.starts["black start x_T = D(black, T)"].max() < 1e-6
    np.testing.assert_allclose(why.starts["real digits at t = T"], (blur(x, 10)[:, 0] + 0.5).clip(0, 1).numpy(),
                               atol=1e-5)
    assert why.real_T_mean == pytest.approx(float((blur(x, 10) + 0.5).clamp(0, 1).mean()), abs=1e-5)
    assert why.black_spread == 0.0 and why.black_brightest < 1e-6 and why.black_T_mean < 1e-6
    text = why.explanation(4, "blur")
    assert text.startswith("All 4 black-start samples begin from one image, x_T = D(black, T)")
    assert "spread 0" in text and "real digits blurred to t = T have a mean brightness of" in text
    assert "ends at empty (black) squares (brightest pixel 0.00)" in text
    assert "one digit" not in text  # what the page used to claim, untrue here


def test_a_black_start_that_matches_real_degraded_digits_is_explained_differently():
    """Fully masked digits are black as well: the start is not unusual, it just says nothing."""
    mask = make_degradation("mask", T=10)
    ckpt = cold(Constant(torch.zeros(1, 1, 28, 28)), mask)
    x = digits(2)
    why = view.start_comparison(ckpt, np.full((4, 28, 28), 0.5), x, n=2)
    assert why.real_T_mean == pytest.approx(0.0, abs=1e-6) and why.black_brightest == 0.5
    text = why.explanation(4, "mask")
    assert "Real digits masked to t = T look the same" in text and "ends at one image" in text


def test_the_mixture_run_takes_at_most_its_start_t_steps(monkeypatch, tmp_path):
    """Blur with T = 10 starts generation at t = 5 (σ_5 = 2.52): asked for 10 steps, the black run takes 10 and the
    mixture's run the 5 it has, the same samples as asking it for 5."""
    monkeypatch.setenv("DIFFUSION_LAB_DATA", str(tmp_path))
    torch.manual_seed(0)
    ckpt = cold(build_model(TINY_CNN), make_degradation("blur", T=10))
    assert ckpt.process.degradation.generation_t == 5
    ten = view.unconditional_samples(ckpt, "improved", n=3, seed=2, steps=10)
    five = view.unconditional_samples(ckpt, "improved", n=3, seed=2, steps=5, starts=("mixture",))
    np.testing.assert_array_equal(ten["mixture"], five["mixture"])
