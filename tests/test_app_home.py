"""Home page: the no-model message, one-click Generate from the default model, links to every page."""

from __future__ import annotations

import numpy as np
import pytest

from diffusion_core.io.checkpoints import load_checkpoint
from diffusion_core.io.images import to_unit_numpy
from diffusion_core.sampling import SamplerChoice, sample_checkpoint
from pages.lab_ui import default_checkpoint
from tests.app_support import app, errors, no_exceptions, shipped_folder, write_checkpoint, write_conditional_checkpoint


@pytest.fixture(autouse=True)
def _fresh(tmp_path, monkeypatch):
    return shipped_folder(tmp_path, monkeypatch)


def test_without_shipped_models_home_says_so_and_links_to_train():
    at = app().run()
    no_exceptions(at)
    assert any("No model is shipped" in i.value for i in at.info)
    assert not at.main.button  # nothing to generate from
    labels = [p.proto.label for p in at.page_link]
    assert "Train a model" in labels
    for page in ("Train", "Schedules", "Reverse diffusion"):
        assert any(label.startswith(f"{page} — ") for label in labels), labels


def test_generate_draws_a_4x4_grid_from_the_default_model(_fresh):
    path = write_checkpoint(_fresh, "tiny", T=20)
    at = app().run()
    no_exceptions(at)
    assert not at.image
    at.number_input(key="home_seed").set_value(3)
    at.button(key="home_generate").click().run()
    no_exceptions(at)
    assert errors(at) == []
    caption = at.image[0].captions[0]
    assert caption.startswith("tiny (cnn · noise linear T=20 · 1 epoch)")
    assert "dpm++2m-sde, 20 steps · seed 3" in caption
    grid = at.session_state["home_grid"]["images"]
    assert grid.shape == (16, 28, 28)
    expected = sample_checkpoint(load_checkpoint(path), SamplerChoice("dpm++2m-sde", 20, seed=3), 16).samples
    expected = to_unit_numpy(expected)
    np.testing.assert_allclose(grid, expected, atol=1e-5)  # the same seed gives the same digits
    at.run()
    assert at.image[0].captions == [caption]  # the grid survives reruns


def test_a_conditional_default_model_offers_digit_and_guidance(_fresh):
    path = write_conditional_checkpoint(_fresh, "cond", guidance=1.5)
    at = app().run()
    no_exceptions(at)
    assert at.slider(key="home_guidance").value == 1.5  # the model's own default
    at.selectbox(key="home_digit").set_value(3)
    at.slider(key="home_guidance").set_value(2.5)
    at.button(key="home_generate").click().run()
    no_exceptions(at)
    assert "digit 3, guidance w = 2.5" in at.image[0].captions[0]
    expected = sample_checkpoint(load_checkpoint(path), SamplerChoice("dpm++2m-sde", 20, digit=3, guidance=2.5), 16)
    np.testing.assert_allclose(at.session_state["home_grid"]["images"], to_unit_numpy(expected.samples), atol=1e-5)


def test_an_unconditional_default_model_has_no_digit_input(_fresh):
    write_checkpoint(_fresh, "tiny", T=20)
    at = app().run()
    assert not [s for s in at.selectbox if s.key == "home_digit"] and not at.slider


def test_default_model_prefers_known_names_then_noise_models(_fresh, monkeypatch):
    assert default_checkpoint() is None
    write_checkpoint(_fresh, "b_model", T=20)
    write_checkpoint(_fresh, "a_model", T=20)
    assert default_checkpoint().stem == "a_model"  # first noise model by name
    write_checkpoint(_fresh, "default", T=20)
    assert default_checkpoint().stem == "default"
    write_checkpoint(_fresh, "default-unet", T=20)
    assert default_checkpoint().stem == "default-unet"
    assert default_checkpoint(unconditional=True).stem == "default-unet"  # no unconditional U-Net shipped
    write_checkpoint(_fresh, "quick-unet", T=20)
    assert default_checkpoint(unconditional=True).stem == "quick-unet"
    write_checkpoint(_fresh, "uncond-unet", T=20)
    assert default_checkpoint(unconditional=True).stem == "uncond-unet"
    assert default_checkpoint().stem == "default-unet"  # Home and the other pages keep the class-conditional one
    monkeypatch.setenv("DIFFUSION_LAB_DEFAULT_MODEL", "b_model")
    assert default_checkpoint().stem == "b_model"
    assert default_checkpoint(unconditional=True).stem == "b_model"


def test_a_broken_default_model_is_an_error_message_not_a_traceback(_fresh):
    path = write_checkpoint(_fresh, "tiny", T=20)
    path.write_bytes(path.read_bytes()[:-10])  # torn weights: the hash no longer matches
    at = app().run()
    at.button(key="home_generate").click().run()
    no_exceptions(at)
    assert len(errors(at)) == 1 and errors(at)[0].startswith("Could not generate: ")
    assert "SHA-256" in errors(at)[0]


@pytest.mark.parametrize("seed", [-5, 2**31])
def test_an_out_of_range_seed_is_named_and_generates_nothing(_fresh, seed):
    """Before: the box had min/max, so -5 silently became the default 0 and Generate drew a grid."""
    write_checkpoint(_fresh, "tiny", T=20)
    at = app().run()
    at.number_input(key="home_seed").set_value(seed).run()
    message = f"Seed must be a whole number from 0 to 2,147,483,647; got {seed}"
    assert errors(at) == [message]  # named under the box as soon as it is typed
    at.button(key="home_generate").click().run()
    no_exceptions(at)
    assert errors(at) == [message, f"Could not generate: {message}"]
    assert not at.image and "home_grid" not in at.session_state
    at.number_input(key="home_seed").set_value(7)
    at.button(key="home_generate").click().run()
    assert errors(at) == [] and at.session_state["home_grid"]["seed"] == 7
