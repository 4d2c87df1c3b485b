"""Schedules: β_t, ᾱ_t (the report's Figure 1) and log-SNR for the presets and a custom schedule,
plus the forward process applied to a real digit."""

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from diffusion_core.io.data import load_dataset
from diffusion_core.io.images import png_bytes
from diffusion_core.process.gaussian import q_sample
from diffusion_core.process.schedules import (
    MAX_T,
    PRESETS,
    SCHEDULE_KINDS,
    NoiseSchedule,
    make_schedule,
    preset_schedule,
)
from pages.lab_ui import downsample_indices, number_field, require, setup_page, user_errors

NOT_NOISE = 0.01  # ᾱ_T above this: z_T still carries visible signal, so N(0, I) is the wrong start
MODEL2_1000 = "model2 at T=1000"

setup_page("Schedules", (
    "The noise schedule β_t (t = 1..T) decides how fast a digit dissolves. What matters is "
    "ᾱ_t = Π_{s≤t}(1−β_s): the forward process is z_t = √ᾱ_t·x + √(1−ᾱ_t)·ε, so ᾱ_t is the share of "
    "signal power left at step t, and log-SNR = log(ᾱ_t/(1−ᾱ_t)). Sampling starts from pure noise, so a "
    "schedule is only sound if **ᾱ_T ≈ 0**."
))


@st.cache_resource(show_spinner="Loading test digits…")
def test_digits():
    return load_dataset("mnist", "test", download=False)


def preset_choices() -> dict[str, NoiseSchedule]:
    found = {name: preset_schedule(name) for name in PRESETS}
    found[MODEL2_1000] = make_schedule("linear", PRESETS["model2"]["beta1"], PRESETS["model2"]["beta2"], 1000)
    return found


presets = preset_choices()
c1, c2 = st.columns([3, 1])
chosen = c1.multiselect("Presets", list(presets), default=list(presets), key="sched_presets")
axis = c2.radio("Time axis", ["t", "t / T"], horizontal=True, key="sched_axis",
                help="t / T puts schedules with different T on one scale")

schedules: dict[str, NoiseSchedule] = {name: presets[name] for name in chosen}
with st.expander("Custom schedule", expanded=True):
    use_custom = st.checkbox("Add a custom schedule", value=True, key="sched_custom")
    k1, k2, k3, k4 = st.columns(4)
    kind = k1.selectbox("Kind", SCHEDULE_KINDS, key="sched_kind")
    cosine = kind == "cosine"  # no β1/β2: their boxes are disabled and not read
    beta1 = number_field("β1", 0.0, 1.0, 1e-4, "sched_beta1", container=k2, step=1e-5, format="%.2e",
                         lo_open=True, hi_open=True, disabled=cosine or not use_custom)
    beta2 = number_field("β2", 0.0, 1.0, 0.02, "sched_beta2", container=k3, step=1e-3, format="%.2e",
                         lo_open=True, hi_open=True, disabled=cosine or not use_custom)
    T = number_field("T", 1, MAX_T, 1000, "sched_T", container=k4, step=100, disabled=not use_custom)
    if use_custom:
        with user_errors("Invalid custom schedule") as outcome:
            require([T] if cosine else [beta1, beta2, T])  # out of range: refused, never the last valid value
            schedules["custom"] = (make_schedule(kind, T=int(T)) if cosine
                                   else make_schedule(kind, float(beta1), float(beta2), int(T)))
        if outcome.failed:
            st.caption("Fix the values above; the presets are still drawn below.")

if not schedules:
    st.info("Choose at least one preset or add a custom schedule.")
    st.stop()


def curve(s: NoiseSchedule, values: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    idx = downsample_indices(s.T + 1)
    t = idx / s.T if axis == "t / T" else idx
    y = values.double().numpy()[idx]
    return t, np.where(np.isfinite(y), y, np.nan)


def figure(title: str, ytitle: str, series: dict[str, tuple[np.ndarray, np.ndarray]], log_y: bool = False) -> go.Figure:
    fig = go.Figure([go.Scatter(x=x, y=y, mode="lines", name=name) for name, (x, y) in series.items()])
    fig.update_layout(title=title, xaxis_title=axis, yaxis_title=ytitle, height=420, legend_title="schedule",
                      margin=dict(t=50, b=40))
    if log_y:
        fig.update_yaxes(type="log")
    return fig


abar_fig = figure("ᾱ_t against t (report Figure 1)", "ᾱ_t",
                  {n: curve(s, s.alpha_bars) for n, s in schedules.items()})
for name, s in schedules.items():
    end = float(s.alpha_bars[-1])
    if end > NOT_NOISE:
        abar_fig.add_annotation(x=1.0 if axis == "t / T" else s.T, y=end, text=f"{name}: ᾱ_T ≈ {end:.2f}",
                                showarrow=True, arrowhead=2, ax=-60, ay=-30)
tabs = st.tabs(["ᾱ_t", "β_t", "log-SNR"])
tabs[0].plotly_chart(abar_fig, key="fig_alpha_bar")
tabs[1].plotly_chart(figure("β_t", "β_t (log scale)", {n: curve(s, s.betas) for n, s in schedules.items()},
                            log_y=True), key="fig_beta")
tabs[2].plotly_chart(figure("log-SNR_t = log(ᾱ_t / (1 − ᾱ_t))", "log-SNR",
                            {n: curve(s, s.log_snr) for n, s in schedules.items()}), key="fig_log_snr")

st.subheader("Where each schedule ends")
cols = st.columns(min(len(schedules), 5))
for i, (name, s) in enumerate(schedules.items()):
    end = float(s.alpha_bars[-1])
    cols[i % len(cols)].metric(f"ᾱ_T · {name}", f"{end:.3g}", help=f"T = {s.T}; √ᾱ_T = {end ** 0.5:.3f}")
for name, s in schedules.items():
    end = float(s.alpha_bars[-1])
    if end > NOT_NOISE:
        st.warning(
            f"**{name}** ends at ᾱ_T = {end:.2f}: z_T still keeps √ᾱ_T = {end ** 0.5:.0%} of the digit, so it is "
            f"only {1 - end:.0%} of the way to noise. The model never sees pure noise in training, yet sampling "
            "starts from z_T ~ N(0, I) — the report's lesson from model2 at T = 1000. Raise T or β2 until ᾱ_T ≈ 0."
        )

st.subheader("The forward process on a real digit")
f1, f2, f3 = st.columns(3)
strip_name = f1.selectbox("Schedule for the strip", list(schedules), key="strip_schedule")
s = schedules[strip_name]
snapshots = PRESETS.get(strip_name, {}).get("snapshots") or np.linspace(0, s.T, 9).round().astype(int).tolist()
default_ts = ", ".join(str(t) for t in sorted({0, *snapshots}))
digit = number_field("Test digit index", 0, 9999, 0, "strip_digit", container=f2)
noise_seed = number_field("Noise seed", 0, 2**31 - 1, 0, "strip_seed", container=f3)
ts_text = st.text_input("Timesteps t (comma-separated)", value=default_ts, key=f"strip_ts_{strip_name}")

with user_errors("Cannot draw the strip"):
    require([digit, noise_seed])
    try:
        ts = [int(v) for v in ts_text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"timesteps must be whole numbers separated by commas; got {ts_text!r}") from None
    if not ts or len(ts) > 16 or any(not 0 <= t <= s.T for t in ts):
        raise ValueError(f"give 1 to 16 timesteps, each between 0 and T = {s.T}; got {ts_text!r}")
    data = test_digits()
    if int(digit) >= len(data):
        raise ValueError(f"Test digit index must be below {len(data):,} (the size of the test set here, "
                         f"{data.source}); got {int(digit)}")
    x = data.images[int(digit)].unsqueeze(0).repeat(len(ts), 1, 1, 1)
    eps = torch.randn(x[:1].shape, generator=torch.Generator().manual_seed(int(noise_seed))).repeat(len(ts), 1, 1, 1)
    z = q_sample(s, x, torch.tensor(ts), eps)  # the same ε at every t: one path from x to noise
    pixels = (z + 0.5).clamp(0, 1).squeeze(1).numpy()
    abar = s.alpha_bars
    st.image([png_bytes(p, scale=3) for p in pixels],
             caption=[f"t={t} · ᾱ={float(abar[t]):.3f}" for t in ts])
    st.caption(f"Digit {int(digit)} of the test split ({data.source}), label {int(data.labels[int(digit)])}. "
               "Pixels outside [0, 1] are clipped for display.")
