"""Radially averaged power spectra: against images with known spectra, in a trajectory (unclipped z_t), for the
degradations, and on the pages."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from diffusion_core.evaluation.spectra import radial_power_spectrum, spectrum_frequencies
from diffusion_core.process.degradations import make_degradation
from diffusion_core.samplers import SamplerStep
from diffusion_core.views.degradations import degradation_spectra
from diffusion_core.views.reverse import record_trajectory
from tests.app_support import app, errors, no_exceptions, ship_tiny_model


def test_white_noise_is_flat_at_its_variance_and_a_cosine_is_one_peak():
    rng = np.random.default_rng(0)
    noise = radial_power_spectrum(rng.normal(scale=0.5, size=(400, 28, 28)))
    np.testing.assert_allclose(noise[1:], 0.25, rtol=0.1)  # σ² = 0.25 at every frequency (Parseval)
    x = np.arange(28)
    wave = np.cos(2 * np.pi * 4 * x / 28)[None, :].repeat(28, axis=0)  # 4 cycles across the image
    power = radial_power_spectrum(wave)
    assert power.argmax() == 4 and power[4] > 1e6 * np.delete(power, 4).max()
    assert spectrum_frequencies(28)[4] == pytest.approx(4 / 28) and len(power) == 15
    with pytest.raises(ValueError, match="square images"):
        radial_power_spectrum(np.zeros((2, 28, 20)))


def test_blur_removes_high_frequencies_and_the_noisy_hybrid_keeps_a_floor():
    x = torch.rand(32, 1, 28, 28) - 0.5
    blur = degradation_spectra(make_degradation("blur", 20), x)
    assert list(blur) == [0, 5, 10, 15, 20]
    high = [blur[t][10] for t in blur]
    assert all(a > b for a, b in zip(high, high[1:], strict=False)) and high[-1] < 1e-3 * high[0]
    hybrid = degradation_spectra(make_degradation("noise-blur", 20, noise_std=0.1), x)
    assert hybrid[20][10] > 100 * blur[20][10]  # the noise term's floor at the highest frequencies


def test_a_trajectory_keeps_the_spectra_of_unclipped_frames():
    rng = torch.Generator().manual_seed(0)
    zs = [torch.randn((3, 1, 28, 28), generator=rng) * s for s in (2.0, 1.0, 0.1)]
    frames = [SamplerStep(t, z, z * 0.5) for t, z in zip((2, 1, 0), zs, strict=True)]
    traj = record_trajectory(iter(frames))
    np.testing.assert_allclose(traj.z_power[0], radial_power_spectrum(zs[0]))  # not of the [0, 1] display
    assert traj.z_power[0][5] > 3.0  # σ = 2 noise: clipping to [0, 1] would cap it far below
    assert set(traj.spectra(3)) == {"z_t · t = 2", "z_t · t = 1", "z_t · t = 0", "x̂0 · t = 2", "x̂0 · t = 1"}


def test_the_pages_draw_the_spectra(tmp_path, monkeypatch):
    ship_tiny_model(tmp_path, monkeypatch)
    at = app("pages/3_Reverse_diffusion.py").run()
    at.button(key="rd_run").click().run()
    no_exceptions(at)
    names = [t["name"] for c in at.get("plotly_chart") for t in json.loads(c.proto.spec)["data"]]
    assert "real digits (256)" in names and any(n.startswith("z_t · t = 20") for n in names)
    deg = app("pages/4_Degradations.py").run()
    no_exceptions(deg)
    spectra = [json.loads(c.proto.spec) for c in deg.get("plotly_chart")
               if "Power spectrum" in json.loads(c.proto.spec)["layout"]["title"]["text"]]
    assert [t["name"] for t in spectra[0]["data"]] == ["t = 0", "t = 125", "t = 250", "t = 375", "t = 500"]
    assert errors(deg) == [] or all("cold" in e for e in errors(deg))
