"""The 2-D lab's views: score fields, particle paths and histograms of points."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from diffusion_core.figures.style import PALETTE


def _arrows(points: np.ndarray, vectors: np.ndarray, length: float) -> tuple[list, list]:
    """x, y of line segments (None-separated) for arrows from each point along its vector, the longest `length`
    long, with a small head."""
    v = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(v, axis=1)
    scale = length / max(float(norms.max()), 1e-12)
    xs, ys = [], []
    for (px, py), (vx, vy) in zip(np.asarray(points), v * scale, strict=True):
        ex, ey = px + vx, py + vy
        head = 0.3 * math.hypot(vx, vy)
        angle = math.atan2(vy, vx)
        xs += [px, ex, None]
        ys += [py, ey, None]
        for side in (2.6, -2.6):  # the two strokes of the head, ±150° from the arrow
            xs += [ex, ex + head * math.cos(angle + side), None]
            ys += [ey, ey + head * math.sin(angle + side), None]
    return xs, ys


def score_field_figure(grid_points: np.ndarray, fields: Mapping[str, np.ndarray], data: np.ndarray, t: int | float,
                       error: np.ndarray | None = None, extent: float = 3.2, title: str | None = None) -> go.Figure:
    """The score ∇ log p_t as arrows on a grid (one panel per field, e.g. learned and exact; arrows scaled to the
    panel's largest), over the data points; with `error`, a last panel colours the grid by it. Any field of arrows
    (a flow's velocity) draws the same way under its own `title`."""
    names = list(fields) + (["error ‖learned − exact‖ / (‖exact‖ + 1)"] if error is not None else [])
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.06)
    step = 2 * extent / (math.isqrt(len(grid_points)) - 1)
    d = np.asarray(data)[:600]
    for c, name in enumerate(fields, start=1):
        fig.add_trace(go.Scatter(x=d[:, 0], y=d[:, 1], mode="markers", marker=dict(size=3, color="#bbbbbb"),
                                 name="data", showlegend=c == 1), row=1, col=c)
        xs, ys = _arrows(grid_points, fields[name], 0.9 * step)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(width=1.2, color=PALETTE[c - 1]), name=name,
                                 hoverinfo="skip"), row=1, col=c)
    if error is not None:
        n = math.isqrt(len(grid_points))
        axis = np.asarray(grid_points)[:n, 0]
        fig.add_trace(go.Heatmap(x=axis, y=axis, z=np.asarray(error).reshape(n, n), colorscale="Reds",
                                 colorbar=dict(title="error"), name="error"), row=1, col=len(names))
    for c in range(1, len(names) + 1):
        fig.update_xaxes(range=[-extent, extent], row=1, col=c)
        fig.update_yaxes(range=[-extent, extent], scaleanchor=f"x{'' if c == 1 else c}", row=1, col=c)
    fig.update_layout(title=title or f"Score ∇ log p_t at t = {t}", height=420,
                      legend=dict(orientation="h", y=-0.08))
    return fig


def density_over_time_figure(ts: Sequence[float], positions: Sequence[np.ndarray], extent: float = 3.2,
                             title: str = "Density of the particles over time") -> go.Figure:
    """One panel per time: the particles' density as filled contours (a 2-D histogram), from noise to data."""
    fig = make_subplots(rows=1, cols=len(ts), subplot_titles=[f"t = {t:.2f}" for t in ts], horizontal_spacing=0.03)
    for c, points in enumerate(positions, start=1):
        p = np.asarray(points)
        fig.add_trace(go.Histogram2dContour(x=p[:, 0], y=p[:, 1], colorscale="Blues", showscale=False, ncontours=12,
                                            xbins=dict(start=-extent, end=extent, size=2 * extent / 30),
                                            ybins=dict(start=-extent, end=extent, size=2 * extent / 30),
                                            name=f"t = {ts[c - 1]:.2f}", hoverinfo="skip"), row=1, col=c)
        fig.update_xaxes(range=[-extent, extent], showticklabels=False, row=1, col=c)
        fig.update_yaxes(range=[-extent, extent], showticklabels=False, scaleanchor=f"x{'' if c == 1 else c}",
                         row=1, col=c)
    fig.update_layout(title=title, height=300, margin=dict(t=70, b=20))
    return fig


def particle_paths_figure(ts: Sequence[int], runs: Mapping[str, np.ndarray], data: np.ndarray, trails: int = 4,
                          extent: float = 3.2,
                          title: str = "Particles from the same z_T: probability-flow ODE against reverse SDE"
                          ) -> go.Figure:
    """Particles moving from z_T to samples, one panel per run ([frames, n, 2] each, same frames), animated with
    a play button and a slider over t; the first `trails` particles draw their path so far, each in its own colour,
    the same in every panel (the runs start from the same z_T), so one particle can be followed."""
    names = list(runs)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.06)
    d = np.asarray(data)[:600]
    colours = qualitative.Dark2
    followed = min(trails, *(r.shape[1] for r in runs.values()))

    def moving(frame: int) -> list[tuple[int, go.Scatter]]:  # (panel, trace): all particles, then the trails
        out = [(c, go.Scatter(x=runs[name][frame, :, 0], y=runs[name][frame, :, 1], mode="markers",
                              marker=dict(size=4, color=PALETTE[c - 1], opacity=0.5), name=name, showlegend=False))
               for c, name in enumerate(names, start=1)]
        for c, name in enumerate(names, start=1):
            for k in range(followed):
                path, colour = runs[name][: frame + 1, k], colours[k % len(colours)]
                out.append((c, go.Scatter(
                    x=path[:, 0], y=path[:, 1], mode="lines+markers", line=dict(width=2, color=colour),
                    marker=dict(size=[3] * (len(path) - 1) + [11], color=colour, line=dict(width=1, color="white")),
                    name=f"particle {k + 1}", showlegend=False,
                    hovertemplate=f"particle {k + 1} · {name}<extra></extra>")))
        return out

    for c in range(1, len(names) + 1):
        fig.add_trace(go.Scatter(x=d[:, 0], y=d[:, 1], mode="markers", marker=dict(size=3, color="#dddddd"),
                                 name="data", showlegend=c == 1), row=1, col=c)
    first = len(fig.data)
    for c, trace in moving(0):
        fig.add_trace(trace, row=1, col=c)
    indices = list(range(first, len(fig.data)))
    fig.frames = [go.Frame(data=[trace for _, trace in moving(i)], traces=indices, name=str(t))
                  for i, t in enumerate(ts)]
    fig.update_layout(
        title=title, height=460,
        updatemenus=[dict(type="buttons", x=0, y=-0.12, xanchor="left", buttons=[
            dict(label="▶ play", method="animate", args=[None, dict(frame=dict(duration=80), fromcurrent=True)]),
            dict(label="❚❚ pause", method="animate", args=[[None], dict(mode="immediate")])])],
        sliders=[dict(x=0.15, y=-0.08, len=0.85, currentvalue=dict(prefix="t = "), steps=[
            dict(label=str(t), method="animate", args=[[str(t)], dict(mode="immediate", frame=dict(duration=0))])
            for t in ts])])
    for c in range(1, len(names) + 1):
        fig.update_xaxes(range=[-extent, extent], row=1, col=c)
        fig.update_yaxes(range=[-extent, extent], scaleanchor=f"x{'' if c == 1 else c}", row=1, col=c)
    return fig


def points_histogram_figure(sets: Mapping[str, np.ndarray], bins: int = 40, extent: float = 3.2) -> go.Figure:
    """2-D histograms of point sets side by side (e.g. the data and the final samples), on the same bins."""
    names = list(sets)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.06)
    edges = dict(start=-extent, end=extent, size=2 * extent / bins)
    for c, name in enumerate(names, start=1):
        p = np.asarray(sets[name])
        fig.add_trace(go.Histogram2d(x=p[:, 0], y=p[:, 1], xbins=edges, ybins=edges, colorscale="Blues",
                                     histnorm="probability density", showscale=c == len(names), name=name),
                      row=1, col=c)
        fig.update_yaxes(scaleanchor=f"x{'' if c == 1 else c}", row=1, col=c)
    fig.update_layout(title="Final samples against the data", height=380)
    return fig
