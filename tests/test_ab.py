"""Same-seed A/B (#16 item 6): two runs from identical noise, one setting apart."""

from pathlib import Path

import numpy as np
import pytest

from diffusion_core.io.checkpoints import LoadedCheckpoint
from diffusion_core.lab.ab import ab_runs
from diffusion_core.process import SamplerChoice
from diffusion_core.process.gaussian import noise_diffusion_config
from diffusion_core.process.schedules import preset_schedule
from tests.app_support import app, charts, errors, no_exceptions, ship_tiny_model
from tests.test_samplers import GaussianOracleEps


@pytest.fixture(scope="module")
def ckpt():
    return LoadedCheckpoint(GaussianOracleEps(0.1, 0.2, preset_schedule("default")),
                            {"diffusion": noise_diffusion_config(preset="default")}, Path("oracle.safetensors"))


def test_identical_settings_give_identical_runs(ckpt):
    runs = ab_runs(ckpt, SamplerChoice("ddim", 10, seed=3), ckpt, SamplerChoice("ddim", 10, seed=3), n=2)
    assert runs.same_start and np.all(runs.difference == 0) and np.array_equal(runs.a.samples, runs.b.samples)


def test_one_setting_apart_the_runs_share_their_start_and_part_later(ckpt):
    runs = ab_runs(ckpt, SamplerChoice("ddim", 5, seed=3), ckpt, SamplerChoice("dpm++2m-sde", 20, seed=3), n=2)
    assert runs.same_start and len(runs.a) == 6 and len(runs.b) == 21
    assert runs.frames[0] == (0, 0) and runs.frames[-1] == (5, 20)
    assert runs.difference[-1] > 0.01  # the deterministic and the stochastic sampler end apart
    with pytest.raises(ValueError, match="A and B must share the seed"):
        ab_runs(ckpt, SamplerChoice("ddim", 5, seed=3), ckpt, SamplerChoice("ddim", 5, seed=4))


def test_the_compare_page(tmp_path, monkeypatch):
    ship_tiny_model(tmp_path, monkeypatch, T=50)
    monkeypatch.setenv("DIFFUSION_LAB_RUNS", str(tmp_path / "runs"))
    at = app("pages/9_Compare.py").run(timeout=60)
    no_exceptions(at)
    at.number_input(key="ab_B_steps_dpm++2m-sde").set_value(5)
    at.button(key="ab_run").click().run(timeout=120)
    no_exceptions(at)
    assert not errors(at)
    assert any("A: dpm++2m-sde, 20 steps · B: dpm++2m-sde, 5 steps · both started from the same z_T" in c.value
               for c in at.caption)
    fig = next(f for f in charts(at) if f["layout"]["title"]["text"] == "How far apart A and B are, step by step")
    assert fig["data"][0]["y"][0] == 0  # the same z_T: the same first x̂0
    at.slider(key="ab_progress").set_value(31).run()
    assert [img.captions[0] for img in at.image][:2] == ["A · x̂0 at t = 0", "B · x̂0 at t = 0"]
