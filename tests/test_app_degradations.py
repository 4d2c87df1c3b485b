"""Degradations page: the preview over t (Figure 6's σ_t = 0.02 + 0.01·t and its strip), parameter
errors, the cold-model picker, restorations with RMSE / SSIM, black vs mixture starts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusion_core.evaluation.restoration_metrics import rmse, ssim
from diffusion_core.io.checkpoints import load_checkpoint, save_checkpoint
from diffusion_core.io.data import load_dataset
from diffusion_core.io.images import to_unit_numpy
from diffusion_core.models import build_model
from diffusion_core.process import ColdProcess, SamplerChoice
from diffusion_core.process.degradations import make_degradation
from diffusion_core.samplers import run_to_end
from tests.app_support import TINY_CNN, app, charts, errors, no_exceptions, shipped_folder, write_checkpoint

PAGE = "pages/4_Degradations.py"


@pytest.fixture(autouse=True)
def shipped(tmp_path, monkeypatch):
    # (st.cache_resource is not cleared: models are cached by path, and the test digits load once)
    return shipped_folder(tmp_path, monkeypatch, fresh_caches=False)


def write_cold(folder, name="blur10", T=10):
    torch.manual_seed(2)
    blur = make_degradation("blur", T=T)
    return save_checkpoint(folder / name, build_model(TINY_CNN), {
        "model": TINY_CNN, "diffusion": {"type": "cold", "degradation": blur.config(), "loss": "l2"},
        "dataset": "mnist", "epochs": 1})


def test_report_blur_preview_and_no_cold_model(shipped):
    write_checkpoint(shipped, "noise", T=20)  # a noise model is not offered for restorations
    at = app(PAGE).run()
    no_exceptions(at)
    fig = charts(at)[0]
    t = np.arange(501)
    np.testing.assert_allclose(fig["data"][0]["y"], 0.02 + 0.01 * t, atol=1e-12)  # σ_t of the report
    np.testing.assert_allclose(fig["data"][0]["x"], t)
    assert fig["layout"]["title"]["text"] == "blur degradation, linear schedule, T = 500"
    assert fig["layout"]["xaxis2"]["ticktext"] == [f"t={v}" for v in range(0, 501, 50)]  # the image strip
    assert "σ_t at t = 0, 50, 100" in at.caption[0].value and "0.02, 0.52, 1.02" in at.caption[0].value
    assert any(i.value.startswith("No trained cold-diffusion model") for i in at.info)
    assert "Go to Train" in [p.proto.label for p in at.page_link]
    assert not at.main.button  # nothing to restore with


def test_other_kinds_and_schedules_follow_their_formulas():
    at = app(PAGE).run()
    at.selectbox(key="deg_kind").set_value("pixelate").run()
    at.number_input(key="deg_T_pixelate").set_value(20)
    at.selectbox(key="deg_schedule").set_value("quadratic")
    at.number_input(key="deg_pixelate_min_size").set_value(7).run()
    no_exceptions(at)
    assert errors(at) == []
    fig = charts(at)[0]
    s = (np.arange(21) / 20) ** 2
    np.testing.assert_allclose(fig["data"][0]["y"], np.round(28 - s * (28 - 7)))  # blocks per side r_t
    assert fig["layout"]["annotations"][0]["text"] == "blocks per side r_t (28-pixel image)"
    assert fig["layout"]["title"]["text"] == "pixelate degradation, quadratic schedule, T = 20"


def test_bad_parameters_show_an_error_instead_of_the_preview():
    at = app(PAGE).run()
    at.number_input(key="deg_blur_sigma_max").set_value(0.01).run()
    no_exceptions(at)
    assert errors(at) == ["Cannot preview this degradation: blur degradation: sigma_max must be ≥ sigma_min; "
                          "got sigma_min=0.02, sigma_max=0.01"]
    assert charts(at) == []
    at.number_input(key="deg_blur_sigma_max").set_value(5.02)
    at.number_input(key="deg_blur_kernel_size").set_value(4).run()
    assert "kernel_size must be an odd integer" in errors(at)[0]
    at.number_input(key="deg_blur_kernel_size").set_value(None)
    at.number_input(key="deg_digit").set_value(600).run()  # the bundled test split has 500 digits
    assert errors(at) == ["Cannot preview this degradation: test digit must be below 500 (the size of the test "
                          "set here)"]


def test_restorations_side_by_side_with_their_scores(shipped):
    write_checkpoint(shipped, "noise", T=20)
    path = write_cold(shipped)
    at = app(PAGE).run()
    no_exceptions(at)
    assert at.selectbox(key="deg_model_choice").options == [  # cold models only, and upload
        "Shipped · blur10 (cnn · cold blur · 1 epoch)", "Upload a checkpoint…"]
    at.number_input(key="deg_digit").set_value(3)
    at.number_input(key="deg_steps").set_value(4)
    at.button(key="deg_restore").click().run()
    no_exceptions(at)
    assert errors(at) == []
    table = at.dataframe[0].value
    assert list(table["sampler"]) == ["improved", "naive", "direct"]

    ckpt = load_checkpoint(path)  # the same restorations, computed here from the cold samplers themselves
    blur = make_degradation("blur", T=10)
    x = load_dataset("mnist", "test", download=False).images[3:4]
    original = to_unit_numpy(x)
    for sampler, row in zip(table["sampler"], table.itertuples(), strict=True):
        choice = SamplerChoice(sampler, None if sampler == "direct" else 4, start=blur(x, 10))
        restored = to_unit_numpy(run_to_end(ColdProcess(blur).frames(ckpt.model, choice, len(x))).samples)
        assert row.RMSE == pytest.approx(float(rmse(restored, original)[0]), abs=1e-6)
        assert row.SSIM == pytest.approx(float(ssim(restored, original)[0]), abs=1e-6)
    # charts: the degradation over t, its power spectrum, then the restorations
    titles = [a["text"] for a in charts(at)[2]["layout"]["annotations"]]
    assert titles == ["original", "degraded, t = 10", "improved (4 steps)", "naive (4 steps)", "direct (1 step)"]

    at.number_input(key="deg_steps").set_value(5).run()  # changed inputs: the old result is not shown
    assert not at.dataframe


def generate_four(shipped):
    """The page on a shipped cold model after Generate: 4 images from each start, 5 steps."""
    write_cold(shipped)
    at = app(PAGE).run()
    at.number_input(key="deg_uncond_n").set_value(4)
    at.number_input(key="deg_uncond_steps").set_value(5)
    at.button(key="deg_generate").click().run()
    no_exceptions(at)
    return at


def test_black_start_collapses_while_the_mixture_varies(shipped):
    at = generate_four(shipped)
    assert errors(at) == []
    spread = {m.label: float(m.value) for m in at.metric}
    assert spread["Spread · black start"] == 0.0  # every sample is the same image
    assert spread["Spread · mixture start"] > 0.01
    samples = at.session_state["deg_uncond"]["samples"]
    assert samples["black"].shape == (4, 28, 28)
    assert np.ptp(samples["black"], axis=0).max() == 0.0


def test_an_uploaded_noise_model_is_refused_for_restorations(tmp_path):
    path = write_checkpoint(tmp_path, "up", T=20)
    at = app(PAGE).run()
    at.file_uploader(key="deg_model_weights").upload("m.safetensors", path.read_bytes())
    at.file_uploader(key="deg_model_config").upload("m.json", path.with_suffix(".json").read_bytes())
    at.run()
    no_exceptions(at)
    assert errors(at) == ["This upload is a noise diffusion model; this part of the page needs a cold-diffusion model "
                          "(one trained with a degradation)."]
    assert not at.main.button


def test_a_mask_preview_is_headed_masked_not_blurred():
    """Before: the mask and pixelate strips were headed 'x blurred at t = …'."""
    at = app(PAGE).run()
    at.selectbox(key="deg_kind").set_value("mask").run()
    no_exceptions(at)
    titles = [a["text"] for a in charts(at)[0]["layout"]["annotations"]]
    assert titles[1].startswith("x masked at t = 0, ") and not any("blurred" in t for t in titles)


def test_out_of_range_numbers_are_named_and_refused():
    """Before: the boxes had min/max, so 0 steps or 1 image silently became the last valid value."""
    at = app(PAGE).run()
    at.number_input(key="deg_T_blur").set_value(0).run()
    no_exceptions(at)
    message = "Steps T must be a whole number from 1 to 10,000; got 0"
    assert errors(at) == [message, f"Cannot preview this degradation: {message}"]
    assert charts(at) == []  # no preview from a value the box did not show


def test_the_unconditional_numbers_are_refused_by_generate(shipped):
    write_cold(shipped)
    at = app(PAGE).run()
    at.number_input(key="deg_uncond_n").set_value(1)
    at.button(key="deg_generate").click().run()
    no_exceptions(at)
    message = "Images must be a whole number from 2 to 16; got 1"
    assert errors(at) == [message, f"Could not sample: {message}"]
    assert "deg_uncond" not in at.session_state


def test_the_black_start_text_is_true_to_the_samples_and_shows_why(shipped):
    """Before: the text said the black start 'draws one digit over and over' under eight empty squares."""
    at = generate_four(shipped)
    assert not [c for c in at.caption if "one digit over and over" in c.value]
    why = at.session_state["deg_uncond"]["why"]
    samples = at.session_state["deg_uncond"]["samples"]["black"]
    text = next(m.value for m in at.markdown if m.value.startswith("**Why the black start collapses.**"))
    assert text == "**Why the black start collapses.** " + why.explanation(4, "blur")
    assert why.black_brightest == pytest.approx(float(samples.max()))
    shown = "empty (black) squares" if samples.max() < 0.2 else "one image"
    assert f"ends at {shown}" in text
    panels = [a["text"] for a in charts(at)[-1]["layout"]["annotations"]]
    assert panels == ["black start x_T = D(black, T)", "real digits at t = T", "mixture start x_T",
                      "R(x_T, T) from the black start", "R(x_T, T) from real digits at t = T"]
