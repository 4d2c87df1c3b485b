"""The sampler contract (#27): a sampler is one file — its run of the common shape, its knobs declared beside it —
and the CLI's choices and flags and the Reverse diffusion page's controls follow from the registration alone.

The dummy sampler below is written to a file of its own and imported, as a new module of diffusion_core/samplers
would be: nothing else is touched. Its run is DDIM with η = γ/2, so its samples have a known answer."""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest
import streamlit as st
import torch

from diffusion_core import cli
from diffusion_core.io.checkpoints import load_checkpoint
from diffusion_core.samplers.registry import SAMPLERS
from diffusion_core.sampling import SamplerChoice, sample_checkpoint
from tests.app_support import app, no_exceptions, write_checkpoint

DUMMY_FILE = '''"""A dummy sampler with a knob no other sampler has: DDIM's update with η = γ/2."""
from diffusion_core.process.knobs import Knob
from diffusion_core.samplers.ddim import sample_ddim
from diffusion_core.samplers.registry import register


def dummy(D, z_T, ts, generator, *, gamma):
    return sample_ddim(D, z_T, ts, generator, eta=gamma / 2)


register("dummy", "noise", dummy, order=99, default_steps=5, summary="a test's plugin",
         knobs=(Knob("gamma", "Dummy γ", 0.0, 2.0, step=0.5, help="twice DDIM's η", symbol="γ"),))
'''


@pytest.fixture
def dummy_sampler(tmp_path):
    path = tmp_path / "dummy_sampler.py"
    path.write_text(DUMMY_FILE)
    spec = importlib.util.spec_from_file_location("dummy_sampler", path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    try:
        yield SAMPLERS["dummy"]
    finally:
        SAMPLERS.pop("dummy", None)


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    folder = tmp_path / "shipped"
    folder.mkdir()
    monkeypatch.setenv("DIFFUSION_LAB_CHECKPOINTS", str(folder))
    st.cache_resource.clear()
    return write_checkpoint(folder, "tiny", T=20)


def test_a_new_sampler_and_its_knob_reach_the_cli(dummy_sampler, tiny, tmp_path, capsys):
    assert cli.main(["sample", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "dummy" in help_text and "--gamma GAMMA" in help_text and "Dummy γ" in help_text
    spacing_help = " ".join(help_text.split())  # --spacing names each sampler's own spacing
    assert re.search(r"[\w/+-]*/dummy uniform;", spacing_help) and "euler/heun/euler-a/pc karras" in spacing_help
    assert cli.main(["sample", str(tiny), "--sampler", "dummy", "--gamma", "1.0", "--n", "3", "--seed", "4",
                     "--out", str(tmp_path / "out"), "--quiet", "--precision", "fp32"]) == 0
    ddim = sample_checkpoint(load_checkpoint(tiny), SamplerChoice("ddim", 5, seed=4, knobs={"eta": 0.5}), 3,
                             precision="fp32").samples
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), ((ddim[:, 0] + 0.5).clamp(0, 1)).numpy(), atol=1e-6)
    # out of its range, or given to a sampler without it: refused in one line naming the knob
    assert cli.main(["sample", str(tiny), "--sampler", "dummy", "--gamma", "3", "--quiet"]) == 2
    assert "argument --gamma: must be a number with 0 ≤ value ≤ 2; got '3'" in capsys.readouterr().err
    assert cli.main(["sample", str(tiny), "--sampler", "ddim", "--gamma", "1", "--quiet"]) != 0
    assert "the ddim sampler has no gamma (ddim takes eta)" in capsys.readouterr().err


def test_a_new_sampler_and_its_knob_reach_the_reverse_diffusion_page(dummy_sampler, tiny):
    at = app("pages/3_Reverse_diffusion.py").run()
    assert "dummy" in at.selectbox(key="rd_sampler").options
    at.selectbox(key="rd_sampler").set_value("dummy").run()
    slider = at.slider(key="rd_gamma")
    assert (slider.label, slider.min, slider.max, slider.step) == ("Dummy γ", 0.0, 2.0, 0.5)
    slider.set_value(1.0)
    at.number_input(key="rd_n").set_value(2)
    at.button(key="rd_run").click().run()
    no_exceptions(at)
    assert "Trajectory: dummy, 5 steps, γ = 1, seed 0, 6 frames." in [c.value for c in at.caption]
    assert at.query_params["rd_gamma"] == "1"  # the knob travels in the page's link like the others
    last = at.session_state["rd_result"]["traj"].state(-1)  # the run's samples (t = 0), as the sampler had them
    torch.testing.assert_close(last, sample_checkpoint(
        load_checkpoint(tiny), SamplerChoice("ddim", 5, knobs={"eta": 0.5}), 2).samples)


def test_a_knob_out_of_its_range_in_a_link_is_named_and_the_slider_opens_at_its_default(tiny):
    """A first visitor's link asks Heun for churn 500 (its range is 0–100): the page says so and opens at 0
    instead of failing (a slider cannot hold a value outside its range)."""
    at = app("pages/3_Reverse_diffusion.py", query={"rd_sampler": '"heun"', "rd_churn": "500"}).run()
    no_exceptions(at)
    assert at.selectbox(key="rd_sampler").value == "heun" and at.slider(key="rd_churn").value == 0.0
    assert ("Ignored from the address: churn (Heun's S_churn) must be a number from 0 to 100; got 500."
            in [w.value for w in at.warning])


# -- the start of a run: one typed object (#27 item 3) ---------------------------------------------------------

def test_a_start_is_one_typed_object_and_each_process_names_its_own():
    import torch

    from diffusion_core.process import ColdProcess, GaussianProcess, SamplerChoice, Start
    from diffusion_core.process.degradations import make_degradation
    from diffusion_core.process.schedules import make_schedule

    states = torch.zeros(3, 1, 28, 28)
    assert SamplerChoice("ddim").start == Start()  # the process's default
    assert SamplerChoice("ddim", start="black").start == Start(name="black")
    given = SamplerChoice("ddim", start=states, t_start=5).start
    assert given.states is states and given.count == 3 and given.describe() == "given states"
    with pytest.raises(ValueError, match="one of them"):
        Start(name="black", states=states)
    with pytest.raises(ValueError, match="a start is a name, a tensor of states or a Start; got int"):
        SamplerChoice("ddim", start=3)

    noise = GaussianProcess(make_schedule("linear", 1e-4, 0.02, 10))
    with pytest.raises(ValueError, match="a noise model has no start 'black': it starts from fresh noise"):
        noise.start(SamplerChoice("ddim", start="black"), 2, torch.Generator())
    z, _ = noise.start(SamplerChoice("ddim", start=states, t_start=5), 2, torch.Generator())
    assert torch.equal(z, states)  # given states: their own count, not n

    cold = ColdProcess(make_degradation("blur", 10))
    with pytest.raises(ValueError, match="a cold model has no start 'white': its starts are mixture, black"):
        cold.start(SamplerChoice("improved", start="white"), 2, torch.Generator())
    x_T, extras = cold.start(SamplerChoice("improved", start="black"), 2, torch.Generator())
    assert x_T.shape == (2, 1, 28, 28) and float(x_T.abs().max()) == pytest.approx(0.5)  # a blurred black image
    with pytest.raises(ValueError, match="'mixture' start is fitted to training images"):
        cold.start(SamplerChoice("improved"), 2, torch.Generator())  # the default start, not yet fitted
