"""Reverse-diffusion page: the model picker (shipped, runs, uploads), the trajectory viewer (slider,
back/forward, play, t / β_t / ᾱ_t) and the downloads."""

from __future__ import annotations

import hashlib
import io
import json
import time

import numpy as np
import pytest
from PIL import Image

from diffusion_core.io.checkpoints import load_checkpoint, save_checkpoint
from diffusion_core.io.images import to_unit_numpy
from diffusion_core.models import build_model
from diffusion_core.process.degradations import make_degradation
from diffusion_core.sampling import SamplerChoice, sample_checkpoint
from diffusion_core.services import run_status
from pages.lab_ui import models as lab_models
from tests.app_support import (
    TINY_CNN,
    app,
    dead_pid,
    errors,
    fake_run,
    no_exceptions,
    shipped_folder,
    write_checkpoint,
    write_conditional_checkpoint,
    write_flow_checkpoint,
)

PAGE = "pages/3_Reverse_diffusion.py"
PLAY_SECONDS = 8.0  # the page's Play duration


@pytest.fixture(autouse=True)
def shipped(tmp_path, monkeypatch):
    return shipped_folder(tmp_path, monkeypatch)


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def frame_slider(at):
    """The step-through slider (its key changes whenever the page moves the frame, so there is one at a time)."""
    (slider,) = at.select_slider
    return slider


def abar(t: int, T: int = 20, beta1: float = 1e-4, beta2: float = 0.02) -> float:
    s = np.arange(t + 1)
    return float(np.prod(1 - (beta1 + (beta2 - beta1) * s / T)))


def test_without_models_the_page_points_to_train_and_upload():
    at = app(PAGE).run()
    no_exceptions(at)
    assert any(i.value.startswith("No trained models yet") for i in at.info)
    assert "Go to Train" in [p.proto.label for p in at.page_link]
    assert at.selectbox(key="rd_choice").options == ["Upload a checkpoint…"]
    assert [u.label for u in at.file_uploader] == ["Weights (.safetensors)", "Config (.json)"]


def test_ancestral_trajectory_steps_back_and_forth(shipped):
    path = write_checkpoint(shipped, "tiny", T=20)
    at = app(PAGE).run()
    assert at.selectbox(key="rd_sampler").options == ["ancestral", "ddim", "dpm++2m", "dpm++2m-sde", "euler", "heun",
                                                      "euler-a", "pc"]
    at.selectbox(key="rd_sampler").set_value("ancestral").run()
    at.button(key="rd_run").click().run()
    no_exceptions(at)
    slider = frame_slider(at)
    assert len(slider.options) == 21 and slider.options[0] == "t = 20" and slider.options[-1] == "t = 0"
    assert metrics(at) == {"t": "20", "β_t": "0.02", "ᾱ_t": f"{abar(20):.4g}"}
    at.button(key="rd_forward").click().run()
    assert metrics(at) == {"t": "19", "β_t": f"{1e-4 + (0.02 - 1e-4) * 19 / 20:.3g}", "ᾱ_t": f"{abar(19):.4g}"}
    at.button(key="rd_back").click().run()
    assert metrics(at)["t"] == "20"
    frame_slider(at).set_value(20).run()
    assert metrics(at)["t"] == "0"
    assert [i.captions for i in at.image] == [["z_t at t = 0"], ["x̂0 predicted from z_t at t = 0"]]
    assert "Trajectory: ancestral, seed 0, 21 frames." in [c.value for c in at.caption]

    result = at.session_state["rd_result"]
    expected = to_unit_numpy(sample_checkpoint(load_checkpoint(path), SamplerChoice("ancestral", seed=0), n=4).samples)
    np.testing.assert_allclose(np.load(io.BytesIO(result["npy"])), expected, atol=1e-5)
    assert Image.open(io.BytesIO(result["gif"])).n_frames == 21
    assert Image.open(io.BytesIO(result["png"])).format == "PNG"
    assert [b.label for b in at.download_button] == ["Trajectory (GIF)", "Samples (PNG)", "Samples (.npy)"]


def test_a_flow_model_runs_its_own_samplers_and_the_noise_ones_with_t_as_continuous_time(shipped):
    """#28: a flow model on the page: its samplers first, every σ-space sampler after; the frame shows the time
    t = k/T and α_t = 1 − t, and the samples are the library's."""
    path = write_flow_checkpoint(shipped, "flow", T=20)
    at = app(PAGE).run()
    assert at.selectbox(key="rd_sampler").options[:4] == ["flow-euler", "flow-heun", "flow-sde", "ancestral"]
    at.number_input(key="rd_steps_flow-euler").set_value(5)
    at.button(key="rd_run").click().run()
    no_exceptions(at)
    assert frame_slider(at).options == ["t = 20", "t = 16", "t = 12", "t = 8", "t = 4", "t = 0"]  # equal steps
    assert metrics(at) == {"t": "20", "time t = k/T": "1", "α_t = 1 − t": "0"}
    at.button(key="rd_forward").click().run()
    assert metrics(at) == {"t": "16", "time t = k/T": "0.8", "α_t = 1 − t": "0.2"}
    expected = sample_checkpoint(load_checkpoint(path), SamplerChoice("flow-euler", 5, seed=0), n=4).samples
    np.testing.assert_allclose(np.load(io.BytesIO(at.session_state["rd_result"]["npy"])), to_unit_numpy(expected),
                               atol=1e-5)
    at.selectbox(key="rd_sampler").set_value("dpm++2m").run()  # a noise sampler through the denoiser view
    at.button(key="rd_run").click().run()
    no_exceptions(at)
    assert errors(at) == [] and frame_slider(at).options[-1] == "t = 0"


def test_play_ends_on_the_last_frame_in_about_the_intended_time(shipped):
    write_checkpoint(shipped, "tiny", T=20)
    at = app(PAGE).run()
    at.selectbox(key="rd_sampler").set_value("ancestral").run()
    at.button(key="rd_run").click().run()  # 21 frames
    at.button(key="rd_play").click().run()
    began = time.monotonic()
    assert at.session_state["rd_playing"] and at.button(key="rd_play").label == "Pause"
    assert not at.select_slider  # while Play runs, a progress bar stands in for the slider
    while at.session_state["rd_playing"] and time.monotonic() - began < 60:
        time.sleep(0.2)  # AppTest does not tick fragments by itself: each run is one tick
        at.run()
    played = time.monotonic() - began
    assert not at.session_state["rd_playing"] and at.button(key="rd_play").label == "▶ Play"
    assert frame_slider(at).value == 20 and metrics(at)["t"] == "0"
    assert [i.captions for i in at.image] == [["z_t at t = 0"], ["x̂0 predicted from z_t at t = 0"]]
    assert PLAY_SECONDS - 0.5 <= played  # frames follow the clock: Play is not over before its time
    at.button(key="rd_play").click().run()  # Play again starts from the beginning
    assert at.session_state["rd_playing"] and at.session_state["rd_k"] <= 3
    assert not at.select_slider and at.get("progress")[0].proto.text.startswith("Playing: t = ")
    at.button(key="rd_forward").click().run()  # stepping stops Play, and the slider is back at the frame shown
    assert not at.session_state["rd_playing"]
    assert frame_slider(at).value == at.session_state["rd_k"] <= 5
    frame_slider(at).set_value(12).run()  # the learner moves the slider: that frame is shown
    assert at.session_state["rd_k"] == 12 and metrics(at)["t"] == "8"
    at.button(key="rd_back").click().run()
    assert frame_slider(at).value == 11 and metrics(at)["t"] == "9"


def test_pages_open_on_the_apps_default_model_with_the_others_one_click_away(shipped):
    blur = make_degradation("blur", T=10)
    save_checkpoint(shipped / "blur", build_model(TINY_CNN), {  # sorts first, as the shipped blur model does
        "model": TINY_CNN, "diffusion": {"type": "cold", "degradation": blur.config(), "loss": "l2"},
        "dataset": "mnist", "epochs": 1})
    write_checkpoint(shipped, "default", T=20)
    at = app(PAGE).run()
    no_exceptions(at)
    picker = at.selectbox(key="rd_choice")
    assert picker.value == "shipped:default" and picker.options[0].startswith("Shipped · blur")
    explore = app("pages/5_Explore.py").run()
    assert explore.selectbox(key="ex_model_choice").value == "shipped:default"
    degradations = app("pages/4_Degradations.py").run()  # only cold models there: the first one
    assert degradations.selectbox(key="deg_model_choice").value == "shipped:blur"


def test_noise_models_open_on_the_quick_sampler(shipped):
    write_checkpoint(shipped, "tiny", T=50)
    at = app(PAGE).run()
    assert at.selectbox(key="rd_sampler").value == "dpm++2m-sde"  # process.quick_choice(), as Home's Generate
    assert at.number_input(key="rd_steps_dpm++2m-sde").value == 20


def test_the_expected_time_is_shown_and_long_runs_ask_first(shipped, monkeypatch):
    monkeypatch.setattr(lab_models, "seconds_per_call", lambda ckpt, n: 0.05 * n)  # 200 ms for 4 images
    write_checkpoint(shipped, "tiny", T=500)
    at = app(PAGE).run()
    assert "Expected time on this machine: about 4.0 s (20 network calls × 200 ms measured here)." in [
        c.value for c in at.caption]
    assert not at.button(key="rd_run").disabled and not at.checkbox
    at.selectbox(key="rd_sampler").set_value("ancestral").run()  # 500 calls × 0.2 s
    assert "This run should take about 1 min 40 s (500 network calls × 200 ms measured here)" in at.warning[0].value
    assert at.button(key="rd_run").disabled
    assert at.checkbox[0].label == "Run it anyway (about 1 min 40 s)"
    at.checkbox[0].check().run()
    assert not at.button(key="rd_run").disabled
    at.button(key="rd_run").click().run()
    no_exceptions(at)
    assert at.session_state["rd_result"]["traj"].total_frames == 501
    assert any(c.value.startswith("Computed in ") and c.value.endswith("; expected about 1 min 40 s.")
               for c in at.caption)
    at.number_input(key="rd_n").set_value(1).run()  # other settings: asked again
    assert at.button(key="rd_run").disabled and at.checkbox[0].label == "Run it anyway (about 25 s)"


def test_a_sampler_known_to_fail_on_the_model_is_flagged_and_never_the_default(shipped):
    config = {"model": TINY_CNN, "diffusion": {"type": "noise", "schedule": {
        "kind": "linear", "beta1": 1e-4, "beta2": 0.02, "T": 20}}, "epochs": 1,
        "metrics": {"known_bad_samplers": {"dpm++2m-sde": "half of its samples stay static"}}}
    save_checkpoint(shipped / "flaky", build_model(TINY_CNN), config)
    at = app(PAGE).run()
    sampler = at.selectbox(key="rd_sampler")
    assert sampler.value == "ancestral"  # the quick sampler fails here: the first one that does not
    assert sampler.options == ["ancestral", "ddim", "dpm++2m", "dpm++2m-sde (fails on this model)", "euler", "heun",
                               "euler-a", "pc"]
    assert not at.warning
    sampler.set_value("dpm++2m-sde").run()
    assert at.warning[0].value == "**dpm++2m-sde** on this model: half of its samples stay static."


def test_ddim_with_eta_and_few_steps(shipped):
    write_checkpoint(shipped, "tiny", T=20)
    at = app(PAGE).run()
    at.selectbox(key="rd_sampler").set_value("ddim").run()
    assert at.number_input(key="rd_steps_ddim").value == 20  # min(50, T)
    at.number_input(key="rd_steps_ddim").set_value(5)
    at.slider(key="rd_eta").set_value(0.5)
    at.number_input(key="rd_n").set_value(2)
    at.button(key="rd_run").click().run()
    no_exceptions(at)
    assert len(frame_slider(at).options) == 6
    assert "Trajectory: ddim, 5 steps, η = 0.5, seed 0, 6 frames." in [c.value for c in at.caption]
    assert at.session_state["rd_result"]["traj"].z.shape == (6, 2, 28, 28)


def test_a_conditional_model_samples_the_chosen_digit_with_guidance(shipped):
    path = write_conditional_checkpoint(shipped, "cond", guidance=1.0)
    at = app(PAGE).run()
    assert at.slider(key="rd_guidance").value == 1.0
    at.selectbox(key="rd_sampler").set_value("ddim").run()
    at.number_input(key="rd_steps_ddim").set_value(4)
    at.number_input(key="rd_n").set_value(2)
    at.selectbox(key="rd_digit").set_value(7)
    at.slider(key="rd_guidance").set_value(3.0)
    at.button(key="rd_run").click().run()
    no_exceptions(at)
    captions = [c.value for c in at.caption]
    assert "Trajectory: ddim, 4 steps, η = 0, digit 7, guidance w = 3, seed 0, 5 frames." in captions
    choice = SamplerChoice("ddim", 4, seed=0, digit=7, guidance=3.0)
    expected = sample_checkpoint(load_checkpoint(path), choice, n=2).samples
    np.testing.assert_allclose(at.session_state["rd_result"]["traj"].samples, to_unit_numpy(expected), atol=1e-5)


def test_long_ancestral_runs_keep_a_bounded_number_of_frames(shipped):
    write_checkpoint(shipped, "long", T=300, beta2=0.05)
    at = app(PAGE).run()
    at.selectbox(key="rd_sampler").set_value("ancestral")
    at.number_input(key="rd_n").set_value(1)
    at.button(key="rd_run").click().run()
    no_exceptions(at)
    traj = at.session_state["rd_result"]["traj"]
    assert traj.total_frames == 301 and len(traj) <= 129 and traj.ts[0] == 300 and traj.ts[-1] == 0
    assert any(f"301 frames ({len(traj)} shown)" in c.value for c in at.caption)


def test_finished_runs_are_models_and_the_url_can_pick_one(shipped):
    write_checkpoint(shipped, "tiny", T=20)
    run_dir = fake_run(run_status.runs_root(), "run-a", dead_pid(), state="finished", epoch=1, epochs=1)
    write_checkpoint(run_dir, "model", T=30)
    at = app(PAGE, query={"model": "run:run-a"}).run()
    no_exceptions(at)
    assert at.selectbox(key="rd_choice").value == "run:run-a"
    assert len(at.selectbox(key="rd_choice").options) == 3  # shipped, the run, upload
    at.selectbox(key="rd_sampler").set_value("ancestral").run()
    assert at.number_input(key="rd_steps_fixed").value == 30  # the run's own T


def upload(at, weights: bytes, config: bytes):
    at.selectbox(key="rd_choice").set_value("upload").run()
    at.file_uploader(key="rd_weights").upload("model.safetensors", weights)
    at.file_uploader(key="rd_config").upload("model.json", config)
    return at.run()


def test_uploads_are_validated_and_never_unpickled(tmp_path):
    path = write_checkpoint(tmp_path, "up", T=20)
    weights, config = path.read_bytes(), path.with_suffix(".json").read_bytes()

    at = upload(app(PAGE).run(), b"\x80\x04\x95" + b"\0" * 64, config)  # a pickle
    no_exceptions(at)
    assert len(errors(at)) == 1 and errors(at)[0].startswith("This upload cannot be used: ")
    assert "weights do not match their config (SHA-256 differs)" in errors(at)[0]
    assert not at.main.button  # nothing to run

    meta = json.loads(config)
    meta["weights_sha256"] = hashlib.sha256(b"\x80\x04\x95").hexdigest()
    at = upload(app(PAGE).run(), b"\x80\x04\x95", json.dumps(meta).encode())
    assert "pickle" in errors(at)[0] and "can run code" in errors(at)[0]

    at = upload(app(PAGE).run(), weights, b"{not json")
    assert "config is not valid JSON" in errors(at)[0]

    at = upload(app(PAGE).run(), weights, config)
    no_exceptions(at)
    assert errors(at) == []
    at.button(key="rd_run").click().run()
    assert len(frame_slider(at).options) == 21


def test_cold_models_offer_their_own_samplers_and_starts(shipped):
    blur = make_degradation("blur", T=10)
    save_checkpoint(shipped / "cold", build_model(TINY_CNN), {
        "model": TINY_CNN, "diffusion": {"type": "cold", "degradation": blur.config(), "loss": "l2"},
        "dataset": "mnist", "epochs": 1})
    at = app(PAGE).run()
    no_exceptions(at)
    assert at.selectbox(key="rd_sampler").options == ["improved", "naive", "direct"]
    assert at.selectbox(key="rd_start").value == "mixture"
    at.selectbox(key="rd_start").set_value("black")
    at.number_input(key="rd_steps_improved").set_value(5)
    at.button(key="rd_run").click().run()
    no_exceptions(at)
    assert errors(at) == []
    ts = at.session_state["rd_result"]["traj"].ts
    assert ts[0] == 10 and ts[-1] == 0 and len(ts) == 6
    assert list(metrics(at)) == ["t"]  # no β_t / ᾱ_t for a degradation
    at.selectbox(key="rd_sampler").set_value("direct").run()
    at.button(key="rd_run").click().run()
    assert at.session_state["rd_result"]["traj"].ts == [10, 0]
