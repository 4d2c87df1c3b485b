"""Shared look of the figures: colours, image traces, thinning long curves, log-axis ticks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

REAL_COLOUR = "#1f77b4"


GENERATED_COLOUR = "#d62728"


PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf"]


MAX_CURVE_POINTS = 1500


def images01(images: np.ndarray) -> np.ndarray:
    a = np.asarray(images, dtype=np.float32)
    if a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"images must be N×H×W (or N×1×H×W) pixels in [0, 1]; got shape {a.shape}")
    return np.clip(a, 0.0, 1.0)


def image_trace(array01: np.ndarray, name: str = "") -> go.Heatmap:
    return go.Heatmap(z=array01, colorscale="gray", zmin=0.0, zmax=1.0, showscale=False, name=name,
                      hovertemplate="x=%{x} y=%{y} value=%{z:.2f}<extra></extra>")


def style_image_axes(fig: go.Figure) -> go.Figure:
    """Image panels: y down, square pixels, no ticks."""
    for trace in fig.data:
        if isinstance(trace, go.Heatmap):
            xa, ya = trace.xaxis or "x", trace.yaxis or "y"
            fig.layout["yaxis" + ya[1:]].update(autorange="reversed", scaleanchor=xa, showticklabels=False,
                                                showgrid=False, zeroline=False)
            fig.layout["xaxis" + xa[1:]].update(showticklabels=False, showgrid=False, zeroline=False,
                                                constrain="domain")
    fig.update_layout(plot_bgcolor="white")
    return fig


def thin_indices(length: int, max_points: int = MAX_CURVE_POINTS) -> np.ndarray:
    """At most max_points evenly spaced indices of 0..length−1, always including both ends."""
    if length <= max_points:
        return np.arange(length)
    return np.unique(np.linspace(0, length - 1, max_points).round().astype(int))


def thin(x: np.ndarray, y: np.ndarray, max_points: int = MAX_CURVE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    idx = thin_indices(len(x), max_points)
    return x[idx], y[idx]


def series(rows: Sequence[Mapping], key: str, x_key: str = "epoch") -> tuple[list, list]:
    pts = [(r[x_key], r[key]) for r in rows if r.get(key) is not None and r.get(x_key) is not None]
    pts.sort(key=lambda p: p[0])
    return [p[0] for p in pts], [p[1] for p in pts]


def model_colours(names: Sequence[str]) -> dict[str, str]:
    """One colour per model, by its place in `names`: pass the same map to every chart of a page so a
    model keeps its colour from chart to chart."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(dict.fromkeys(names))}


def log_ticks(values: Sequence[float]) -> tuple[list[float], list[str]]:
    """Ticks at 1, 2 and 5 × 10^k from the one at or below the smallest of `values` (positive ones) to the
    one at or above the largest, labelled in plain numbers ("0.005", "0.01", "0.02"): Plotly's own log
    ticks over a short range print bare digits ("2", "5") that read as garbage, worse on a second axis."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x) and x > 0], dtype=np.float64)
    if v.size == 0:
        return [], []
    lo, hi = float(v.min()), float(v.max())
    candidates = [float(f"{m}e{k}") for k in range(int(np.floor(np.log10(lo))) - 1, int(np.ceil(np.log10(hi))) + 2)
                  for m in (1, 2, 5)]
    first = max(t for t in candidates if t <= lo * 1.0001)
    last = min(t for t in candidates if t >= hi / 1.0001)
    ticks = [t for t in candidates if first <= t <= last]
    return ticks, [f"{t:g}" for t in ticks]


def style_log_axis(fig: go.Figure, values: Sequence[float], **where) -> None:
    """A log y-axis labelled by log_ticks and spanning them, so both ends carry a number."""
    ticks, text = log_ticks(values)
    if ticks:
        pad = 0.02 * (np.log10(ticks[-1]) - np.log10(ticks[0]) or 1.0)
        fig.update_yaxes(type="log", tickvals=ticks, ticktext=text,
                         range=[np.log10(ticks[0]) - pad, np.log10(ticks[-1]) + pad], **where)
    else:
        fig.update_yaxes(type="log", **where)
