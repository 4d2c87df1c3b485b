"""The 2-D lab page's parts: the drawing canvas (or typed points), training with a progress bar, the score
field panels. The work is in diffusion_core.views.points."""

from __future__ import annotations

import numpy as np
import streamlit as st

from diffusion_core.figures import score_field_figure
from diffusion_core.views.points import (
    EXTENT,
    PointsView,
    build_points_view,
    canvas_points,
    field_panels,
    mixture_coverage,
    typed_points,
)

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
