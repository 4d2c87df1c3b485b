"""2-D lab: diffusion on points, where everything can be seen — a small MLP denoiser trained in seconds on a
mixture with known parameters, moons, rings or points you draw; its score field at any t beside the exact one;
particles following the probability-flow ODE and the reverse SDE; the final samples against the data."""

import streamlit as st

from diffusion_core.figures import particle_paths_figure, points_histogram_figure
from diffusion_core.views.points import DRAWN, ODE_SAMPLER, SDE_SAMPLER, TRAIN_DEFAULTS, dataset_names
from pages.lab_ui import number_field, require, setup_page, user_errors
from pages.lab_ui.points_ui import (
    draw_points,
    field_views,
    flow_lab,
    mixture_table,
    sample_coverage,
    train_with_progress,
)
from pages.lab_ui.url_state import url_state

setup_page("2-D lab", (
    "The same diffusion as the digits, on points in the plane, where every quantity can be drawn. The network "
    "learns ε̂(z_t, t); the **score** ∇ log p_t(z) = −ε̂/√(1−ᾱ_t) points towards where the noised data is "
    "dense. For a Gaussian mixture the exact score is known in closed form, so you can see what the network got "
    "right and where it never had data to learn from."
))
url_state("2d", ["pts_data", "pts_n", "pts_seed", "pts_steps", "pts_lr", "pts_t", "pts_typed"])

c1, c2, c3 = st.columns([2, 1, 1])
name = c1.selectbox("Data", dataset_names(), key="pts_data")
n = number_field("Points", 2, 20_000, 2000, "pts_n", container=c2, step=500)
seed = number_field("Seed", 0, 2**31 - 1, 0, "pts_seed", container=c3)
drawn = draw_points() if name == DRAWN else None
s1, s2 = st.columns(2)
steps = number_field("Training steps", 1, 20_000, TRAIN_DEFAULTS["steps"], "pts_steps", container=s1, step=250,
                     help="Adam steps on batches of 512 points (about 4 s per 1,000 on 2 idle CPU cores)")
lr = number_field("Learning rate", 1e-5, 1.0, TRAIN_DEFAULTS["lr"], "pts_lr", container=s2, step=1e-3,
                  format="%.1e", help="The starting rate; it falls as a half cosine to 0 at the last step")

if st.button("Train", type="primary", key="pts_train"):
    with user_errors("Could not train"):
        require([n, seed, steps, lr])
        train_with_progress(name, int(n.value), int(seed.value), drawn, int(steps.value), float(lr.value))

view = st.session_state.get("pts_view")
if view is None or view.data_name != name:
    st.info("Choose the data and press **Train**: the network trains here in a few seconds.")
    st.stop()

st.caption(f"Trained on {len(view.data):,} points of {view.data_name}: {len(view.model.losses):,} steps, final "
           f"loss {view.model.losses[-1]:.3f}.")
mixture_table(view)
t = st.slider("t (noise level)", 1, view.model.process.T, 100, key="pts_t", help="1: almost clean; T: pure noise")
with user_errors("Cannot draw the score field"):
    field_views(view, t)

st.subheader("Particles: probability-flow ODE against reverse SDE")
st.caption(f"The same starting points z_T run through the deterministic ODE ({ODE_SAMPLER}, η = 0) and the "
           f"stochastic SDE ({SDE_SAMPLER}). Press play, or drag the slider over t. Four particles, each in its own "
           "colour and the same in both panels, draw their path so far: the ODE's paths are smooth; the SDE's jump "
           "with the noise added at every step (most at large t) and may end in another cluster.")
st.plotly_chart(particle_paths_figure(view.paths.ts, {"ODE": view.paths.ode, "SDE": view.paths.sde}, view.data),
                key="pts_paths_fig")
st.plotly_chart(points_histogram_figure({"data": view.data, "ODE samples": view.samples_ode,
                                         "SDE samples": view.samples_sde}), key="pts_hist_fig")
sample_coverage(view)
flow_lab(view, steps, lr, seed)
