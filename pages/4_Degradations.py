"""Degradations (cold diffusion): each degradation previewed over t with its strength schedule (the
report's Figure 6 for the blur); with a cold model, conditional restoration of a test digit by the
naive, improved and direct samplers side by side with RMSE / SSIM, and unconditional samples from a
black start vs the paper's mixture start."""

import pandas as pd
import streamlit as st

from diffusion_core.cold import COLD_SAMPLERS
from diffusion_core.cold_views import (
    degradation_parameters,
    degradation_preview,
    mean_pairwise_distance,
    restore,
    unconditional_samples,
)
from diffusion_core.degradations import DEFAULT_T, DEGRADATION_KINDS, MAX_T, STRENGTH_SCHEDULES, make_degradation
from diffusion_core.figures import blur_schedule_figure, image_panels_figure
from pages.lab_ui import checkpoint_label, load_test_digits, model_picker, setup_page, user_errors

START_LABELS = {"black": "black start (the report)", "mixture": "mixture start (the paper)"}

setup_page("Degradations", (
    "Cold diffusion (Bansal et al. 2022) replaces noise with a deterministic degradation D(x, t) — blur, "
    "a growing mask, pixelation, a fade — whose strength grows with t along a schedule. A network R learns "
    "to restore x from D(x, t); sampling walks back from t = T. The report's blur has σ_t = 0.02 + 0.01·t "
    "over T = 500 steps. The **improved** sampler x_{t−1} = x_t − D(x̂0, t) + D(x̂0, t−1) corrects the "
    "**naive** one x_{t−1} = D(x̂0, t−1); **direct** restores in one step, x̂0 = R(x_T, T)."
))

# ---------------------------------------------------------------- preview over t (Figure 6)

st.subheader("A degradation over t")
c1, c2, c3, c4 = st.columns(4)
kind = c1.selectbox("Degradation", DEGRADATION_KINDS, key="deg_kind",
                    help="blur is the report's: one Gaussian kernel covering the whole image")
T = int(c2.number_input("Steps T", min_value=1, max_value=MAX_T, value=DEFAULT_T[kind], key=f"deg_T_{kind}"))
schedule = c3.selectbox("Strength schedule", STRENGTH_SCHEDULES, key="deg_schedule",
                        help="how the strength grows with t/T: linear as the report, or non-linear")
digit = int(c4.number_input("Test digit", min_value=0, max_value=9999, value=0, step=1, key="deg_digit"))

specs = degradation_parameters(kind)
params: dict[str, float | int | None] = {}
cols = st.columns(max(len(specs) + 1, 4))
for col, spec in zip(cols, specs, strict=False):
    if spec.integer:
        value = col.number_input(spec.name, value=spec.default, step=1, key=f"deg_{kind}_{spec.name}",
                                 placeholder="whole image" if spec.default is None else None)
    else:
        value = col.number_input(spec.name, value=float(spec.default), step=0.01, format="%g",
                                 key=f"deg_{kind}_{spec.name}")
    params[spec.name] = value
noise_seed = 0
if kind == "noise-blur":
    noise_seed = int(cols[len(specs)].number_input("Noise seed", min_value=0, max_value=2**31 - 1, value=0,
                                                   key="deg_noise_seed"))

with user_errors("Cannot preview this degradation"):
    degradation = make_degradation(kind, T, schedule, **params)
    data = load_test_digits("mnist")
    if digit >= len(data):
        raise ValueError(f"test digit must be below {len(data)} (the size of the test set here)")
    preview = degradation_preview(degradation, data.images[digit], seed=noise_seed)
    fig = blur_schedule_figure(preview.curve, dict(zip(preview.ts, preview.frames, strict=True)))
    fig.update_layout(title=f"{kind} degradation, {schedule} schedule, T = {T}")
    fig.layout.annotations[0].text = preview.label
    fig.update_yaxes(title_text=preview.label, row=1, col=1)
    st.plotly_chart(fig, key="deg_preview_fig")
    shown = ", ".join(f"{preview.curve[t]:.4g}" for t in preview.ts)
    st.caption(f"Test digit {digit} ({data.source}, label {int(data.labels[digit])}). {preview.label} at "
               f"t = {', '.join(map(str, preview.ts))}: {shown}.")

# ---------------------------------------------------------------- restoration with a cold model

st.subheader("Restore a degraded test digit")
st.caption("Conditional generation: degrade a real test digit to x_t = D(x, t) with the model's own degradation, "
           "then let each sampler walk back to t = 0. RMSE and SSIM compare each restoration with the original.")
ckpt = model_picker(key="deg_model", label="Cold model", diffusion_type="cold")
if ckpt is None:
    st.stop()
model_T = int(ckpt.config["diffusion"]["degradation"]["T"])
model_deg = ckpt.config["diffusion"]["degradation"]
st.caption(f"Model: {checkpoint_label(ckpt.config)}. It undoes {model_deg['kind']} over T = {model_T} steps "
           f"({model_deg.get('schedule', 'linear')} schedule; "
           + ", ".join(f"{k} = {v}" for k, v in model_deg.items() if k not in ("kind", "T", "schedule")) + ").")

r1, r2, r3 = st.columns(3)
steps = int(r1.number_input("Sampler steps (naive, improved)", min_value=1, max_value=model_T,
                            value=min(model_T, 100), key="deg_steps", help="direct always takes one step"))
t_start = int(r2.slider("Degrade to t", min_value=1, max_value=model_T, value=model_T, key="deg_t_start")
              if model_T > 1 else 1)
seed = int(r3.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, key="deg_seed"))

inputs = (str(ckpt.path), digit, steps, t_start, seed)
if st.button("Restore", type="primary", key="deg_restore"):
    with user_errors("Could not restore"), st.spinner("Restoring…"):
        data = load_test_digits(ckpt.config.get("dataset", "mnist"))
        if digit >= len(data):
            raise ValueError(f"test digit must be below {len(data)} (the size of the test set here)")
        result = restore(ckpt, data.images[digit:digit + 1], COLD_SAMPLERS, steps, t_start, seed)
        st.session_state["deg_restoration"] = {"inputs": inputs, "result": result}
saved = st.session_state.get("deg_restoration")
if saved and saved["inputs"] == inputs:
    res = saved["result"]
    panels = {"original": res.original, f"degraded, t = {res.t_start}": res.degraded,
              **{f"{s} ({steps if s != 'direct' else 1} step{'s' if s != 'direct' and steps > 1 else ''})": img
                 for s, img in res.restored.items()}}
    fig = image_panels_figure(panels, title="Restorations side by side", nrow=1)
    st.plotly_chart(fig.update_layout(height=330), key="deg_restore_fig")
    st.dataframe(pd.DataFrame([{"sampler": s, "RMSE": v["rmse"], "SSIM": v["ssim"]} for s, v in res.scores.items()]),
                 hide_index=True, key="deg_scores")
else:
    st.caption("Press **Restore** to run the three samplers on this digit.")

# ---------------------------------------------------------------- unconditional: black vs mixture start

st.subheader("Generate from nothing: black start vs mixture start")
st.caption("The report started unconditional sampling from a black image, D(black, T): every sample starts from the "
           "same image, so a deterministic sampler draws one digit over and over (spread 0). The Cold Diffusion paper "
           "starts from a Gaussian mixture fitted to fully degraded training digits, plus a little noise.")
u1, u2, u3, u4 = st.columns(4)
sampler = u1.selectbox("Sampler", COLD_SAMPLERS, key="deg_uncond_sampler")
u_steps = int(u2.number_input("Steps", min_value=1, max_value=model_T, value=min(model_T, 100), key="deg_uncond_steps",
                              disabled=sampler == "direct"))
n = int(u3.number_input("Images", min_value=2, max_value=16, value=8, key="deg_uncond_n"))
u_seed = int(u4.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, key="deg_uncond_seed"))
u_inputs = (str(ckpt.path), sampler, u_steps, n, u_seed)
if st.button("Generate", key="deg_generate"):
    with user_errors("Could not sample"), st.spinner("Sampling (fitting the mixture on first use)…"):
        st.session_state["deg_uncond"] = {"inputs": u_inputs,
                                          "samples": unconditional_samples(ckpt, sampler, n, u_seed, u_steps)}
saved = st.session_state.get("deg_uncond")
if saved and saved["inputs"] == u_inputs:
    samples = saved["samples"]
    st.plotly_chart(image_panels_figure({START_LABELS[k]: v for k, v in samples.items()},
                                        title=f"Unconditional samples ({sampler})", nrow=4), key="deg_uncond_fig")
    m = st.columns(len(samples))
    for col, (start, imgs) in zip(m, samples.items(), strict=True):
        col.metric(f"Spread · {start} start", f"{mean_pairwise_distance(imgs):.4f}",
                   help="mean RMSE between pairs of samples; 0 means every sample is the same image")
else:
    st.caption("Press **Generate** to sample from both starts with the same seed.")
