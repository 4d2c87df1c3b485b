"""Train page: bad settings, the job cap, reattaching to runs from the URL in each state, and a real
job started, watched and stopped from the page."""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pytest
import streamlit as st

from diffusion_core.io.images import png_bytes
from diffusion_core.services import estimates, jobs, run_status
from diffusion_core.training.options import train_config
from tests.app_support import (
    app,
    charts,
    dead_pid,
    errors,
    fake_run,
    no_exceptions,
    refuses_a_bad_number,
    stand_in_job,
    write_checkpoint,
)

PAGE = "pages/1_Train.py"


@pytest.fixture(autouse=True)
def _fresh(tmp_path, monkeypatch):
    st.cache_resource.clear()
    (tmp_path / "shipped").mkdir()
    monkeypatch.setenv("DIFFUSION_LAB_CHECKPOINTS", str(tmp_path / "shipped"))
    monkeypatch.delenv(jobs.MAX_JOBS_ENV, raising=False)


def progress_text(at) -> str:
    bars = at.get("progress")
    return bars[0].proto.text if bars else ""


def test_bad_beta_range_is_an_error_and_starts_nothing():
    at = app(PAGE).run()
    no_exceptions(at)
    assert at.radio(key="train_schedule_mode").value == "Custom"  # the quick recipe's cosine: no β boxes
    at.selectbox(key="train_kind").set_value("linear").run()
    assert errors(at) == [] and at.warning.len == 0  # the report's default: sound
    at.number_input(key="train_beta1").set_value(0.5).run()  # named as typed, before Start
    bad = "beta1 must be smaller than beta2 (0 < beta1 < beta2 < 1); got beta1=0.5, beta2=0.02"
    assert errors(at) == [f"This schedule cannot be trained: {bad}"]
    at.button(key="train_start").click().run()
    no_exceptions(at)
    assert f"Could not start training: {bad}" in errors(at)
    assert run_status.list_runs() == [] and "run" not in at.query_params


def test_a_schedule_that_stops_short_of_noise_is_warned_about_as_on_the_schedules_page():
    at = app(PAGE).run()
    at.selectbox(key="train_kind").set_value("linear").run()
    at.number_input(key="train_beta1").set_value(1e-5)
    at.number_input(key="train_beta2").set_value(1e-3).run()  # model2's betas at T = 1000: ᾱ_T ≈ 0.6
    no_exceptions(at)
    assert [w.value for w in at.warning if "ends at ᾱ_T = 0.6" in w.value and "only 40% of the way to noise"
            in w.value] != []
    at.number_input(key="train_T").set_value(18300).run()  # the report's fix: T = 18,300
    assert not [w for w in at.warning if "ᾱ_T" in w.value]


@pytest.mark.parametrize("params,message", [
    ("foo=1", "unknown parameter(s) ['foo'] for the blur degradation"),
    ("sigma_max", "KEY=VALUE pairs"),
])
def test_bad_degradation_parameters_are_errors(params, message):
    at = app(PAGE).run()
    at.radio(key="train_process").set_value("Cold (degradation)").run()
    assert at.selectbox(key="train_degradation").value == "blur"
    assert at.number_input(key="train_degradation_T_blur").value == 500  # the report's T for blur
    at.text_input(key="train_degradation_params").set_value(params).run()
    captions = [c.value for c in at.caption if c.value.startswith("These settings cannot start a run")]
    assert len(captions) == 1 and message in captions[0]  # no estimate for a run that cannot start
    at.button(key="train_start").click().run()
    no_exceptions(at)
    assert len(errors(at)) == 1 and message in errors(at)[0]
    assert run_status.list_runs() == []



def job_config(run_id: str) -> dict:
    """What a job hands its subprocess: the command and the TrainConfig it reads (train_config.json)."""
    run_dir = run_status.runs_root() / run_id
    command = json.loads((run_dir / "job.json").read_text())["command"]
    train = command.index("train")
    assert command[train + 1:] == ["--config", str(run_dir / jobs.TRAIN_CONFIG), "--out", str(run_dir), "--quiet"]
    return json.loads((run_dir / jobs.TRAIN_CONFIG).read_text())


@pytest.mark.parametrize("recipe,process,expected", [
    ("quick", "Noise (Gaussian)", {}),  # the page's default: the quick recipe, every field as it fills them
    ("report", "Noise (Gaussian)", {}),
    ("quick", "Cold (degradation)", {"degradation": "blur", "degradation_T": 500, "degradation_schedule": "linear",
                                     "loss": "l2", "degradation_param": [("sigma_max", 3), ("kernel_size", 27)]}),
    ("flow", "Flow matching", {"T": 1000, "logit_mean": 0.0, "logit_std": 1.0}),  # #28: the flow recipe
    ("quick", "Flow matching", {"flow": True, "T": 1000, "time_sampling": "uniform"}),
])
def test_start_passes_the_settings_to_the_cli(recipe, process, expected):
    at = app(PAGE).run()
    assert at.radio(key="train_recipe").value == "quick"
    if recipe != "quick":
        at.radio(key="train_recipe").set_value(recipe).run()
    assert at.radio(key="train_process").value == ("Flow matching" if recipe == "flow" else "Noise (Gaussian)")
    at.radio(key="train_process").set_value(process).run()
    if process.startswith("Cold"):
        at.text_input(key="train_degradation_params").set_value("sigma_max=3, kernel_size=27")
    at.button(key="train_start").click().run()
    no_exceptions(at)
    run_id = at.query_params["run"]
    try:
        want = dataclasses.asdict(train_config({"recipe": recipe, **expected}))
        assert job_config(run_id) == json.loads(json.dumps(want))
    finally:
        jobs.stop_training(run_id)


def test_a_recipe_fills_the_form_and_a_field_changed_after_it_is_kept():
    at = app(PAGE).run()
    at.number_input(key="train_epochs").set_value(7).run()
    at.radio(key="train_recipe").set_value("report").run()  # a new recipe: its own values in every field
    assert at.selectbox(key="train_arch").value == "cnn" and at.number_input(key="train_epochs").value == 100
    assert at.number_input(key="train_lr").value == 2e-4 and at.selectbox(key="train_lr_decay").value == "none"
    at.number_input(key="train_batch").set_value(64).run()
    assert at.number_input(key="train_batch").value == 64 and at.radio(key="train_recipe").value == "report"
    assert at.radio(key="train_schedule_mode").value == "Report preset"  # the report's linear β preset
    at.radio(key="train_recipe").set_value("quick").run()
    assert at.selectbox(key="train_arch").value == "unet" and at.selectbox(key="train_prediction").value == "v"
    # the quick recipe's cosine schedule: β1 and β2 do not apply, so their boxes are off
    assert at.radio(key="train_schedule_mode").value == "Custom" and at.selectbox(key="train_kind").value == "cosine"
    assert at.number_input(key="train_beta1").disabled and not at.number_input(key="train_T").disabled


def test_a_prediction_target_and_weighting_reach_the_config():
    at = app(PAGE).run()
    assert at.number_input(key="train_snr_gamma").disabled  # γ only with a min-SNR weighting
    at.selectbox(key="train_prediction").set_value("v")
    at.selectbox(key="train_weighting").set_value("min-snr").run()
    at.number_input(key="train_snr_gamma").set_value(3.0)
    at.button(key="train_start").click().run()
    no_exceptions(at)
    run_id = at.query_params["run"]
    try:
        diffusion = job_config(run_id)["diffusion"]
        assert (diffusion["prediction"], diffusion["weighting"], diffusion["snr_gamma"]) == ("v", "min-snr", 3.0)
    finally:
        jobs.stop_training(run_id)


def test_a_conditional_unet_can_be_started():
    at = app(PAGE).run()
    at.selectbox(key="train_arch").set_value("cnn").run()
    assert not [c for c in at.checkbox if c.key == "train_conditional"]  # the report CNN takes no label
    at.selectbox(key="train_arch").set_value("unet").run()
    at.checkbox(key="train_conditional").check()
    at.button(key="train_start").click().run()
    no_exceptions(at)
    run_id = at.query_params["run"]
    try:
        config = job_config(run_id)
        assert config["model"] == {"arch": "unet", "params": {"base_channels": 32, "patch": 2, "num_classes": 10}}
    finally:
        jobs.stop_training(run_id)


def test_the_job_cap_is_explained(monkeypatch):
    monkeypatch.setenv(jobs.MAX_JOBS_ENV, "1")
    live = stand_in_job()
    try:
        fake_run(run_status.runs_root(), "busy", live.pid, state=None)
        at = app(PAGE).run()
        assert "1 of at most 1 training jobs running here now." in [c.value for c in at.caption]
        at.button(key="train_start").click().run()
        no_exceptions(at)
        assert len(errors(at)) == 1
        assert errors(at)[0].startswith("Could not start training: 1 training job(s) are already running (busy) "
                                        "and the limit is 1.")
    finally:
        live.kill()
        live.wait()


def test_a_finished_run_reattaches_from_the_url():
    run_dir = fake_run(run_status.runs_root(), "run-done", dead_pid(), state="finished", epoch=3, epochs=3,
                       losses=(0.9, 0.5, 0.4), message="")
    (run_dir / "samples").mkdir()
    (run_dir / "samples" / "epoch_0003.png").write_bytes(png_bytes(np.full((28, 28), 0.5)))
    rows = (run_dir / "metrics.jsonl").read_text().splitlines()
    rows[-1] = rows[-1][:-1] + ', "sample": "samples/epoch_0003.png"}'
    (run_dir / "metrics.jsonl").write_text("\n".join(rows) + "\n")
    write_checkpoint(run_dir, "model")

    at = app(PAGE, query={"run": "run-done"}).run()
    no_exceptions(at)
    assert progress_text(at) == "finished · epoch 3/3 · loss 0.4000"
    loss = charts(at)[0]["data"][0]
    assert loss["x"].tolist() == [1, 2, 3] and loss["y"].tolist() == [0.9, 0.5, 0.4]
    assert at.image[0].captions == ["Samples after epoch 3"]
    assert not [b for b in at.button if b.key == "train_stop"]
    assert at.number_input(key="train_until").value == 13  # a finished run resumes by extending it
    assert "Sample from this run" in [p.proto.label for p in at.page_link]
    table = at.dataframe[0].value
    assert table["run"].tolist() == ["run-done"] and table["state"].tolist() == ["finished"]
    at.button(key="train_close").click().run()
    assert "run" not in at.query_params and not at.get("progress")


def test_a_run_measuring_fid_shows_quality_against_wall_clock():
    run_dir = fake_run(run_status.runs_root(), "run-fid", dead_pid(), state="finished", epoch=3, epochs=3,
                       losses=(0.9, 0.5, 0.4))
    rows = [{"epoch": e, "loss": 0.5, "epoch_time_s": 60.0, "wall_time_s": 60.0 * e, "fid": fid, "fid_floor": 20.0,
             "fid_samples": 256, "confident_fraction": conf}
            for e, fid, conf in ((1, 900.0, 0.1), (2, 300.0, 0.4), (3, 60.0, 0.75))]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    at = app(PAGE, query={"run": "run-fid"}).run()
    no_exceptions(at)
    fig = next(c for c in charts(at) if c["layout"]["title"]["text"] == "Classifier-FID against training time")
    assert fig["data"][0]["x"].tolist() == [1.0, 2.0, 3.0] and fig["data"][0]["y"].tolist() == [900.0, 300.0, 60.0]
    assert sorted(s["y0"] for s in fig["layout"]["shapes"]) == [20.0, 80.0]  # the floor and 4× it
    assert any("FID 60 on 256 samples after 3:00 of training (3.0× the floor" in c.value and "75%" in c.value
               for c in at.caption)


def test_a_dead_run_is_explained_and_offers_resume():
    fake_run(run_status.runs_root(), "run-dead", dead_pid(), state="running", epoch=2, epochs=5, losses=(0.9, 0.5))
    at = app(PAGE, query={"run": "run-dead"}).run()
    no_exceptions(at)
    assert [w.value for w in at.warning] == [run_status.DIED_MESSAGE]
    assert at.button(key="train_resume") and at.number_input(key="train_until").value == 5


@pytest.mark.parametrize("run_id,message", [("../etc", "not a valid run id"), ("run-nope", "no run 'run-nope'")])
def test_a_bad_run_in_the_url_is_an_error(run_id, message):
    at = app(PAGE, query={"run": run_id}).run()
    no_exceptions(at)
    assert len(errors(at)) == 1 and message in errors(at)[0]


@pytest.mark.slow
def test_start_watch_and_stop_a_real_job():
    at = app(PAGE).run()
    at.radio(key="train_recipe").set_value("report").run()
    at.radio(key="train_schedule_mode").set_value("Custom").run()
    at.number_input(key="train_T").set_value(20)
    at.number_input(key="train_epochs").set_value(5000)
    at.number_input(key="train_limit").set_value(64)
    at.number_input(key="train_batch").set_value(32)
    at.checkbox(key="train_use_ema").uncheck()
    at.button(key="train_start").click().run()
    no_exceptions(at)
    run_id = at.query_params["run"]
    try:
        deadline = time.monotonic() + 180  # a subprocess importing torch on a loaded 2-core machine: be patient
        while not (progress_text(at).startswith("running") and "· loss " in progress_text(at)):  # as the page read it
            assert time.monotonic() < deadline, progress_text(at)
            time.sleep(0.5)
            at.run()
        no_exceptions(at)
        assert progress_text(at).startswith("running · epoch ") and "/5000 · loss " in progress_text(at)
        assert "left" in progress_text(at)  # an ETA once an epoch has finished
        config = run_status.read_run(run_id).config
        assert config["diffusion"]["schedule"] == {"kind": "linear", "beta1": 1e-4, "beta2": 0.02, "T": 20}
        assert config["model"]["arch"] == "cnn" and config["ema_decay"] is None and config["limit"] == 64
        assert config["batch_size"] == 32 and config["lr"] == pytest.approx(2e-4)

        at.button(key="train_stop").click().run()
        no_exceptions(at)
        stopped = run_status.wait_for(run_id, ("stopped",), timeout=90)
        at.run()
        assert progress_text(at).startswith(f"stopped · epoch {stopped.epoch}/5000")
        assert at.button(key="train_resume")
        assert any(f"stopped by user during epoch {stopped.epoch + 1}" in i.value for i in at.info)
    finally:  # a failed assertion must not leave a 5000-epoch job running beside the rest of the suite
        if run_status.read_run(run_id).active:
            jobs.stop_training(run_id)
            run_status.wait_for(run_id, ("stopped", "died", "failed"), timeout=90)


# ---------------------------------------------------------------- issue #18: inputs, estimate, FID, starting runs

BAD_VALUES = [  # (key, a value out of range, the message naming the field and its range)
    ("train_batch", 0, "Batch size must be a whole number from 1 to 4,096; got 0"),
    ("train_epochs", 0, "Epochs must be a whole number from 1 to 10,000; got 0"),
    ("train_limit", -1, "Training images (0 = all) must be a whole number from 0 to 100,000; got -1"),
    ("train_seed", -5, "Seed must be a whole number from 0 to 2,147,483,647; got -5"),
    ("train_lr", 0.0, "Learning rate must be a number from 1e-06 to 1; got 0"),
    ("train_ema", 1.5, "EMA decay must be a number from 0.5 to 0.99999; got 1.5"),
]


@pytest.mark.parametrize("key,value,message", BAD_VALUES)
def test_an_out_of_range_number_is_named_and_start_refuses_it(key, value, message):
    """Before: the boxes had min/max, so 0 became the default (batch 128) and the run started."""
    at = app(PAGE).run()
    refuses_a_bad_number(at, key, value, message, "train_start", "Could not start training")
    assert run_status.list_runs() == [] and "run" not in at.query_params


@pytest.mark.parametrize("setup,key,value,message", [
    ({"train_schedule_mode": "Custom"}, "train_T", 0, "T must be a whole number from 1 to 100,000; got 0"),
    ({"train_schedule_mode": "Custom"}, "train_beta2", 1.5, "β2 must be a number from 0 to 1; got 1.5"),
    ({"train_process": "Cold (degradation)"}, "train_degradation_T_blur", 0,
     "Degradation steps T must be a whole number from 1 to 10,000; got 0"),
    ({"train_process": "Flow matching"}, "train_flow_T", 0,
     "Time steps T (t = k/T) must be a whole number from 1 to 100,000; got 0"),
])
def test_the_schedule_and_degradation_numbers_are_checked_too(setup, key, value, message):
    at = app(PAGE).run()
    for radio, choice in setup.items():
        at.radio(key=radio).set_value(choice).run()
    if setup.get("train_schedule_mode") == "Custom":
        at.selectbox(key="train_kind").set_value("linear").run()  # a kind with β1 and β2
    at.number_input(key=key).set_value(value)
    at.button(key="train_start").click().run()
    no_exceptions(at)
    assert errors(at) == [message, f"Could not start training: {message}"]
    assert run_status.list_runs() == []


def test_resume_refuses_an_out_of_range_epoch():
    fake_run(run_status.runs_root(), "run-dead", dead_pid(), state="running", epoch=2, epochs=5, losses=(0.9, 0.5))
    at = app(PAGE, query={"run": "run-dead"}).run()
    at.number_input(key="train_until").set_value(0)
    at.button(key="train_resume").click().run()
    no_exceptions(at)
    message = "Train until epoch must be a whole number from 1 to 10,000; got 0"
    assert errors(at) == [message, f"Could not resume: {message}"]
    assert run_status.read_run("run-dead").state == "died"  # nothing was launched


def test_the_estimate_before_start_gives_time_and_quality(monkeypatch):
    """Before: nothing said that the report CNN for 10 epochs trains for minutes and draws noise."""
    monkeypatch.setenv("DIFFUSION_LAB_CHECKPOINTS", str(jobs.PROJECT_ROOT / "checkpoints"))
    monkeypatch.setattr(estimates, "machine_load", lambda: (1.0, 2))  # a quiet machine
    st.cache_data.clear()
    at = app(PAGE).run()
    at.radio(key="train_recipe").set_value("report").run()
    at.number_input(key="train_epochs").set_value(10).run()
    no_exceptions(at)
    text = [i.value for i in at.info if i.value.startswith("**Time:**")]
    assert len(text) == 1, [i.value for i in at.info]
    refs = estimates.shipped_references()
    quiet = estimates.estimate_training({"arch": "cnn", "epochs": 10, "batch_size": 128}, 4500, refs)
    assert f"about {estimates._duration(quiet.seconds)} in all: 360 optimiser steps (10 epochs × 36 batches" in text[0]
    assert "Expect noise, not digits" in text[0] and "The shipped `default` after 3,600 optimiser steps" in text[0]
    assert "4,500 bundled digits" in text[0]  # no full MNIST in the test's data folder
    at.number_input(key="train_epochs").set_value(100).run()
    text = next(i.value for i in at.info if i.value.startswith("**Time:**"))
    assert "3,600 optimiser steps" in text and "expect about that quality" in text

    monkeypatch.setattr(estimates, "machine_load", lambda: (8.0, 2))  # four times as many processes as cores
    at.run()
    text = next(i.value for i in at.info if i.value.startswith("**Time:**"))
    busy = estimates.estimate_training({"arch": "cnn", "epochs": 100, "batch_size": 128}, 4500, refs, load=(8.0, 2))
    assert f"about {estimates._duration(busy.seconds)} in all" in text
    assert "this machine is busy now (8.0 processes want its 2 cores)" in text
    default = next(r for r in refs if r.name == "default")
    assert busy.reference == default and busy.images_per_s == pytest.approx(default.images_per_s / 4)

    at.number_input(key="train_batch").set_value(0).run()
    assert not [i for i in at.info if i.value.startswith("**Time:**")]
    assert "Fix Batch size to see how long this run would take." in [c.value for c in at.caption]


def test_fid_during_training_is_offered_and_passed_to_the_cli():
    at = app(PAGE).run()
    assert at.checkbox(key="train_fid").value and at.number_input(key="train_fid_every").value == 10  # quick's
    at.radio(key="train_recipe").set_value("report").run()
    assert not at.checkbox(key="train_fid").value and at.number_input(key="train_fid_every").disabled
    at.checkbox(key="train_fid").check().run()
    at.number_input(key="train_fid_every").set_value(2)
    at.number_input(key="train_fid_samples").set_value(128)
    at.button(key="train_start").click().run()
    no_exceptions(at)
    run_id = at.query_params["run"]
    try:
        config = job_config(run_id)
        assert (config["fid_every"], config["fid_samples"]) == (2, 128)
    finally:
        jobs.stop_training(run_id)
    at = app(PAGE).run()
    at.selectbox(key="train_dataset").set_value("fashion-mnist").run()
    assert at.checkbox(key="train_fid").disabled  # the classifier knows digits only


def test_a_starting_run_says_what_it_is_doing():
    """Before: its caption read '?, ?, ?' (no config.json yet) and the panel said only 'starting · epoch 0/3'."""
    live = stand_in_job()
    try:
        run_dir = fake_run(run_status.runs_root(), "run-new", live.pid, state=None, epochs=3)
        (run_dir / "config.json").unlink()  # the trainer has not written it yet
        job = json.loads((run_dir / "job.json").read_text())
        job["options"] = {"arch": "unet", "preset": "model1", "epochs": 3, "dataset": "mnist"}
        job["started"] = time.time() - 5
        (run_dir / "job.json").write_text(json.dumps(job))
        at = app(PAGE, query={"run": "run-new"}).run()
        no_exceptions(at)
        assert at.caption[0].value == "unet, noise model1 T=1840, mnist · started outside the app: anyone can manage it"
        assert progress_text(at).startswith("starting · starting Python and importing PyTorch (")
        (run_dir / "config.json").write_text(json.dumps({"epochs": 3, "dataset": "mnist", "model": {"arch": "unet"},
                                                         "diffusion": {"type": "noise", "preset": "model1",
                                                                       "schedule": {"T": 1840}}}))
        at.run()
        assert progress_text(at).startswith("starting · loading the training data and building the model (")
        table = at.dataframe[0].value
        assert table["state"].tolist() == ["starting"]
        assert table["now"].tolist()[0].startswith("loading the training data")
        (run_dir / "status.json").write_text(json.dumps({"state": "running", "pid": live.pid, "epoch": 1,
                                                         "epochs": 3}))
        at.run()
        assert progress_text(at).startswith("running · epoch 1/3")
        assert any(c.value.startswith("Now: training epoch 2 of 3 (") for c in at.caption)
        table = at.dataframe[0].value
        assert table["state"].tolist() == ["running"] and table["epoch"].tolist() == ["1/3"]
    finally:
        live.kill()
        live.wait()


def test_measuring_this_machine_replaces_the_shipped_speed(monkeypatch):
    monkeypatch.setenv("DIFFUSION_LAB_CHECKPOINTS", str(jobs.PROJECT_ROOT / "checkpoints"))
    calls = []
    monkeypatch.setattr(estimates, "measure_images_per_s",
                        lambda options: calls.append(options) or (40.0, "measured here"))
    st.cache_data.clear()
    at = app(PAGE).run()
    at.radio(key="train_recipe").set_value("report").run()
    at.button(key="train_measure").click().run()
    no_exceptions(at)
    assert calls and calls[0]["arch"] == "cnn" and calls[0]["batch_size"] == 128
    text = next(i.value for i in at.info if i.value.startswith("**Time:**"))
    assert "at 40 images/s: measured here" in text
    at.selectbox(key="train_arch").set_value("unet").run()  # another architecture: not what was measured
    text = next(i.value for i in at.info if i.value.startswith("**Time:**"))
    assert "measured here" not in text and "default-unet" in text
