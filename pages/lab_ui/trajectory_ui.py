"""A reverse-diffusion trajectory on a page: one frame's slots (t and what the process says of it above z_t, x̂0
and its curve), and a sampling run through the server's work queue that draws its frames live while it computes."""

from __future__ import annotations

import dataclasses

import numpy as np
import streamlit as st

from diffusion_core.editing.sdedit import continuation, renoise
from diffusion_core.evaluation.spectra import radial_power_spectrum, spectrum_frequencies
from diffusion_core.figures import curve_marker_figure, spectra_figure
from diffusion_core.process import DiffusionProcess
from diffusion_core.sampling import SamplerChoice
from diffusion_core.views import reverse as trajectory
from diffusion_core.views.merged_runs import submit_trajectory

from . import queue_ui
from .data import load_test_digits
from .render import grid_image

MAX_FRAMES = 128  # frames kept for stepping through (evenly spaced; the last is always kept)
LIVE_EVERY = 0.25  # seconds between live frames while a run computes
SPECTRUM_DIGITS = 256  # real test digits in the reference spectrum


def frame_slots() -> list:
    """Places for one frame: t and two facts of it (β_t, ᾱ_t) above z_t, x̂0 and the curve (filled by show_frame)."""
    return [c.empty() for c in (*st.columns(3), *st.columns(3))]


def show_frame(slots: list, process: DiffusionProcess, t: int, z_png: bytes, x0_png: bytes, fig_key: str,
               note: str = "") -> None:
    """t (with what the process says of it: β_t and ᾱ_t for a noise model, the time and α_t for a flow), z_t beside
    x̂0, and the process's curve with t marked."""
    m_t, *m_facts, g_z, g_x0, g_fig = slots
    m_t.metric("t", t)
    g_z.image(z_png, caption=f"z_t at t = {t}{note}")
    g_x0.image(x0_png, caption=f"x̂0 predicted from z_t at t = {t}{note}")
    for slot, (label, value) in zip(m_facts, process.frame_facts(t).items(), strict=False):
        slot.metric(label, value)
    curve = process.frame_curve()
    if curve is not None:
        g_fig.plotly_chart(curve_marker_figure(*curve, t), key=fig_key)


def sample_live(ckpt, choice: SamplerChoice, n: int) -> tuple[trajectory.Trajectory, float]:
    """A reverse run through the work queue — in one batch with other students' runs of the same model and settings
    (views/merged_runs.py) — drawing z_t, x̂0, t and the schedule marker as it goes. A rerun or a closed tab stops
    it: in line it gives its place up, running it stops at the next step (or leaves the batch)."""
    total = ckpt.process.step_count(choice) + 1
    live = trajectory.LiveView(LIVE_EVERY)
    ticket = submit_trajectory(queue_ui.default_queue(), ckpt, choice, n, live, MAX_FRAMES)
    box, shown = st.empty(), None
    with box.container():
        note, slots = st.empty(), frame_slots()
    try:
        while not ticket.wait(LIVE_EVERY):
            frame, position = live.latest(), ticket.position()
            if position:
                note.info(queue_ui.place_message(position))
            elif frame is not None and frame is not shown:
                note.progress(frame.index / max(total - 1, 1), text=f"Sampling: step {frame.index} of {total - 1}")
                show_frame(slots, ckpt.process, frame.t, grid_image(frame.z), grid_image(frame.x0),
                           f"rd_live_fig_{frame.index}", " (live)")
                shown = frame
    finally:
        live.stop()
        ticket.cancel()
    box.empty()
    return ticket.result()


@st.cache_data(max_entries=2, show_spinner=False)
def _real_spectrum(dataset: str) -> np.ndarray:
    return radial_power_spectrum(load_test_digits(dataset).images[:SPECTRUM_DIGITS])


def spectra_panel(traj: trajectory.Trajectory, dataset: str = "mnist") -> None:
    """The radially averaged power spectra of z_t (solid) and x̂0 (dashed) at five kept frames beside real test
    digits': noise raises a flat floor that drowns the highest frequencies first."""
    curves = traj.spectra()
    if not curves:
        return
    with st.expander("Spectra across t: which frequencies the noise drowns first"):
        curves[f"real digits ({SPECTRUM_DIGITS})"] = _real_spectrum(dataset)
        fig = spectra_figure(spectrum_frequencies(traj.z.shape[-1]), curves,
                             "Radially averaged power spectrum of z_t (solid) and x̂0 (dashed)",
                             dashed=[k for k in curves if k.startswith("x̂0")])
        st.plotly_chart(fig, key="rd_spectra_fig")
        st.caption("Power per spatial frequency, averaged over the run's images (each image's mean removed). Noise "
                   "of variance σ² is a flat line at σ²: where it lies above the digits' curve, that detail is "
                   "gone from z_t, and x̂0 shows what the model puts back.")


def diffuse_up(ckpt, request: tuple[int, int]) -> None:
    """Diffuse ↑: re-noise frame k of the shown trajectory by `up` steps of the forward process, then run the
    reverse diffusion again from there (the same sampler settings); the new run replaces the shown one."""
    k, up = request
    if isinstance(up, float) and up.is_integer():
        up = int(up)
    result = st.session_state["rd_result"]
    traj, choice = result["traj"], result["choice"]
    t = traj.ts[k]
    z_up, t_up = renoise(ckpt.process, traj.state(k), t, up, choice.seed + 1 + k)
    again = continuation(ckpt.process, choice, z_up, t_up)
    new, seconds = sample_live(ckpt, again, result["n"])
    result.update(traj=new, pngs=trajectory.frame_pngs(new), gif=trajectory.trajectory_gif(new),
                  png=trajectory.samples_png(new.samples), npy=trajectory.samples_npy(new.samples),
                  first=result.get("first", result["what"]),
                  what=f"diffused up from t = {t} by {t_up - t} steps to t = {t_up}, then {again.describe()} back down "
                       f"(the first run: {result.get('first', result['what'])})",
                  timing=f"Computed in {seconds:.1f} s.", choice=dataclasses.replace(choice, start=None))
    st.session_state.update(rd_k=0, rd_playing=False, rd_gen=st.session_state.get("rd_gen", 0) + 1)
