"""The 2-D lab page's parts: the drawing canvas (or typed points), training with a progress bar, the score
field panels. The work is in diffusion_core.views.points."""

from __future__ import annotations

import numpy as np
import streamlit as st

from diffusion_core.figures import (
    density_over_time_figure,
    particle_paths_figure,
    points_histogram_figure,
    score_field_figure,
)
from diffusion_core.views.points import (
    EXTENT,
    PointsView,
    build_flow_lab,
    build_points_view,
    canvas_points,
    field_panels,
    mixture_coverage,
    typed_points,
    velocity_panels,
)

from .common import user_errors
from .inputs import NumberField, require
from .queue_ui import run_queued

CANVAS = 320  # pixels a side


def draw_points() -> np.ndarray:
    """Points placed on the canvas (or typed), in data coordinates; a message if they cannot be read."""
    from streamlit_drawable_canvas import st_canvas

    c1, c2 = st.columns([1, 1])
    with c1:
        mode = st.radio("Draw", ["point", "freedraw"], horizontal=True, key="pts_draw_mode",
                        format_func={"point": "click points", "freedraw": "free-hand strokes"}.get)
        result = st_canvas(drawing_mode=mode, stroke_width=3, stroke_color="#1f77b4", background_color="#ffffff",
                           height=CANVAS, width=CANVAS, point_display_radius=4, key="pts_canvas")
        st.caption(f"The canvas spans [−{EXTENT:g}, {EXTENT:g}] on both axes.")
    typed = c2.text_area("…or type points, one 'x, y' per line", key="pts_typed", height=200,
                         help="Used when the canvas is empty")
    drawn = canvas_points(result.json_data if result is not None else None, CANVAS, CANVAS)
    if len(drawn) == 0 and typed.strip():
        try:
            drawn = typed_points(typed)
        except ValueError as exc:
            c2.error(str(exc))
    c2.caption(f"{len(drawn)} point(s) so far.")
    return drawn


def train_with_progress(name: str, n: int, seed: int, drawn: np.ndarray | None, steps: int, lr: float) -> None:
    """Train on the chosen data through the server's work queue (a class shares the CPU), with a progress bar;
    the PointsView goes to st.session_state["pts_view"]."""
    st.session_state["pts_view"] = run_queued(build_points_view, name, n, seed, drawn, steps, lr,
                                              progress="Training steps")


def field_views(view: PointsView, t: int) -> None:
    """The learned (and exact) score at t, with the error map for a known mixture."""
    panels = field_panels(view, t)
    st.plotly_chart(score_field_figure(panels["grid"], panels["fields"], view.data, t, panels["error"]),
                    key="pts_field_fig")
    if panels["error"] is None:
        st.caption("No exact score for this data (its density has no closed form): choose a Gaussian mixture or "
                   "drawn points to compare against it.")
    else:
        st.caption(f"Mean error over the grid {float(np.mean(panels['error'])):.3f}; it is largest where the noised "
                   "data never goes, so the network never learned there.")


def mixture_table(view: PointsView) -> None:
    """The known parameters of the data's mixture (weights, means, covariances), when it has them."""
    if view.mixture is None or len(view.mixture.weights) > 12:
        return
    m = view.mixture
    with st.expander("The mixture's parameters (what the exact score is computed from)"):
        st.dataframe([{"weight": round(float(w), 3), "mean": [round(float(v), 3) for v in mu],
                       "covariance": [[round(float(v), 3) for v in row] for row in c]}
                      for w, mu, c in zip(m.weights, m.means, m.covs, strict=True)], key="pts_mixture_table")


def sample_coverage(view: PointsView, enough: float = 0.8) -> None:
    """For a known mixture: how many of the ODE's and SDE's samples sit inside a component (against the data),
    with a warning to train longer when they do not yet show the clusters."""
    if view.mixture is None:
        return
    data = mixture_coverage(view.data, view.mixture)
    runs = {"ODE": mixture_coverage(view.samples_ode, view.mixture),
            "SDE": mixture_coverage(view.samples_sde, view.mixture)}
    st.caption("Samples inside a component's 99 % ellipse: " + "; ".join(
        f"{name} {c.share:.0%}, {c.reached} of {c.components} components reached" for name, c in runs.items())
        + f" (the data: {data.share:.0%}).")
    if min(c.share for c in runs.values()) < enough or any(c.reached < c.components for c in runs.values()):
        st.warning("The samples do not yet show the mixture's clusters: the network has not learned the score "
                   "near the data well enough. Train for more steps (4,000–6,000), or from another seed.")


def flow_lab(view: PointsView, steps: NumberField, lr: NumberField, seed: NumberField) -> None:
    """Flow matching beside diffusion on the same points: train (flow, reflow, one step) on request, then the
    particles of all three from the same noises, how straight their paths are, and the one-step samples."""
    st.subheader("Flow matching and reflow: straight paths need fewer steps")
    st.caption("Flow matching learns the velocity along straight lines from each data point to its own noise "
               "(z_t = (1 − t)·x + t·ε). Averaged over the data those lines cross, so the learned paths still bend; "
               "reflow trains again on the flow's own (noise, sample) pairs, whose lines do not cross — and a "
               "straight path is one Euler step, so a one-step generator can be distilled from it.")
    if st.button("Train flow matching, reflow it and distil one step", key="pts_flow"):
        with user_errors("Could not train the flows"):
            require([steps, lr, seed])  # the training boxes above: the same steps and rate for every flow
            lab = run_queued(build_flow_lab, view, int(steps.value), float(lr.value), int(seed.value),
                             progress="Flow, reflow, one step")
            st.session_state["pts_flow_lab"] = (view, lab)
    held = st.session_state.get("pts_flow_lab")
    if held is None or held[0] is not view:
        return
    lab = held[1]
    st.plotly_chart(particle_paths_figure(lab.ts, lab.paths, view.data, title="The same noises through diffusion's "
                                          "ODE, flow matching and the reflowed flow"), key="pts_flow_paths_fig")
    st.caption("How straight the particles' paths are (|end − start| / length, 1 = straight): " + "; ".join(
        f"{name} {ratio:.2f}" for name, ratio in lab.ratio.items()) + ". Rectified flow's S = E∫‖(Z₁ − Z₀) − v‖² dt "
        "(0 = straight): " + "; ".join(f"{name} {s:.3g}" for name, s in lab.S.items()) + ".")
    st.plotly_chart(points_histogram_figure({"data": view.data, "one network call": lab.one_step,
                                             "flow, 40 steps": lab.paths["flow matching"][-1]}),
                    key="pts_flow_hist_fig")
    frames = np.linspace(0, len(lab.flow_times) - 1, 5).round().astype(int)
    for name in ("flow matching", "reflowed flow"):
        st.plotly_chart(density_over_time_figure([lab.flow_times[i] for i in frames],
                                                 [lab.paths[name][i] for i in frames],
                                                 title=f"Density of the {name}'s particles, from noise to data"),
                        key=f"pts_flow_density_{name.split()[0]}")
    t = st.slider("Flow time t", 0.05, 1.0, 0.5, 0.05, key="pts_flow_t", help="1: pure noise; 0: the data")
    with user_errors("Cannot draw the velocity field"):
        panels = velocity_panels(lab, view.mixture, float(t))
        st.plotly_chart(score_field_figure(panels["grid"], panels["fields"], view.data, t, panels["error"],
                                           title=f"Velocity v(z, t) at t = {t:.2f}: what flow matching learned"
                                           + (" and the mixture's exact one" if view.mixture is not None else "")),
                        key="pts_flow_velocity_fig")
        st.caption("Each arrow is the direction a particle at that place and time moves (dz/dt = v, from noise "
                   "towards data as t falls). The exact velocity is the average of the straight lines' "
                   "velocities ε − x over every data point that could have made z_t — E[ε − x | z_t], in closed "
                   "form for a Gaussian mixture." if view.mixture is not None else "Draw or pick a Gaussian "
                   "mixture to see the exact velocity beside the learned one.")
