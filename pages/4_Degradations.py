"""Degradations (cold diffusion): each degradation previewed over t with its strength schedule (the
report's Figure 6 for the blur); with a cold model, conditional restoration of a test digit by the
naive, improved and direct samplers side by side with RMSE / SSIM, and unconditional samples from a
black start vs the paper's mixture start."""

import pandas as pd
import streamlit as st

from diffusion_core.figures import blur_schedule_figure, image_panels_figure
from diffusion_core.process.degradations import (
    DEFAULT_T,
    DEGRADATION_KINDS,
    MAX_T,
    STRENGTH_SCHEDULES,
    make_degradation,
)
from diffusion_core.views.degradations import (
    degradation_parameters,
    degradation_preview,
    mean_pairwise_distance,
    restore,
    start_comparison,
    unconditional_samples,
)
from pages.lab_ui import (
    checkpoint_label,
    degradation_param_inputs,
    load_test_digits,
    model_picker,
    number_field,
    require,
    setup_page,
    user_errors,
)
from pages.lab_ui.degradation_ui import spectra_chart
from pages.lab_ui.url_state import url_state

START_LABELS = {"black": "black start (the report)", "mixture": "mixture start (the paper)"}

setup_page("Degradations", (
    "Cold diffusion (Bansal et al. 2022) replaces noise with a deterministic degradation D(x, t) — blur, "
    "a growing mask, pixelation, a fade — whose strength grows with t along a schedule. A network R learns "
    "to restore x from D(x, t); sampling walks back from t = T. The report's blur has σ_t = 0.02 + 0.01·t "
    "over T = 500 steps. The **improved** sampler x_{t−1} = x_t − D(x̂0, t) + D(x̂0, t−1) corrects the "
    "**naive** one x_{t−1} = D(x̂0, t−1); **direct** restores in one step, x̂0 = R(x_T, T)."
))
url_state("degradations", ["deg_kind", "deg_schedule", "deg_t_start", "deg_digit", "deg_noise_seed", "deg_seed",
                           "deg_steps", "deg_uncond_n", "deg_uncond_seed", "deg_uncond_steps", "deg_uncond_sampler",
                           "deg_T_*", *[f"deg_{k}_*" for k in DEGRADATION_KINDS]])  # T and each kind's parameters

# ---------------------------------------------------------------- preview over t (Figure 6)

st.subheader("A degradation over t")
c1, c2, c3, c4 = st.columns(4)
kind = c1.selectbox("Degradation", DEGRADATION_KINDS, key="deg_kind",
                    help="blur is the report's: one Gaussian kernel covering the whole image")
T_field = number_field("Steps T", 1, MAX_T, DEFAULT_T[kind], f"deg_T_{kind}", container=c2)
schedule = c3.selectbox("Strength schedule", STRENGTH_SCHEDULES, key="deg_schedule",
                        help="how the strength grows with t/T: linear as the report, or non-linear")
digit_field = number_field("Test digit", 0, 9999, 0, "deg_digit", container=c4)

cols = st.columns(max(len(degradation_parameters(kind)) + 1, 4))
params = degradation_param_inputs(kind, cols, key=f"deg_{kind}")
preview_fields = [T_field, digit_field]
if make_degradation(kind).needs_noise:  # a hybrid: its noise is drawn with a seed
    preview_fields.append(number_field("Noise seed", 0, 2**31 - 1, 0, "deg_noise_seed", container=cols[-1]))

with user_errors("Cannot preview this degradation"):
    require(preview_fields)  # an out-of-range box is named above; no preview from a value it did not show
    T, digit = int(T_field), int(digit_field)
    noise_seed = int(preview_fields[2]) if len(preview_fields) > 2 else 0
    degradation = make_degradation(kind, T, schedule, **params)
    data = load_test_digits("mnist")
    if digit >= len(data):
        raise ValueError(f"test digit must be below {len(data)} (the size of the test set here)")
    preview = degradation_preview(degradation, data.images[digit], seed=noise_seed)
    fig = blur_schedule_figure(preview.curve, dict(zip(preview.ts, preview.frames, strict=True)),
                               label=preview.label, strip_title=preview.strip_title,
                               title=f"{kind} degradation, {schedule} schedule, T = {T}")
    st.plotly_chart(fig, key="deg_preview_fig")
    spectra_chart(degradation, data.images[:128], noise_seed)
    shown = ", ".join(f"{preview.curve[t]:.4g}" for t in preview.ts)
    st.caption(f"Test digit {digit} ({data.source}, label {int(data.labels[digit])}). {preview.label} at "
               f"t = {', '.join(map(str, preview.ts))}: {shown}.")

# ---------------------------------------------------------------- restoration with a cold model

st.subheader("Restore a degraded test digit")
st.caption("Conditional generation: degrade a real test digit to x_t = D(x, t) with the model's own degradation, "
           "then let each sampler walk back to t = 0. RMSE and SSIM compare each restoration with the original.")
ckpt = model_picker(key="deg_model", label="Cold model", offers="degrades")
if ckpt is None:
    st.stop()
model_T, model_kind = ckpt.process.T, ckpt.process.degradation.kind
st.caption(f"Model: {checkpoint_label(ckpt.config)}: {ckpt.process.describe()}.")

r1, r2, r3 = st.columns(3)
steps_field = number_field("Sampler steps (naive, improved)", 1, model_T, min(model_T, 100), "deg_steps", container=r1,
                           help="Direct always takes one step.")
t_start = int(r2.slider("Degrade to t", min_value=1, max_value=model_T, value=model_T, key="deg_t_start")
              if model_T > 1 else 1)
seed_field = number_field("Seed", 0, 2**31 - 1, 0, "deg_seed", container=r3)

steps = steps_field.value
inputs = (str(ckpt.path), digit_field.value, steps, t_start, seed_field.value)
if st.button("Restore", type="primary", key="deg_restore"):
    with user_errors("Could not restore"), st.spinner("Restoring…"):
        require([digit_field, steps_field, seed_field])
        digit, steps, seed = int(digit_field), int(steps_field), int(seed_field)
        data = load_test_digits(ckpt.config.get("dataset", "mnist"))
        if digit >= len(data):
            raise ValueError(f"test digit must be below {len(data)} (the size of the test set here)")
        result = restore(ckpt, data.images[digit:digit + 1], None, steps, t_start, seed)
        st.session_state["deg_restoration"] = {"inputs": inputs, "result": result}
saved = st.session_state.get("deg_restoration")
if saved and saved["inputs"] == inputs:
    res = saved["result"]
    fig = image_panels_figure(res.panels(), title="Restorations side by side", nrow=1)
    st.plotly_chart(fig.update_layout(height=330), key="deg_restore_fig")
    st.dataframe(pd.DataFrame([{"sampler": s, "RMSE": v["rmse"], "SSIM": v["ssim"]} for s, v in res.scores.items()]),
                 hide_index=True, key="deg_scores")
else:
    st.caption("Press **Restore** to run the three samplers on this digit.")

# ---------------------------------------------------------------- unconditional: black vs mixture start

st.subheader("Generate from nothing: black start vs mixture start")
gen_t = ckpt.process.degradation.generation_t
st.caption("Unconditional generation starts from a degraded image and walks back to t = 0. The report "
           "started from a black image, x_T = D(black, T); the Cold Diffusion paper starts from a Gaussian mixture "
           "fitted to degraded training digits, plus a little noise. Generate both with the same seed to see "
           "what the black start gives, and why."
           + (f" This model's mixture is fitted at t = {gen_t} of {model_T} and the walk starts there: past that "
              "much blur a digit's class is gone, and the restorer could only guess (the blur card measures it)."
              if gen_t < model_T else ""))
u1, u2, u3, u4 = st.columns(4)
sampler = u1.selectbox("Sampler", ckpt.process.samplers, key="deg_uncond_sampler")
one_step = ckpt.process.sampler(sampler).one_step
u_steps = number_field("Steps", 1, model_T, min(model_T, 100), "deg_uncond_steps", container=u2, disabled=one_step)
n_field = number_field("Images", 2, 16, 8, "deg_uncond_n", container=u3)
u_seed = number_field("Seed", 0, 2**31 - 1, 0, "deg_uncond_seed", container=u4)
u_inputs = (str(ckpt.path), sampler, u_steps.value, n_field.value, u_seed.value)
if st.button("Generate", key="deg_generate"):
    with user_errors("Could not sample"), st.spinner("Sampling (fitting the mixture on first use)…"):
        require([n_field, u_seed] + ([] if one_step else [u_steps]))
        n = int(n_field)
        samples = unconditional_samples(ckpt, sampler, n, int(u_seed), None if one_step else int(u_steps))
        real = load_test_digits(ckpt.config.get("dataset", "mnist")).images
        why = start_comparison(ckpt, samples["black"], real, n=4, seed=int(u_seed))
        st.session_state["deg_uncond"] = {"inputs": u_inputs, "samples": samples, "why": why}
saved = st.session_state.get("deg_uncond")
if saved and saved["inputs"] == u_inputs:
    samples, why = saved["samples"], saved["why"]
    st.plotly_chart(image_panels_figure({START_LABELS[k]: v for k, v in samples.items()},
                                        title=f"Unconditional samples ({sampler})", nrow=4), key="deg_uncond_fig")
    m = st.columns(len(samples))
    for col, (start, imgs) in zip(m, samples.items(), strict=True):
        col.metric(f"Spread · {start} start", f"{mean_pairwise_distance(imgs):.4f}",
                   help="mean RMSE between pairs of samples; 0 means every sample is the same image")
    st.markdown("**Why the black start collapses.** " + why.explanation(int(n_field), model_kind))
    st.plotly_chart(image_panels_figure({**why.starts, **why.first_guess}, title="Where each walk back starts (top) "
                                        "and the model's first guess R(x_T, T) (bottom)", nrow=4, rows=2)
                    .update_layout(height=520), key="deg_why_fig")
else:
    st.caption("Press **Generate** to sample from both starts with the same seed.")
