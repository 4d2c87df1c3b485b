"""Reverse diffusion: run a sampler on a model, then step forward and back through the trajectory with
z_t and the model's x̂0 side by side; download it as a GIF and the samples as PNG / .npy."""

import plotly.graph_objects as go
import streamlit as st

from diffusion_core.samplers import DEFAULT_STEPS
from diffusion_core.sampling import SamplerChoice, checkpoint_steps, samplers_for
from diffusion_core.schedules import schedule_from_config
from diffusion_core.trajectory import record_trajectory, samples_npy, samples_png, trajectory_gif
from pages.lab_ui import (
    class_controls,
    describe_conditioning,
    downsample_indices,
    model_picker,
    run_queued,
    setup_page,
    show_grid,
    user_errors,
)

MAX_FRAMES = 128  # frames kept for the slider (evenly spaced; the last is always kept)
PLAY_SECONDS = 8.0  # a Play run through all kept frames takes about this long
TICK = 0.2  # seconds between Play frames
COLD_STARTS = {"mixture": "Gaussian mixture fitted to degraded digits (the paper)",
               "black": "a black image (the report)"}

setup_page("Reverse diffusion", (
    "Sampling runs the diffusion backwards: from z_T (pure noise, or a fully degraded image for cold "
    "diffusion) to a digit at t = 0. At every step the model also predicts the clean image x̂0; watching "
    "x̂0 shows what the model believes the digit will become long before z_t shows it."
))

ckpt = model_picker(key="rd")
if ckpt is None:
    st.stop()
diffusion = ckpt.config["diffusion"]
cold = diffusion["type"] == "cold"
T = int(diffusion["degradation"]["T"] if cold else diffusion["schedule"]["T"])

c1, c2, c3, c4, c5 = st.columns(5)
sampler = c1.selectbox("Sampler", samplers_for(ckpt), key="rd_sampler")
if sampler == "ancestral":
    c2.number_input("Steps", value=T, disabled=True, key="rd_steps_fixed", help="ancestral takes all T steps")
    steps = None
    if T > 2000:
        st.warning(f"The ancestral sampler takes all T = {T:,} steps: minutes on a CPU. DDIM or the DPM-Solvers "
                   "need 20–50.")
elif cold and sampler == "direct":
    c2.number_input("Steps", value=1, disabled=True, key="rd_steps_direct", help="direct restoration: one step")
    steps = None
else:
    default = min(DEFAULT_STEPS.get(sampler, T), T)
    steps = int(c2.number_input("Steps", min_value=1, max_value=T, value=default, key=f"rd_steps_{sampler}"))
eta = 0.0
if sampler == "ddim":
    eta = c3.slider("DDIM η", 0.0, 1.0, 0.0, 0.1, key="rd_eta", help="0: deterministic DDIM; 1: DDPM-like noise")
start = "mixture"
if cold:
    start = c3.selectbox("Start from", list(COLD_STARTS), format_func=COLD_STARTS.get, key="rd_start")
seed = int(c4.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, key="rd_seed"))
n = int(c5.number_input("Images", min_value=1, max_value=16, value=4, key="rd_n"))
conditioning = class_controls(ckpt, "rd")

if st.button("Run reverse diffusion", type="primary", key="rd_run"):
    with user_errors("Could not sample"), st.spinner("Sampling…"):
        kwargs = {"start": start} if cold else dict(conditioning)
        traj = run_queued(lambda: record_trajectory(  # the server's one work queue, with the place in line shown
            checkpoint_steps(ckpt, sampler, n=n, seed=seed, steps=steps, eta=eta, **kwargs), max_frames=MAX_FRAMES))
        what = [SamplerChoice(sampler, steps, eta).describe()]
        what += describe_conditioning(conditioning)
        what += [f"seed {seed}", f"{traj.total_frames} frames"
                 + (f" ({len(traj)} shown)" if len(traj) < traj.total_frames else "")]
        st.session_state["rd_result"] = {
            "traj": traj, "gif": trajectory_gif(traj), "png": samples_png(traj.samples),
            "npy": samples_npy(traj.samples), "cold": cold, "config": ckpt.config, "what": ", ".join(what),
        }
        st.session_state["rd_frame"] = 0
        st.session_state["rd_playing"] = False

result = st.session_state.get("rd_result")
if result is None:
    st.caption("Choose a sampler and press **Run reverse diffusion**.")
    st.stop()

traj = result["traj"]
K = len(traj)
st.caption(f"Trajectory: {result['what']}.")
schedule = None if result["cold"] else schedule_from_config(result["config"]["diffusion"]["schedule"])


def toggle_play() -> None:
    playing = not st.session_state.get("rd_playing", False)
    if playing and st.session_state.get("rd_frame", 0) >= K - 1:
        st.session_state["rd_frame"] = 0  # Play from the start again
    st.session_state["rd_playing"] = playing


def step(delta: int) -> None:
    st.session_state["rd_playing"] = False
    st.session_state["rd_frame"] = min(max(st.session_state.get("rd_frame", 0) + delta, 0), K - 1)


playing = st.session_state.get("rd_playing", False)
b1, b2, b3, _ = st.columns([1, 1, 1, 3])
b1.button("◀ Back", key="rd_back", on_click=step, args=(-1,))
b2.button("Pause" if playing else "▶ Play", key="rd_play", on_click=toggle_play)
b3.button("Forward ▶", key="rd_forward", on_click=step, args=(1,))


def schedule_figure(t: int) -> go.Figure:
    idx = downsample_indices(schedule.T + 1, 800)
    ab = schedule.alpha_bars.numpy()
    fig = go.Figure(go.Scatter(x=idx, y=ab[idx], mode="lines", name="ᾱ_t"))
    fig.add_trace(go.Scatter(x=[t], y=[float(ab[t])], mode="markers", marker=dict(size=12), name="current t"))
    fig.update_layout(height=240, margin=dict(t=30, b=30, l=40, r=10), title="ᾱ_t and the current step",
                      xaxis_title="t", yaxis_title="ᾱ_t", showlegend=False)
    return fig


@st.fragment(run_every=TICK if playing else None)
def viewer() -> None:
    if st.session_state.get("rd_playing"):
        nxt = st.session_state.get("rd_frame", 0) + max(1, round(K * TICK / PLAY_SECONDS))
        if nxt >= K - 1:
            st.session_state["rd_playing"] = False
            st.session_state["rd_frame"] = K - 1
            st.rerun()  # redraw the page without the timer
        st.session_state["rd_frame"] = nxt
    k = st.select_slider("Step through the trajectory (t from T down to 0)", options=list(range(K)),
                         format_func=lambda i: f"t = {traj.ts[i]}", key="rd_frame")
    t = traj.ts[k]
    m1, m2, m3 = st.columns(3)
    m1.metric("t", t)
    if schedule is not None:
        m2.metric("β_t", f"{float(schedule.betas[t]):.3g}")
        m3.metric("ᾱ_t", f"{float(schedule.alpha_bars[t]):.4g}")
    g1, g2, g3 = st.columns([2, 2, 2])
    with g1:
        show_grid(traj.z[k], caption=f"z_t at t = {t}", scale=4)
    with g2:
        show_grid(traj.x0[k], caption=f"x̂0 predicted from z_t at t = {t}", scale=4)
    if schedule is not None:
        g3.plotly_chart(schedule_figure(t), key="rd_schedule_fig")


viewer()

st.subheader("Downloads")
d1, d2, d3 = st.columns(3)
d1.download_button("Trajectory (GIF)", result["gif"], file_name="trajectory.gif", mime="image/gif", key="rd_dl_gif")
d2.download_button("Samples (PNG)", result["png"], file_name="samples.png", mime="image/png", key="rd_dl_png")
d3.download_button("Samples (.npy)", result["npy"], file_name="samples.npy", mime="application/octet-stream",
                   key="rd_dl_npy")
