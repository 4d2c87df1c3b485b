"""What a sampler choice costs and buys: its steps on the schedule, the benchmark's quality-against-NFE rows, a live
measurement, and the Reverse diffusion page's panel that shows them."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from diffusion_core.figures import quality_vs_nfe_figure, steps_on_log_snr_figure
from diffusion_core.io.checkpoints import load_checkpoint
from diffusion_core.process import FlowProcess, GaussianProcess, SamplerChoice
from diffusion_core.process.schedules import preset_schedule
from diffusion_core.views import sampler_costs
from tests.app_support import app, errors, no_exceptions, ship_tiny_model, write_checkpoint

PAGE = "pages/3_Reverse_diffusion.py"


def rows(model="tiny"):
    return [{"sampler": s, "spacing": sp, "nfe": nfe, "fid": 10.0 + nfe / 10 + i, "fid_se": 1.0, "kid": 0.01 * i,
             "kid_se": 0.002, "n": 500} for i, (s, sp) in enumerate([("ddim", "uniform"), ("heun", "karras")])
            for nfe in (10, 20)]


def test_steps_are_drawn_where_they_are_on_the_log_snr_curve():
    sched = preset_schedule("default")
    fig = steps_on_log_snr_figure(GaussianProcess(sched).log_snrs(), {"ddim, 5 steps": [1000, 750, 500, 250, 1]})
    curve, points = fig.data
    assert list(points.x) == [1000, 750, 500, 250, 1]
    np.testing.assert_allclose(points.y, sched.log_snr.double().numpy()[[1000, 750, 500, 250, 1]], rtol=1e-5)
    assert 0 < curve.x[0] < 10 and curve.x[-1] == 1000  # t = 0 (clean data) has no log-SNR
    flow = FlowProcess(T=100)  # log SNR = 2·log((1 − t)/t): 0 at t = ½
    np.testing.assert_allclose(steps_on_log_snr_figure(flow.log_snrs(), {"mid": [50]}).data[1].y, [0.0], atol=1e-12)


def test_quality_against_nfe_has_a_line_per_sampler_and_spacing_with_error_bars():
    fig = quality_vs_nfe_figure(rows(), "kid")
    assert [t.name for t in fig.data] == ["ddim · uniform", "heun · karras"]
    assert list(fig.data[1].x) == [10, 20] and list(fig.data[1].y) == [0.01, 0.01]
    assert list(fig.data[0].error_y.array) == [0.002, 0.002]
    assert quality_vs_nfe_figure(rows(), "fid").layout.yaxis.type == "log"


def test_the_benchmark_file_is_read_for_its_own_model_only(tmp_path, monkeypatch):
    path = tmp_path / "nfe.json"
    monkeypatch.setenv(sampler_costs.BENCHMARK_ENV, str(path))
    assert sampler_costs.benchmark_rows("tiny") is None  # no file
    path.write_text(json.dumps({"model": "tiny", "n": 500, "rows": rows(), "best": {}}))
    assert sampler_costs.benchmark_rows("tiny")["rows"] == rows()
    assert sampler_costs.benchmark_rows("other") is None
    path.write_text("{not json")
    assert sampler_costs.benchmark_rows("tiny") is None


def test_a_live_measurement_is_one_point_with_its_cost(tmp_path):
    ckpt = load_checkpoint(write_checkpoint(tmp_path, "tiny", T=20))
    row = sampler_costs.measure_choice(ckpt, SamplerChoice("heun", 4, seed=0, spacing="karras"), 20)
    assert (row["sampler"], row["spacing"], row["steps"], row["nfe"], row["n"]) == ("heun", "karras", 4, 7, 20)
    assert row["fid"] > 0 and row["kid_se"] > 0 and row["live"]
    with pytest.raises(ValueError, match="a live measurement draws 20 to 200 samples"):
        sampler_costs.measure_choice(ckpt, SamplerChoice("ddim", 4), 500)


def test_the_page_offers_spacing_shows_the_steps_and_the_benchmark(tmp_path, monkeypatch):
    ship_tiny_model(tmp_path, monkeypatch)
    path = tmp_path / "nfe.json"
    monkeypatch.setenv(sampler_costs.BENCHMARK_ENV, str(path))
    at = app(PAGE).run()
    no_exceptions(at)
    assert not at.get("plotly_chart")  # the panel is collapsed: nothing of it is built
    at.session_state["rd_cost_panel"] = True  # opened
    at.selectbox(key="rd_sampler").set_value("ancestral").run()
    assert not [r for r in at.radio if r.key.startswith("rd_spacing")]  # ancestral places no steps
    at.selectbox(key="rd_sampler").set_value("heun").run()
    spacing = at.radio(key="rd_spacing_heun")
    assert spacing.value == "karras" and spacing.options == ["uniform", "log-snr", "karras", "edm"]
    spacing.set_value("log-snr").run()
    no_exceptions(at)
    steps_fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert steps_fig["data"][1]["name"].startswith("heun, ") and "log-snr spacing" in steps_fig["data"][1]["name"]
    assert any("No benchmark for this model yet" in c.value for c in at.caption)
    model = "tiny"
    path.write_text(json.dumps({"model": model, "n": 500, "reference": "MNIST test split", "rows": rows(model),
                                "best": {"10": {"sampler": "ddim", "spacing": "uniform", "fid": 11.0, "fid_se": 1.0}}}))
    at.run()
    assert any("; best at 10 NFE: ddim · uniform (FID 11.0 ± 1.0)." in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 2 and errors(at) == []


def wait_done(model, n, root, timeout=180.0):
    deadline = time.monotonic() + timeout
    while True:
        job = sampler_costs.grid_job(model, n, root)
        if job and (job.get("done") or job.get("error") or not job["running"]):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.5)


def test_the_grid_runs_as_a_background_job_writing_its_points_as_they_come(tmp_path):
    model = write_checkpoint(tmp_path, "tiny", T=20)
    root = tmp_path / "runs"
    assert sampler_costs.grid_job(model, 20, root) is None
    out = sampler_costs.start_grid_job(model, 20, [4], root)
    with pytest.raises(ValueError, match="a measurement of tiny at n = 20 is already running"):
        sampler_costs.start_grid_job(model, 20, [4], root)
    job = wait_done(model, 20, root)
    assert job["done"] and not job.get("error") and out.is_file()
    plan = sampler_costs.grid_choices(load_checkpoint(model), [4])
    assert len(job["rows"]) == job["total"] == len(plan) == 7 * 4  # every few-step sampler × spacing
    assert {(r["sampler"], r["spacing"]) for r in job["rows"]} == {(c.sampler, c.spacing) for _, c in plan}
    assert all(r["nfe"] <= 4 and r["fid"] > 0 and r["kid_se"] > 0 for r in job["rows"])
    assert job["best"]["4"]["fid"] == min(r["fid"] for r in job["rows"])


def test_a_grid_on_a_cold_model_fails_with_the_reason(tmp_path):
    from diffusion_core.io.checkpoints import save_checkpoint
    from diffusion_core.models import build_model
    from diffusion_core.process.degradations import make_degradation
    from tests.app_support import TINY_CNN

    model = save_checkpoint(tmp_path / "cold", build_model(TINY_CNN), {
        "model": TINY_CNN, "diffusion": {"type": "cold", "degradation": make_degradation("blur", 10).config()}})
    sampler_costs.start_grid_job(model, 20, [4], tmp_path / "runs")
    job = wait_done(model, 20, tmp_path / "runs")
    assert "a cold model has no noise levels" in job["error"]
