"""Edit: control a noise model without training it — SDEdit of a drawn or real digit, DDIM inversion round trips,
and interpolation between noises or inverted digits (lerp against slerp)."""

import streamlit as st
import torch

from diffusion_core.editing.inpainting import compare
from diffusion_core.editing.inversion import round_trips
from diffusion_core.editing.sdedit import MAX_STRENGTHS, classify, sdedit_strip, signal_left, strength_step
from diffusion_core.figures import round_trip_figure
from diffusion_core.models.guidance import NO_LABEL, is_conditional
from diffusion_core.process import SamplerChoice
from pages.lab_ui import model_picker, number_field, require, run_queued, setup_page, user_errors
from pages.lab_ui.data import load_test_digits, shipped_classifier
from pages.lab_ui.edit_tabs import guidance_tab, interpolation_tab
from pages.lab_ui.edit_ui import DISC, cold_mask_model, digit_source, mask_source, strip
from pages.lab_ui.url_state import linked_tabs, url_state

setup_page("Edit", (
    "A trained noise model can edit as well as generate. **SDEdit** noises an image part of the way and lets the "
    "model denoise it: what survives the noise is kept, the rest is invented. **Inversion** runs DDIM backwards, "
    "from a digit to the noise z_T that DDIM would turn into it. **Interpolation** walks between two noises."
))
url_state("edit", ["ed_tab", "ed_strength", "ed_digit", "ed_seed", "ed_sd_source", "ed_sd_index", "ed_paint_*",
                    "ed_ip_*", "ed_rt_*", "ed_g_*"])

# inversion, interpolation, inpainting and classifier guidance run the model without a label
ckpt = model_picker(key="ed_model", label="Noise model", offers="noise_levels", unconditional=True)
if ckpt is None:
    st.stop()
DECODE_STEPS = min(50, ckpt.process.T)  # DDIM steps of interpolation's inversion and decoding
classifier, why = shipped_classifier()
label = (lambda images: [f"'{d}' ({p:.0%})" for d, p in classify(classifier, images)]) if classifier else (
    lambda images: ["" for _ in images])
tab_sdedit, tab_paint, tab_round, tab_interp, tab_guide = linked_tabs(
    ["SDEdit", "Inpainting", "Inversion and round trips", "Interpolation", "Guidance"], "ed_tab")

with tab_sdedit:
    x = digit_source("ed_sd")
    c1, c2, c3 = st.columns(3)
    strength = c1.slider("Strength s (t = s·T)", 0.0, 1.0, 0.5, 0.05, key="ed_strength")
    meter = signal_left(ckpt.process, strength_step(ckpt.process, strength))
    c2.metric(f"Signal left {ckpt.process.signal_symbol}", f"{meter['signal']:.3f}", help=f"t = {meter['t']}")
    c3.metric("SNR ᾱ_t/(1−ᾱ_t)", "∞" if meter["snr"] == float("inf") else f"{meter['snr']:.3g}")
    d1, d2 = st.columns(2)
    digit = NO_LABEL
    KEEP = "keep"  # condition on the digit the classifier reads in the input
    if is_conditional(ckpt.model):
        digit = d1.selectbox("Ask for digit", [KEEP, NO_LABEL, *range(10)], key="ed_digit",
                             format_func=lambda d: {KEEP: "the one drawn (as the classifier reads it)",
                                                    NO_LABEL: "none (unconditional)"}.get(d, str(d)),
                             help="class-conditional model: sketch a 3, ask for an 8. This model's unconditional "
                                  "mode is its weakest: asked for nothing it often drifts to another digit even "
                                  "at low strength")
    seed = number_field("Seed", 0, 2**31 - 1, 0, "ed_seed", container=d2)
    if st.button("Run SDEdit", type="primary", key="ed_run", disabled=x is None):
        with user_errors("Could not edit"):
            require([seed])
            strengths = sorted({round(strength, 2), 0.2, 0.4, 0.6, 0.8, 1.0})[:MAX_STRENGTHS]
            if digit == KEEP:
                if classifier is None:
                    raise ValueError(f"reading the drawn digit needs the shipped classifier ({why}); ask for a digit")
                digit = classify(classifier, x)[0][0]
            choice = SamplerChoice("dpm++2m-sde", 20, seed=int(seed.value),
                                   digit=None if digit == NO_LABEL and not is_conditional(ckpt.model) else digit)
            st.session_state["ed_sd_out"] = (x, run_queued(sdedit_strip, ckpt, x, strengths, choice))
    shown = st.session_state.get("ed_sd_out")
    if shown is not None:
        x0, results = shown
        edited = torch.cat([r.edited for r in results])
        strip(torch.cat([x0, *[r.noised.clamp(-1.5, 1.5) / 3 for r in results]]),
              ["input"] + [f"z_t · s = {r.strength:g}" for r in results])
        strip(torch.cat([x0, edited]), ["input " + label(x0)[0]] + [
            f"s = {r.strength:g} · {lab}" for r, lab in zip(results, label(edited), strict=True)])
        st.caption("Top: the noised z_t each edit starts from (√ᾱ_t of the image is left in it; shown at a third of "
                   "its range, so the noise fits). Bottom: the "
                   "edits, labelled by the classifier. Low s keeps the strokes; high s keeps only the rough layout, "
                   "and s = 1 is plain generation.")

with tab_paint:
    st.caption("Fill in the masked pixels three ways: **replacement** (after every reverse step the known pixels are "
               "put back, noised to the current t), **RePaint** (the same, but jumping back up the schedule again "
               "and again so the filled part can agree with the rest) and a **cold-diffusion mask model** (a "
               "restorer trained on its own growing disc, when one is trained).")
    data = load_test_digits("mnist")
    p1, p2, p3 = st.columns(3)
    index = number_field("Test digit index", 0, len(data) - 1, 0, "ed_ip_index", container=p1)
    seeds = number_field("Seeds", 1, 16, 3, "ed_paint_seeds", container=p2)
    steps = number_field("Steps", 2, min(250, ckpt.process.T), min(40, ckpt.process.T), "ed_paint_steps",
                         container=p3)
    cold = cold_mask_model("ed_paint")
    with user_errors("Cannot read the digit"):
        require([index])
        x = data.images[int(index.value)].unsqueeze(0)
        mask, cold_t = mask_source(x, "ed_paint", cold)
        # unknown pixels mid-grey (0 in data space): black would hide them on the digit's black background
        strip(torch.cat([x, x * mask]), ["input", "known pixels (unknown ones grey)"])
    if cold is not None and cold_t is None:
        st.caption(f"The cold mask model fills only its own disc: choose the mask “{DISC}” to compare all three.")
    if st.button("Inpaint", type="primary", key="ed_paint_run"):
        with user_errors("Could not inpaint"):
            require([index, seeds, steps])
            st.session_state["ed_paint_out"] = run_queued(
                compare, ckpt, x, mask, int(seeds.value), int(steps.value), classifier,
                cold if cold_t is not None else None, cold_t,
                progress="Inpainting (RePaint goes back and forth: a few hundred network calls): method")
    scores = st.session_state.get("ed_paint_out")
    if scores is not None:
        st.dataframe([{"method": r.method, "RMSE on the filled pixels": round(r.rmse, 4), "± SE": round(r.rmse_se, 4),
                       "SSIM": round(r.ssim, 3), "classifier": ", ".join(str(d) for d, _ in r.labels)}
                      for r in scores], key="ed_paint_table")
        for r in scores:
            strip(r.images, [f"{r.method} · seed {i}" + (f" · '{d}'" if r.labels else "")
                             for i, (d, _) in enumerate(r.labels or [(None, 0)] * len(r.images))])

with tab_round:
    data = load_test_digits("mnist")
    r1, r2 = st.columns([1, 2])
    index = number_field("Test digit index", 0, len(data) - 1, 0, "ed_rt_index", container=r1)
    offered = [n for n in (5, 10, 20, 50, 100, 200) if n <= ckpt.process.T]  # at most T steps each way
    counts = r2.multiselect("Steps each way", offered, default=[n for n in (10, 20, 50, 100) if n in offered],
                            key="ed_rt_steps")
    if st.button("Encode and decode", key="ed_rt_run"):
        with user_errors("Could not run the round trips"):
            require([index])
            if not counts:
                raise ValueError("choose at least one number of steps")
            x = data.images[int(index.value)].unsqueeze(0)
            st.session_state["ed_rt_out"] = (x, run_queued(round_trips, ckpt, x, sorted(counts),
                                                           progress="Inverting and decoding: step count"))
    shown = st.session_state.get("ed_rt_out")
    if shown is not None:
        x, rt = shown
        st.plotly_chart(round_trip_figure(rt.steps, rt.rmse), key="ed_rt_fig")
        strip(torch.cat([x, *rt.reconstructions.values()]), ["input"] + [
            f"{s} steps · RMSE {e:.3f}" for s, e in zip(rt.steps, rt.rmse, strict=True)])
        most = rt.steps[-1]
        strip(rt.z_T[most].clamp(-2, 2) / 4, [f"z_T after {most} steps · std {float(rt.z_T[most].std()):.2f}"])
        st.caption("DDIM with η = 0 follows the probability-flow ODE, so running it backwards finds a z_T that decodes "
                   "to the digit; the error is the ODE solver's and shrinks with more steps. An inverted digit's "
                   "z_T is not typical noise: its spread is below 1.")

with tab_interp:
    interpolation_tab(ckpt, label, DECODE_STEPS)

with tab_guide:
    guidance_tab(ckpt, seed, label)
