"""Reverse-diffusion page: the model picker (shipped, runs, uploads), the trajectory viewer (slider,
back/forward, play, t / β_t / ᾱ_t) and the downloads."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest
import streamlit as st
from PIL import Image

from diffusion_core import jobs
from diffusion_core.checkpoints import load_checkpoint, save_checkpoint
from diffusion_core.degradations import make_degradation
from diffusion_core.images import to_unit_numpy
from diffusion_core.models import build_model
from diffusion_core.sampling import sample_checkpoint
from tests.app_support import (
    TINY_CNN,
    app,
    dead_pid,
    errors,
    fake_run,
    no_exceptions,
    write_checkpoint,
    write_conditional_checkpoint,
)

PAGE = "pages/3_Reverse_diffusion.py"


@pytest.fixture(autouse=True)
def shipped(tmp_path, monkeypatch):
    st.cache_resource.clear()
    folder = tmp_path / "shipped"
    folder.mkdir()
    monkeypatch.setenv("DIFFUSION_LAB_CHECKPOINTS", str(folder))
    return folder


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


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
    assert at.selectbox(key="rd_sampler").options == ["ancestral", "ddim", "dpm++2m", "dpm++2m-sde"]
    at.selectbox(key="rd_sampler").set_value("ancestral").run()
    at.button(key="rd_run").click().run()
    no_exceptions(at)
    slider = at.select_slider(key="rd_frame")
    assert len(slider.options) == 21 and slider.options[0] == "t = 20" and slider.options[-1] == "t = 0"
    assert metrics(at) == {"t": "20", "β_t": "0.02", "ᾱ_t": f"{abar(20):.4g}"}
    at.button(key="rd_forward").click().run()
    assert metrics(at) == {"t": "19", "β_t": f"{1e-4 + (0.02 - 1e-4) * 19 / 20:.3g}", "ᾱ_t": f"{abar(19):.4g}"}
    at.button(key="rd_back").click().run()
    assert metrics(at)["t"] == "20"
    at.select_slider(key="rd_frame").set_value(20).run()
    assert metrics(at)["t"] == "0"
    assert [i.captions for i in at.image] == [["z_t at t = 0"], ["x̂0 predicted from z_t at t = 0"]]
    assert "Trajectory: ancestral, seed 0, 21 frames." in [c.value for c in at.caption]

    result = at.session_state["rd_result"]
    expected = to_unit_numpy(sample_checkpoint(load_checkpoint(path), "ancestral", n=4, seed=0).samples)
    np.testing.assert_allclose(np.load(io.BytesIO(result["npy"])), expected, atol=1e-5)
    assert Image.open(io.BytesIO(result["gif"])).n_frames == 21
    assert Image.open(io.BytesIO(result["png"])).format == "PNG"
    assert [b.label for b in at.download_button] == ["Trajectory (GIF)", "Samples (PNG)", "Samples (.npy)"]


def test_play_advances_to_the_end_and_stops(shipped):
    write_checkpoint(shipped, "tiny", T=20)
    at = app(PAGE).run()
    at.button(key="rd_run").click().run()  # default sampler: ancestral, 21 frames
    at.button(key="rd_play").click().run()
    assert at.session_state["rd_playing"] and at.select_slider(key="rd_frame").value == 1
    for _ in range(30):  # AppTest does not tick fragments by itself: each run is one tick
        if not at.session_state["rd_playing"]:
            break
        at.run()
    assert not at.session_state["rd_playing"] and metrics(at)["t"] == "0"
    assert at.button(key="rd_play").label == "▶ Play"
    at.button(key="rd_play").click().run()  # Play again starts from the beginning
    assert at.select_slider(key="rd_frame").value == 1


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
    assert len(at.select_slider(key="rd_frame").options) == 6
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
    expected = sample_checkpoint(load_checkpoint(path), "ddim", n=2, seed=0, steps=4, digit=7, guidance=3.0).samples
    np.testing.assert_allclose(at.session_state["rd_result"]["traj"].samples, to_unit_numpy(expected), atol=1e-5)


def test_long_ancestral_runs_keep_a_bounded_number_of_frames(shipped):
    write_checkpoint(shipped, "long", T=300, beta2=0.05)
    at = app(PAGE).run()
    at.number_input(key="rd_n").set_value(1)
    at.button(key="rd_run").click().run()
    no_exceptions(at)
    traj = at.session_state["rd_result"]["traj"]
    assert traj.total_frames == 301 and len(traj) <= 129 and traj.ts[0] == 300 and traj.ts[-1] == 0
    assert f"301 frames ({len(traj)} shown)" in at.caption[0].value


def test_finished_runs_are_models_and_the_url_can_pick_one(shipped):
    write_checkpoint(shipped, "tiny", T=20)
    run_dir = fake_run(jobs.runs_root(), "run-a", dead_pid(), state="finished", epoch=1, epochs=1)
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
    assert not at.button  # nothing to run

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
    assert len(at.select_slider(key="rd_frame").options) == 21


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
