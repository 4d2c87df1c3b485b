"""Reverse diffusion: run a sampler on a model and watch z_t and the model's x̂0 change while it computes,
then step forward and back through the trajectory; download it as a GIF and the samples as PNG / .npy.
Before a run the page shows its expected time on this machine and asks first when that is long."""

import dataclasses
import time

import streamlit as st

from diffusion_core.services import run_plan
from diffusion_core.views import reverse as trajectory
from pages.lab_ui import (
    class_controls,
    describe_conditioning,
    model_picker,
    number_field,
    require,
    setup_page,
    user_errors,
)
from pages.lab_ui.models import seconds_per_call_cached
from pages.lab_ui.sampler_ui import cost_panel, knob_keys, sampler_controls
from pages.lab_ui.trajectory_ui import diffuse_up, frame_slots, sample_live, show_frame, spectra_panel
from pages.lab_ui.url_state import url_state

PLAY_SECONDS = 8.0  # Play runs through all kept frames in this time, whatever the frame rate
TICK = 0.15  # seconds between Play frames

setup_page("Reverse diffusion", (
    "Sampling runs the diffusion backwards: from z_T (pure noise, or a fully degraded image for cold "
    "diffusion) to a digit at t = 0. At every step the model also predicts the clean image x̂0; watching "
    "x̂0 shows what the model believes the digit will become long before z_t shows it."
))
url_state("reverse", ["rd_seed", "rd_n", "rd_sampler", "rd_steps_*", "rd_spacing_*", "rd_start", "rd_digit",
                       "rd_guidance", "rd_rho*", "rd_up", *knob_keys("rd")])

ckpt = model_picker(key="rd")
if ckpt is None:
    st.stop()
process = ckpt.process
bad = run_plan.known_bad_samplers(ckpt.config)
default = run_plan.default_sampler(ckpt)

cols = st.columns(5)
controls = sampler_controls(ckpt, "rd", default, bad, cols)
sampler = controls.choice.sampler
seed_field = number_field("Seed", 0, 2**31 - 1, value=0, key="rd_seed", container=cols[3])
n_field = number_field("Images", 1, 16, value=4, key="rd_n", container=cols[4])
fields = [f for f in (controls.steps_field, seed_field, n_field) if f is not None]
conditioning = class_controls(ckpt, "rd")
if sampler in bad:
    st.warning(f"**{sampler}** on this model: {bad[sampler]}.")

valid = all(f.ok for f in fields)  # else Run refuses with the fields' messages (require)
seed, n = (int(seed_field.value), int(n_field.value)) if valid else (0, 1)
choice = dataclasses.replace(controls.choice, seed=seed, **conditioning)
cost_panel(ckpt, choice, "rd_cost")
estimate = run_plan.RunEstimate(run_plan.network_calls(ckpt, choice),
                                seconds_per_call_cached(ckpt, n)) if valid else None
confirmed = True
if estimate is not None and not estimate.needs_confirmation:
    st.caption(f"Expected time on this machine: {estimate.describe()}.")
elif estimate is not None:
    st.warning(f"This run should take {estimate.describe()}, on a CPU the whole class shares. Fewer steps, "
               f"fewer images or the `{default.sampler}` sampler make it shorter.")
    confirmed = st.checkbox(f"Run it anyway (about {run_plan.format_seconds(estimate.seconds)})",
                            key=f"rd_confirm_{estimate.calls}_{n}")


if st.button("Run reverse diffusion", type="primary", key="rd_run", disabled=not confirmed):
    st.session_state.pop("rd_result", None)
    with user_errors("Could not sample"):
        require(fields)
        traj, seconds = sample_live(ckpt, choice, n)
        what = [choice.describe(), *describe_conditioning(conditioning), f"seed {seed}", f"{traj.total_frames} frames"
                + (f" ({len(traj)} shown)" if len(traj) < traj.total_frames else "")]
        st.session_state["rd_result"] = {
            "traj": traj, "pngs": trajectory.frame_pngs(traj), "gif": trajectory.trajectory_gif(traj),
            "png": trajectory.samples_png(traj.samples), "npy": trajectory.samples_npy(traj.samples),
            "process": process, "what": ", ".join(what),
            "timing": f"Computed in {run_plan.format_seconds(seconds)}; expected about "
                      f"{run_plan.format_seconds(estimate.seconds)}." if estimate else "",
            "choice": choice, "n": n,
        }
        st.session_state.update(rd_k=0, rd_playing=False, rd_gen=st.session_state.get("rd_gen", 0) + 1)

if st.session_state.get("rd_diffuse") is not None:  # Diffuse ↑ was pressed on a frame: go up, then down again
    with user_errors("Could not diffuse"):
        diffuse_up(ckpt, st.session_state.pop("rd_diffuse"))
    st.session_state.pop("rd_diffuse", None)

result = st.session_state.get("rd_result")
if result is None:
    st.caption("Choose a sampler and press **Run reverse diffusion**.")
    st.stop()
traj, K = result["traj"], len(result["traj"])
st.caption(f"Trajectory: {result['what']}.")
st.caption(result["timing"])
playing = st.session_state.get("rd_playing", False)  # Play runs the viewer on a timer
# rd_k is the frame shown. The page never sets the slider's value: a new slider (key rd_frame_<rd_gen>) starts at rd_k
# whenever the page moves the frame. (A slider set by the page can come back with the value the browser had when a
# Play tick left it, so the frame shown after Play was not t = 0.)


def go_to(k: int, play: bool = False) -> None:
    st.session_state.update(rd_k=k, rd_playing=play, rd_gen=st.session_state.get("rd_gen", 0) + 1)


def toggle_play() -> None:
    k = st.session_state.get("rd_k", 0)
    go_to(k, play=not st.session_state.get("rd_playing", False))
    st.session_state.update(rd_play_from=0 if k >= K - 1 else k, rd_play_start=time.monotonic())


def seek(key: str) -> None:  # the learner moved the slider (a slider the page has replaced may still report)
    if key == f"rd_frame_{st.session_state.get('rd_gen', 0)}":
        st.session_state.update(rd_k=st.session_state[key], rd_playing=False)


@st.fragment(run_every=TICK if playing else None)
def viewer() -> None:
    """Only this reruns on Back, Forward, the slider and each Play tick; frames are PNGs encoded once."""
    if st.session_state.get("rd_playing", False) != playing:
        st.rerun()  # Play or Pause: the timer is set by a run of the whole page
    if st.session_state.get("rd_diffuse") is not None:
        st.rerun()  # Diffuse ↑ was pressed: it runs in the whole page, now (not at the page's next full run)
    if playing:
        elapsed = time.monotonic() - st.session_state["rd_play_start"]
        k = trajectory.play_frame(st.session_state["rd_play_from"], elapsed, K, PLAY_SECONDS)
        go_to(k, play=k < K - 1)  # the last frame is drawn, then the next tick stops the timer
    k = st.session_state.get("rd_k", 0)
    b1, b2, b3, b4, b5 = st.columns([1, 1, 1, 1, 2])
    b1.button("◀ Back", key="rd_back", on_click=lambda: go_to(max(st.session_state.get("rd_k", 0) - 1, 0)))
    b2.button("Pause" if st.session_state.get("rd_playing") else "▶ Play", key="rd_play", on_click=toggle_play)
    b3.button("Forward ▶", key="rd_forward", on_click=lambda: go_to(min(st.session_state.get("rd_k", 0) + 1, K - 1)))
    if process.noise_levels and traj.z_data is not None:
        up = number_field("Steps up", 1, process.T, min(200, process.T), "rd_up", container=b5,
                          help="Diffuse ↑ re-noises the frame shown by this many steps of the forward process")
        b4.button("Diffuse ↑", key="rd_diffuse_button", help="re-noise the frame shown by the steps beside, then "
                  "run the reverse diffusion again from there: how much of the image survives?",
                  disabled=traj.ts[k] >= process.T or not up.ok,
                  on_click=lambda: st.session_state.update(rd_diffuse=(st.session_state.get("rd_k", 0),
                                                                       st.session_state.get("rd_up"))))
    if st.session_state.get("rd_playing"):
        st.progress(k / max(K - 1, 1), text=f"Playing: t = {traj.ts[k]}")
    else:
        key = f"rd_frame_{st.session_state.get('rd_gen', 0)}"
        st.select_slider("Step through the trajectory (t from T down to 0)", options=list(range(K)), value=k,
                         format_func=lambda i: f"t = {traj.ts[i]}", key=key, on_change=seek, args=(key,))
    show_frame(frame_slots(), result["process"], traj.ts[k], *result["pngs"][k], "rd_schedule_fig")


viewer()
spectra_panel(traj, ckpt.config.get("dataset", "mnist"))

st.subheader("Downloads")
d1, d2, d3 = st.columns(3)
d1.download_button("Trajectory (GIF)", result["gif"], file_name="trajectory.gif", mime="image/gif", key="rd_dl_gif")
d2.download_button("Samples (PNG)", result["png"], file_name="samples.png", mime="image/png", key="rd_dl_png")
d3.download_button("Samples (.npy)", result["npy"], file_name="samples.npy", mime="application/octet-stream",
                   key="rd_dl_npy")
