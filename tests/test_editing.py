"""Editing with a noise model: re-noising follows q(z_{t+n} | z_t), SDEdit against known answers, DDIM inversion
round trips within a stated error, lerp and slerp, drawings framed as MNIST digits, and the Edit page."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusion_core.editing.inversion import (
    decode,
    interpolate,
    interpolation_paths,
    invert,
    noise_ends,
    norms_over_sqrt_d,
    round_trips,
)
from diffusion_core.editing.sdedit import drawing_to_digit, noised, renoise, sdedit, signal_left, strength_step
from diffusion_core.io.checkpoints import LoadedCheckpoint
from diffusion_core.process import GaussianProcess, SamplerChoice
from diffusion_core.process.gaussian import noise_diffusion_config
from diffusion_core.process.schedules import make_schedule, preset_schedule
from tests.app_support import app, charts, errors, no_exceptions, ship_tiny_model
from tests.test_samplers import GaussianOracleEps, OracleEps

MU, S = 0.1, 0.2


def oracle_checkpoint(model) -> LoadedCheckpoint:
    return LoadedCheckpoint(model, {"diffusion": noise_diffusion_config(preset="default"), "dataset": "mnist"},
                            Path("oracle.safetensors"))


@pytest.fixture(scope="module")
def schedule():
    return preset_schedule("default")


def test_renoising_continues_the_forward_process(schedule):
    """z_t then n more steps is distributed as z_{t+n} from x: mean √ᾱ_{t+n}·x, variance 1 − ᾱ_{t+n}."""
    process = GaussianProcess(schedule)
    x = torch.full((4000, 1, 2, 2), 0.3)
    z_t = noised(process, x, 200, seed=1)
    z_up, t_up = renoise(process, z_t, 200, 300, seed=2)
    ab = float(schedule.alpha_bars[500])
    assert t_up == 500
    assert float(z_up.mean()) == pytest.approx(math.sqrt(ab) * 0.3, abs=0.01)
    assert float(z_up.var()) == pytest.approx(1 - ab, rel=0.03)
    assert renoise(process, z_t, 200, 5000, seed=2)[1] == 1000  # capped at T
    with pytest.raises(ValueError, match="diffuse by a whole number of steps ≥ 1"):
        renoise(process, z_t, 200, 0)


def test_sdedit_keeps_the_one_image_an_oracle_knows_and_strength_0_changes_nothing(schedule):
    x_star = torch.rand((1, 1, 28, 28), generator=torch.Generator().manual_seed(3)) - 0.5
    ckpt = oracle_checkpoint(OracleEps(x_star, schedule))
    other = torch.zeros_like(x_star)
    for s in (0.3, 0.7, 1.0):
        out = sdedit(ckpt, other, s, SamplerChoice("ddim", 20, seed=0))
        assert out.t == round(s * 1000) and torch.allclose(out.edited, x_star, atol=1e-3)
        assert out.signal == pytest.approx(math.sqrt(float(schedule.alpha_bars[out.t])))
    same = sdedit(ckpt, other, 0.0, SamplerChoice("ddim", 20, seed=0))
    assert same.t == 0 and torch.equal(same.edited, other) and same.snr == math.inf
    assert signal_left(ckpt.process, 1000)["signal"] < 0.01
    with pytest.raises(ValueError, match="strength must be a number from 0 to 1; got 1.5"):
        strength_step(ckpt.process, 1.5)


def test_inversion_at_many_steps_reconstructs_within_a_stated_error(schedule):
    """With the exact ε of Gaussian data the ODE is known: z_T = aμ + (x − μ)·√(a²S² + b²)/S at t = T; DDIM
    inversion then decoding on 200 steps gives x back to RMSE < 0.02, and the error falls with the steps."""
    ckpt = oracle_checkpoint(GaussianOracleEps(MU, S, schedule))
    x = MU + S * torch.randn((4, 1, 28, 28), generator=torch.Generator().manual_seed(0))
    ab = float(schedule.alpha_bars[-1])
    exact = math.sqrt(ab) * MU + (x - MU) * math.sqrt(ab * S**2 + 1 - ab) / S
    z = invert(ckpt, x, 200)
    assert float((z - exact).norm() / exact.norm()) < 0.05  # Euler steps of the ODE: a few % off the exact z_T
    progress = []
    rt = round_trips(ckpt, x, [10, 50, 200], on_progress=lambda i, n: progress.append((i, n)))
    assert progress == [(1, 3), (2, 3), (3, 3)]  # what the page's progress bar shows
    assert rt.rmse[0] > rt.rmse[1] > rt.rmse[2] and rt.rmse[2] < 0.02  # pixels of spread S = 0.2: about 6 %
    assert float((decode(ckpt, exact, 200) - x).norm() / x.norm()) < 0.05
    with pytest.raises(ValueError, match="steps must be a whole number from 1 to 500"):
        invert(ckpt, x, 0)


def test_lerp_and_slerp(schedule):
    a, b = noise_ends((0, 1))[0], noise_ends((0, 1))[1]
    lerp, slerp = interpolate(a, b, 5, "lerp"), interpolate(a, b, 5, "slerp")
    for path in (lerp, slerp):
        assert torch.allclose(path[0], a, atol=1e-6) and torch.allclose(path[-1], b, atol=1e-5)
    assert torch.allclose(lerp[2], (a + b) / 2, atol=1e-6)
    # two independent noises are nearly orthogonal: the straight line's midpoint has ‖z‖ ≈ √(d/2), slerp keeps √d
    assert norms_over_sqrt_d(lerp)[2] == pytest.approx(math.sqrt(0.5), abs=0.06)
    assert all(v == pytest.approx(1.0, abs=0.06) for v in norms_over_sqrt_d(slerp))
    ckpt = oracle_checkpoint(GaussianOracleEps(MU, S, schedule))
    with pytest.raises(ValueError, match="the two ends are the same state"):
        interpolation_paths(ckpt, torch.stack([a, a]), 5)
    with pytest.raises(ValueError, match="interpolation must be one of lerp, slerp"):
        interpolate(a, b, 5, "cubic")


def test_a_drawing_becomes_a_centred_mnist_digit():
    rgba = np.full((224, 224, 4), 255, dtype=np.uint8)
    rgba[20:120, 150:170, :3] = 0  # a black bar, off centre, on white
    digit = drawing_to_digit(rgba)[0, 0] + 0.5
    assert digit.shape == (28, 28) and float(digit.max()) == pytest.approx(1.0, abs=0.02)
    rows, cols = torch.nonzero(digit > 0.1, as_tuple=True)
    assert int(rows.max() - rows.min()) + 1 in (19, 20, 21)  # the bar's long side scaled to 20 pixels
    mass = digit.sum()
    cy = float((torch.arange(28)[:, None] * digit).sum() / mass)
    cx = float((torch.arange(28)[None, :] * digit).sum() / mass)
    assert abs(cy - 13.5) <= 1 and abs(cx - 13.5) <= 1  # centred by its centre of mass, as MNIST
    with pytest.raises(ValueError, match="the drawing is empty"):
        drawing_to_digit(np.full((50, 50, 4), 255, dtype=np.uint8))


def test_the_edit_page_runs_each_tab_and_names_bad_input(tmp_path, monkeypatch):
    ship_tiny_model(tmp_path, monkeypatch, T=50)
    monkeypatch.setenv("DIFFUSION_LAB_RUNS", str(tmp_path / "runs"))
    at = app("pages/8_Edit.py").run(timeout=60)
    no_exceptions(at)
    assert any("Draw a digit on the canvas" in i.value for i in at.info)
    at.radio(key="ed_sd_source").set_value("A test digit").run()
    at.slider(key="ed_strength").set_value(0.3).run()
    tiny = make_schedule("linear", 1e-4, 0.02, 50)  # the shipped tiny model's schedule: s = 0.3 is t = 15
    assert {m.label: m.value for m in at.metric}["Signal left √ᾱ_t"] == f"{math.sqrt(float(tiny.alpha_bars[15])):.3f}"
    at.button(key="ed_run").click().run(timeout=120)
    no_exceptions(at)
    assert not errors(at)
    captions = [c for image in at.image for c in image.captions]
    assert "input" in captions and any(c.startswith("s = 0.3") for c in captions)
    at.button(key="ed_rt_run").click().run(timeout=120)
    assert not errors(at), errors(at)
    assert "Round trip x → z_T → x̂: reconstruction error against steps" in [
        f["layout"]["title"]["text"] for f in charts(at)]
    at.button(key="ed_ip_run").click().run(timeout=120)
    assert "‖z‖ / √d along the path" in [f["layout"]["title"]["text"] for f in charts(at)]
    at.number_input(key="ed_ip_b").set_value(0).run()
    at.button(key="ed_ip_run").click().run(timeout=120)
    no_exceptions(at)
    assert any("the two ends are the same state" in e for e in errors(at))


def test_sdedit_on_the_class_conditional_model_turns_a_3_into_an_8():
    """Sketch a 3, ask for an 8: the shipped class-conditional model at s = 0.8 draws 8s the classifier reads; asked
    for the 3 it sees, at s = 0.3 it keeps them 3s (measured, seed 0: 8 of 8 both; asked for nothing, 5 of 8 stay
    3s — its unconditional mode is its weakest, which is why the page asks for the digit drawn)."""
    from diffusion_core.editing.sdedit import classify
    from diffusion_core.evaluation.classifier import load_classifier
    from diffusion_core.io.checkpoints import load_checkpoint, resolve_checkpoint
    from diffusion_core.io.data import load_dataset

    ckpt = load_checkpoint(resolve_checkpoint("default-unet"))
    test = load_dataset("mnist", "test", download=False)
    threes = test.images[test.labels == 3][:8]
    classifier = load_classifier(None)
    asked = sdedit(ckpt, threes, 0.8, SamplerChoice("dpm++2m-sde", 20, seed=0, digit=8)).edited
    kept = sdedit(ckpt, threes, 0.3, SamplerChoice("dpm++2m-sde", 20, seed=0, digit=3)).edited
    assert [d for d, _ in classify(classifier, asked)].count(8) >= 7
    assert [d for d, _ in classify(classifier, kept)].count(3) >= 7


def test_the_guidance_tab_steers_by_ink_and_explains_a_missing_classifier(tmp_path, monkeypatch):
    ship_tiny_model(tmp_path, monkeypatch, T=50)
    monkeypatch.setenv("DIFFUSION_LAB_RUNS", str(tmp_path / "runs"))
    at = app("pages/8_Edit.py").run(timeout=60)
    assert any("Classifier guidance needs the noise-aware classifier" in i.value and "train-noisy-classifier" in
               i.value for i in at.info)
    assert at.button(key="ed_g_run").disabled  # classifier guidance without its classifier: refused up front
    at.selectbox(key="ed_g_kind").set_value("ink").run()
    at.button(key="ed_g_run").click().run(timeout=120)
    no_exceptions(at)
    assert not errors(at)
    captions = [c for image in at.image for c in image.captions]
    assert sum(c.startswith("w = 0") for c in captions) == 8 and sum(c.startswith("ink w = 4") for c in captions) == 8


def test_the_process_diffuses_between_any_two_levels_as_the_formula_says():
    """GaussianProcess.diffuse is the one forward map the editing tools use (SDEdit's z_t, Diffuse ↑, RePaint's
    jumps up): from 0 it is z_t = √ᾱ_t·x + √(1−ᾱ_t)·ε (process.gaussian.q_sample), from t to s it is
    q(z_s | z_t) = N(√(ᾱ_s/ᾱ_t)·z_t, (1 − ᾱ_s/ᾱ_t)·I)."""
    from diffusion_core.process.gaussian import q_sample

    process = GaussianProcess(preset_schedule("default"))
    g = torch.Generator().manual_seed(0)
    x, eps = torch.rand((3, 1, 28, 28), generator=g) - 0.5, torch.randn((3, 1, 28, 28), generator=g)
    torch.testing.assert_close(process.diffuse(x, 0, 400, eps),
                               q_sample(process.schedule, x, torch.full((3,), 400), eps).float())
    ab = process.schedule.alpha_bars.double()
    ratio = float(ab[700] / ab[250])
    expected = math.sqrt(ratio) * x.double() + math.sqrt(1 - ratio) * eps.double()
    torch.testing.assert_close(process.diffuse(x, 250, 700, eps).double(), expected, rtol=0, atol=1e-6)
    # the marginal it leaves: from x at 0 via 250 to 700 the noise adds up to 1 − ᾱ_700 of variance
    z = process.diffuse(process.diffuse(torch.zeros(20000), 0, 250, torch.randn(20000, generator=g)), 250, 700,
                        torch.randn(20000, generator=g))
    assert float(z.var()) == pytest.approx(1 - float(ab[700]), rel=0.03)
