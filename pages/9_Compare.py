"""Compare: two reverse runs from identical noise (the same seed), one setting apart — sampler, steps, spacing,
guidance or model — shown side by side step by step, with how far apart their x̂0 are."""

import dataclasses

import numpy as np
import streamlit as st

from diffusion_core.figures import ab_difference_figure
from diffusion_core.services import run_plan
from diffusion_core.views.compare import ab_runs, differing_settings
from pages.lab_ui import class_controls, model_picker, number_field, require, run_queued, setup_page, user_errors
from pages.lab_ui.render import grid_image
from pages.lab_ui.sampler_ui import knob_keys, sampler_controls
from pages.lab_ui.url_state import url_state

setup_page("Compare", (
    "Two reverse runs from **identical noise**: the same seed gives both the same z_T (and, for stochastic "
    "samplers, the same fresh noise per image). Change one setting in B and watch where the runs part."
))
url_state("compare", ["ab_seed", "ab_n", "ab_t"] + [f"ab_{p}_{k}" for p in "AB" for k in (
    "sampler", "steps_*", "spacing_*", "digit", "guidance")] + knob_keys("ab_A") + knob_keys("ab_B"))

s1, s2 = st.columns(2)
seed = number_field("Seed (shared)", 0, 2**31 - 1, 0, "ab_seed", container=s1)
n = number_field("Images", 1, 8, 4, "ab_n", container=s2)
panes = {}
for name, column in zip(("A", "B"), st.columns(2), strict=True):
    with column:
        st.subheader(name)
        ckpt = model_picker(key=f"ab_{name}_model", label=f"Model {name}", allow_upload=False,
                            url_param=f"model_{name.lower()}")
        if ckpt is None:
            st.stop()
        default = run_plan.default_sampler(ckpt)
        if name == "B" and default.steps:  # B opens one setting apart from A: a quarter of A's steps
            default = dataclasses.replace(default, steps=max(1, default.steps // 4))
        controls = sampler_controls(ckpt, f"ab_{name}", default, run_plan.known_bad_samplers(ckpt.config),
                                    st.columns(3), keep_on_switch=True)
        conditioning = class_controls(ckpt, f"ab_{name}")
        panes[name] = (ckpt, controls, conditioning)

(ckpt_a, controls_a, cond_a), (ckpt_b, controls_b, cond_b) = panes["A"], panes["B"]
differ = differing_settings(st.session_state["ab_A_model_choice"], dataclasses.replace(controls_a.choice, **cond_a),
                            st.session_state["ab_B_model_choice"], dataclasses.replace(controls_b.choice, **cond_b))
if not differ:
    st.warning("A and B are the same: change one setting of B to see where the runs part.")
elif len(differ) == 1:
    st.caption(f"One setting apart — {differ[0]}.")
else:
    st.caption(f"{len(differ)} settings apart — " + "; ".join(differ) + ". (Change one at a time to see what each "
               "does.)")

if st.button("Run A and B", type="primary", key="ab_run"):
    with user_errors("Could not run"):
        fields = [seed, n] + [f for _, c, _ in panes.values() if (f := c.steps_field) is not None]
        require(fields)
        choice_a = dataclasses.replace(controls_a.choice, seed=int(seed.value), **cond_a)
        choice_b = dataclasses.replace(controls_b.choice, seed=int(seed.value), **cond_b)
        st.session_state.pop("ab_t", None)  # a new pair of runs has its own timesteps: start at its first
        st.session_state["ab_out"] = (run_queued(ab_runs, ckpt_a, choice_a, ckpt_b, choice_b, int(n.value),
                                                 label="Running A and B…"), choice_a.describe(), choice_b.describe())

shown = st.session_state.get("ab_out")
if shown is not None:
    runs, what_a, what_b = shown
    st.caption(f"A: {what_a} · B: {what_b} · "
               + ("both started from the same z_T." if runs.same_start else "the starts differ (different shapes)."))
    t = st.select_slider("Step through both runs at the same t", options=runs.ts, value=runs.ts[0], key="ab_t",
                         format_func=lambda v: f"t = {v}",
                         help="from the shared start z_T to the samples at t = 0; a run with fewer steps shows its "
                              "frame nearest this t")
    i, j = runs.frames[runs.ts.index(t)]
    c1, c2, c3 = st.columns(3)
    c1.image(grid_image(runs.a.x0[i], nrow=2), caption=f"A · x̂0 at t = {runs.a.ts[i]}")
    c2.image(grid_image(runs.b.x0[j], nrow=2), caption=f"B · x̂0 at t = {runs.b.ts[j]}")
    diff = np.abs(runs.a.x0[i] - runs.b.x0[j])
    c3.image(grid_image(np.clip(diff * 2, 0, 1), nrow=2), caption="|A − B| (×2)")
    st.plotly_chart(ab_difference_figure(runs.ts, runs.difference, t), key="ab_fig")
