"""Schedules: β_t, ᾱ_t (the report's Figure 1) and log-SNR for the presets and a custom schedule,
plus the forward process applied to a real digit."""

import numpy as np
import streamlit as st
import torch

from diffusion_core.figures import levels_figure, report_schedules, schedule_figure, weighting_figure
from diffusion_core.io.images import png_bytes, to_unit_numpy
from diffusion_core.process import FlowProcess, GaussianProcess
from diffusion_core.process.gaussian import noising_strip, parse_timesteps
from diffusion_core.process.schedules import MAX_T, PRESETS, SCHEDULE_KINDS, NoiseSchedule, log_snr, make_schedule
from diffusion_core.process.targets import DEFAULT_GAMMA, PREDICTIONS, WEIGHTINGS, weighting_curves
from pages.lab_ui import load_test_digits, number_field, require, setup_page, user_errors
from pages.lab_ui.url_state import url_state

setup_page("Schedules", (
    "The noise schedule β_t (t = 1..T) decides how fast a digit dissolves. What matters is "
    "ᾱ_t = Π_{s≤t}(1−β_s): the forward process is z_t = √ᾱ_t·x + √(1−ᾱ_t)·ε, so ᾱ_t is the share of "
    "signal power left at step t, and log-SNR = log(ᾱ_t/(1−ᾱ_t)). Sampling starts from pure noise, so a "
    "schedule is only sound if **ᾱ_T ≈ 0**."
))
url_state("schedules", ["sched_*", "weight_*", "strip_*"])

presets = report_schedules()
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


normalise = axis == "t / T"
tabs = st.tabs(["ᾱ_t", "β_t", "log-SNR", "Signal and noise, with flow matching"])
tabs[0].plotly_chart(schedule_figure(schedules, "alpha_bar", normalise, "ᾱ_t against t (report Figure 1)"),
                     key="fig_alpha_bar")
tabs[1].plotly_chart(schedule_figure(schedules, "beta", normalise, "β_t"), key="fig_beta")
tabs[2].plotly_chart(schedule_figure(schedules, "log_snr", normalise, "log-SNR_t = log(ᾱ_t / (1 − ᾱ_t))"),
                     key="fig_log_snr")
tabs[3].plotly_chart(levels_figure({**{name: GaussianProcess(s) for name, s in schedules.items()},
                                    "flow matching (linear path)": FlowProcess()}), key="fig_levels")
tabs[3].caption("A β schedule keeps z_t = √ᾱ_t·x + √(1 − ᾱ_t)·ε at unit variance; flow matching walks the straight "
                "line z_t = (1 − t)·x + t·ε. Both are Gaussian paths from data to noise: at equal log-SNR they hold "
                "the same information, so one network view (σ = σ_t/α_t) runs every sampler on both — only the "
                "clock differs, which is what the log-SNR panel shows.")

st.subheader("Where each schedule ends")
cols = st.columns(min(len(schedules), 5))
for i, (name, s) in enumerate(schedules.items()):
    end = float(s.alpha_bars[-1])
    cols[i % len(cols)].metric(f"ᾱ_T · {name}", f"{end:.3g}", help=f"T = {s.T}; √ᾱ_T = {end ** 0.5:.3f}")
for warning in filter(None, (s.end_warning(name) for name, s in schedules.items())):
    st.warning(warning)

st.subheader("What the loss weights at each noise level")
st.caption("A network can predict ε (the report's), the clean image x0, or v = √ᾱ·ε − √(1−ᾱ)·x0, and the loss "
           "can weight noise levels differently. Each choice puts a weight λ on the error of x̂0 at each "
           "log-SNR: the report's ε loss is λ = SNR, so it spends most of its effort on nearly clean images; "
           "min-SNR-γ caps that at γ; flow matching's velocity loss is λ = 1/t² = (1 + √SNR)², close to v's. "
           "Train with `--prediction` and `--weighting` (Train page: Advanced), or `--flow`.")
FLOW = "flow matching · v = ε − x"
combos = [f"{p} · {w}" for w in WEIGHTINGS for p in PREDICTIONS] + [FLOW]
w1, w2 = st.columns([3, 1])
picked = w1.multiselect("Target · weighting", combos, key="weight_choices",
                        default=["eps · uniform", "x0 · uniform", "v · uniform", "eps · min-snr", "eps · soft-min-snr",
                                 FLOW])
gamma = number_field("γ (min-SNR)", 0.0, 1e4, DEFAULT_GAMMA, "weight_gamma", container=w2, step=1.0, lo_open=True)
with user_errors("Cannot draw the weights"):
    require([gamma])
    if not picked:
        raise ValueError("choose at least one target · weighting")
    grid = np.linspace(-12, 12, 241)
    curves = weighting_curves([tuple(c.split(" · ")) for c in picked if c != FLOW], torch.tensor(grid), float(gamma))
    if FLOW in picked:
        curves[FLOW] = FlowProcess().x0_weight(torch.tensor(grid).exp())
    spans = {name: (log_snr(float(s.alpha_bars[-1])), log_snr(float(s.alpha_bars[1]))) for name, s in schedules.items()}
    st.plotly_chart(weighting_figure(grid, {k: v.numpy() for k, v in curves.items()}, spans), key="fig_weights")
    drawn = {**{f"{name} · uniform t": GaussianProcess(s) for name, s in schedules.items()}, "flow · uniform t":
             FlowProcess(), "flow · logit-normal t (SD3)": FlowProcess(time_sampling="logit-normal")}
    density = {k: p.log_snr_density(torch.tensor(grid)).numpy() for k, p in drawn.items()}
    st.plotly_chart(weighting_figure(grid, density, title="How often training draws each noise level", log_y=False,
                                     y_title="density of log-SNR", legend_title="process · time sampling"),
                    key="fig_levels_drawn")
    st.caption("The objective's whole emphasis is the weight λ above times this density. A β schedule with uniform t "
               "draws most steps at its noisiest levels; flow matching's uniform t spreads over a wide range, and "
               "the logit-normal t of Stable Diffusion 3 concentrates on the middle (log-SNR near 0), where telling "
               "digits apart is decided.")

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
    ts = parse_timesteps(ts_text, s.T)
    data = load_test_digits("mnist")
    if int(digit) >= len(data):
        raise ValueError(f"Test digit index must be below {len(data):,} (the size of the test set here, "
                         f"{data.source}); got {int(digit)}")
    pixels = to_unit_numpy(noising_strip(s, data.images[int(digit)], ts, int(noise_seed)))
    abar = s.alpha_bars
    st.image([png_bytes(p, scale=3) for p in pixels],
             caption=[f"t={t} · ᾱ={float(abar[t]):.3f}" for t in ts])
    st.caption(f"Digit {int(digit)} of the test split ({data.source}), label {int(data.labels[int(digit)])}. "
               "Pixels outside [0, 1] are clipped for display.")
