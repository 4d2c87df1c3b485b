"""Same-seed A/B (#16 item 6, #26 item 9): two runs from identical noise, one setting apart, compared at the same t."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from diffusion_core.io.checkpoints import LoadedCheckpoint
from diffusion_core.process import SamplerChoice
from diffusion_core.process.gaussian import noise_diffusion_config
from diffusion_core.process.schedules import preset_schedule
from diffusion_core.views.compare import ab_runs, aligned_timesteps, differing_settings
from tests.app_support import app, charts, errors, no_exceptions, ship_tiny_model, write_flow_checkpoint
from tests.test_samplers import GaussianOracleEps


@pytest.fixture(scope="module")
def ckpt():
    return LoadedCheckpoint(GaussianOracleEps(0.1, 0.2, preset_schedule("default")),
                            {"diffusion": noise_diffusion_config(preset="default")}, Path("oracle.safetensors"))


def test_identical_settings_give_identical_runs(ckpt):
    runs = ab_runs(ckpt, SamplerChoice("ddim", 10, seed=3), ckpt, SamplerChoice("ddim", 10, seed=3), n=2)
    assert runs.same_start and np.all(runs.difference == 0) and np.array_equal(runs.a.samples, runs.b.samples)


def test_one_setting_apart_the_runs_share_their_start_and_are_compared_at_the_same_t(ckpt):
    runs = ab_runs(ckpt, SamplerChoice("ddim", 5, seed=3), ckpt, SamplerChoice("dpm++2m-sde", 20, seed=3), n=2)
    assert runs.same_start and len(runs.a) == 6 and len(runs.b) == 21
    assert runs.ts[0] == 1000 and runs.ts[-1] == 0 and runs.ts == sorted(set(runs.a.ts) | set(runs.b.ts), reverse=True)
    assert runs.frames[0] == (0, 0) and runs.frames[-1] == (5, 20)
    for t, (i, j) in zip(runs.ts, runs.frames, strict=True):  # each run's frame nearest t: never a far-off step
        assert abs(runs.a.ts[i] - t) == min(abs(u - t) for u in runs.a.ts)
        assert abs(runs.b.ts[j] - t) == min(abs(u - t) for u in runs.b.ts)
        if t in runs.a.ts and t in runs.b.ts:
            assert runs.a.ts[i] == runs.b.ts[j] == t
    assert runs.difference[-1] > 0.01  # the deterministic and the stochastic sampler end apart
    with pytest.raises(ValueError, match="A and B must share the seed"):
        ab_runs(ckpt, SamplerChoice("ddim", 5, seed=3), ckpt, SamplerChoice("ddim", 5, seed=4))


def test_many_kept_timesteps_are_thinned_keeping_both_ends():
    ts = aligned_timesteps(list(range(1000, -1, -10)), list(range(1000, -1, -7)), 64)
    assert len(ts) <= 64 and ts[0] == 1000 and ts[-1] == 0 and ts == sorted(set(ts), reverse=True)


def test_every_setting_that_differs_is_named():
    a = SamplerChoice("dpm++2m-sde", 20)
    assert differing_settings("shipped:x", a, "shipped:x", a) == []
    assert differing_settings("shipped:x", a, "shipped:x", SamplerChoice("dpm++2m-sde", 5)) == ["steps: 20 → 5"]
    # ddim's own spacing is uniform, dpm++2m-sde's log-snr: switching the sampler alone changes both
    assert differing_settings("shipped:x", a, "shipped:x", SamplerChoice("ddim", 20)) == [
        "sampler: dpm++2m-sde → ddim", "spacing: log-snr → uniform"]
    assert differing_settings("shipped:x", a, "shipped:x", SamplerChoice("ddim", 20, spacing="log-snr")) == [
        "sampler: dpm++2m-sde → ddim"]  # DDIM's η at 0 is no second change
    eta_1 = SamplerChoice("ddim", 20, spacing="log-snr", knobs={"eta": 1.0})
    assert differing_settings("shipped:x", a, "shipped:x", eta_1) == [
        "sampler: dpm++2m-sde → ddim", "η: — → 1.0"]
    assert differing_settings("shipped:x", a, "run:r1", dataclasses.replace(a, guidance=3.0)) == [
        "model: shipped:x → run:r1", "guidance w: the model's → 3.0"]


def test_the_compare_page_opens_one_setting_apart_and_steps_both_runs_by_t(tmp_path, monkeypatch):
    ship_tiny_model(tmp_path, monkeypatch, T=50)
    monkeypatch.setenv("DIFFUSION_LAB_RUNS", str(tmp_path / "runs"))
    at = app("pages/9_Compare.py").run(timeout=60)
    no_exceptions(at)
    assert [c.value for c in at.caption if c.value.startswith("One setting apart")] == [
        "One setting apart — steps: 20 → 5."]
    at.selectbox(key="ab_B_sampler").set_value("ddim").run()  # only the sampler changes: B keeps 5 steps, log-snr
    assert at.number_input(key="ab_B_steps_ddim").value == 5
    assert at.radio(key="ab_B_spacing_ddim").value == "log-snr"
    assert [c.value for c in at.caption if c.value.startswith("2 settings apart")] == [
        "2 settings apart — sampler: dpm++2m-sde → ddim; steps: 20 → 5. (Change one at a time to see what each does.)"]
    at.number_input(key="ab_B_steps_ddim").set_value(20).run()
    assert [c.value for c in at.caption if c.value.startswith("One setting apart")] == [
        "One setting apart — sampler: dpm++2m-sde → ddim."]
    at.selectbox(key="ab_B_sampler").set_value("dpm++2m-sde").run()
    at.number_input(key="ab_B_steps_dpm++2m-sde").set_value(20).run()
    assert [w.value for w in at.warning] == [
        "A and B are the same: change one setting of B to see where the runs part."]
    at.number_input(key="ab_B_steps_dpm++2m-sde").set_value(5).run()
    at.button(key="ab_run").click().run(timeout=120)
    no_exceptions(at)
    assert not errors(at)
    assert any("A: dpm++2m-sde, 20 steps · B: dpm++2m-sde, 5 steps · both started from the same z_T" in c.value
               for c in at.caption)
    fig = next(f for f in charts(at) if f["layout"]["title"]["text"] == "How far apart A and B are, step by step")
    assert fig["data"][0]["y"][0] == 0  # the same z_T: the same first x̂0
    assert fig["layout"]["yaxis"]["range"][0] == 0 and fig["layout"]["xaxis"]["autorange"] == "reversed"
    options = list(at.select_slider(key="ab_t").options)
    assert options[0] == "t = 50" and options[-1] == "t = 0"
    at.select_slider(key="ab_t").set_value(0).run()
    assert [img.captions[0] for img in at.image][:2] == ["A · x̂0 at t = 0", "B · x̂0 at t = 0"]
    b_ts = [int(c.split("= ")[1]) for c in options]
    middle = b_ts[len(b_ts) // 2]
    at.select_slider(key="ab_t").set_value(middle).run()
    a_t, b_t = (int(img.captions[0].rsplit("= ", 1)[1]) for img in at.image[:2])
    assert a_t == middle and abs(b_t - middle) <= 50 / 4  # B (5 steps) shows its frame nearest t
    at.number_input(key="ab_B_steps_dpm++2m-sde").set_value(3).run()  # a new pair of runs, other timesteps
    at.button(key="ab_run").click().run(timeout=120)
    no_exceptions(at)
    assert at.select_slider(key="ab_t").value == 50  # it opens at the new runs' start, not the old t


def test_compare_a_noise_model_and_a_flow_model_from_the_same_noise(tmp_path, monkeypatch):
    """#28: Compare a diffusion model and a flow model: each with its own default sampler, both from the same z_T,
    stepped through by t."""
    shipped = ship_tiny_model(tmp_path, monkeypatch, T=50)
    write_flow_checkpoint(shipped, "flow", T=50)
    monkeypatch.setenv("DIFFUSION_LAB_RUNS", str(tmp_path / "runs"))
    at = app("pages/9_Compare.py").run(timeout=60)
    at.selectbox(key="ab_B_model_choice").set_value("shipped:flow").run()
    assert at.selectbox(key="ab_B_sampler").options[0] == "flow-euler"
    at.selectbox(key="ab_B_sampler").set_value("flow-euler").run()
    at.button(key="ab_run").click().run(timeout=120)
    no_exceptions(at)
    assert not errors(at)
    fig = next(f for f in charts(at) if f["layout"]["title"]["text"] == "How far apart A and B are, step by step")
    assert len(fig["data"][0]["y"]) > 2
    assert at.select_slider(key="ab_t").options[-1] == "t = 0"
