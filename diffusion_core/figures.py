"""Plotly figure builders for the report's figures (GUIDE.md §2, 1–10) and the analysis views.

Every builder takes data in (arrays in [0, 1], metrics rows as read from metrics.jsonl, schedules)
and returns a plotly.graph_objects.Figure; nothing here draws to a screen or imports Streamlit.
`write_html` saves one for offline viewing (plotly.js embedded or next to the file, never a CDN).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from diffusion_core.evaluation.analysis import FeatureDensity
from diffusion_core.io.images import make_grid, to_unit_numpy
from diffusion_core.io.runs import is_run_dir, read_run_files
from diffusion_core.process import ColdProcess, GaussianProcess
from diffusion_core.process.schedules import PRESETS, NoiseSchedule, make_schedule, preset_schedule

REAL_COLOUR = "#1f77b4"
GENERATED_COLOUR = "#d62728"
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf"]
MAX_CURVE_POINTS = 1500


def _images01(images: np.ndarray) -> np.ndarray:
    a = np.asarray(images, dtype=np.float32)
    if a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"images must be N×H×W (or N×1×H×W) pixels in [0, 1]; got shape {a.shape}")
    return np.clip(a, 0.0, 1.0)


def _image_trace(array01: np.ndarray, name: str = "") -> go.Heatmap:
    return go.Heatmap(z=array01, colorscale="gray", zmin=0.0, zmax=1.0, showscale=False, name=name,
                      hovertemplate="x=%{x} y=%{y} value=%{z:.2f}<extra></extra>")


def _style_image_axes(fig: go.Figure) -> go.Figure:
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


def _thin(x: np.ndarray, y: np.ndarray, max_points: int = MAX_CURVE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    idx = thin_indices(len(x), max_points)
    return x[idx], y[idx]


# ------------------------------------------------------------------ Figure 1: ᾱ_t for the presets


def report_schedules() -> dict[str, NoiseSchedule]:
    """The report's presets plus model2 cut at T = 1000 (only ~40% of the way to noise)."""
    out = {name: preset_schedule(name) for name in PRESETS}
    m2 = PRESETS["model2"]
    out["model2 at T=1000"] = make_schedule(m2["kind"], m2["beta1"], m2["beta2"], 1000)
    return out


SCHEDULE_QUANTITIES = {  # quantity → (axis title, log scale)
    "alpha_bar": ("ᾱ_t", False),
    "beta": ("β_t (log scale)", True),
    "log_snr": ("log-SNR", False),
}


def _schedule_values(s: NoiseSchedule, quantity: str) -> np.ndarray:
    values = {"alpha_bar": s.alpha_bars, "beta": s.betas, "log_snr": s.log_snr}[quantity]
    y = values.double().numpy()
    return np.where(np.isfinite(y), y, np.nan)  # log-SNR at t = 0 of the cosine schedule is +∞


def schedule_figure(schedules: Mapping[str, NoiseSchedule], quantity: str = "alpha_bar", normalise_t: bool = False,
                    title: str | None = None) -> go.Figure:
    """ᾱ_t, β_t or log-SNR_t against t (or t/T) for each schedule, one trace per name. The ᾱ_t figure marks each
    schedule that ends short of noise (NoiseSchedule.ends_in_noise) with its ᾱ_T."""
    y_title, log_y = SCHEDULE_QUANTITIES[quantity]
    fig = go.Figure()
    drawn: dict[str, NoiseSchedule] = {}
    values: list[np.ndarray] = []
    for name, s in schedules.items():
        t = np.arange(s.T + 1, dtype=np.float64)
        x, y = _thin(t / s.T if normalise_t else t, _schedule_values(s, quantity))
        values.append(y)
        twin = next((other for other, o in drawn.items()
                     if o.T == s.T and torch.allclose(o.betas.double(), s.betas.double(), rtol=1e-9, atol=0)), None)
        # a schedule equal to one drawn before would hide under it: dashed and wider, named as its twin
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=f"{name} (= {twin})" if twin else name,
                                 line=dict(dash="dash", width=4) if twin else None))
        drawn[name] = s
        if quantity == "alpha_bar" and not s.ends_in_noise:
            end = float(s.alpha_bars[-1])
            fig.add_annotation(x=x[-1], y=end, text=f"{name}: ᾱ_T ≈ {end:.2f}", showarrow=True, arrowhead=2,
                               ax=-60, ay=-30)
    fig.update_layout(title=title or y_title, xaxis_title="t / T" if normalise_t else "t", yaxis_title=y_title,
                      legend_title="schedule")
    if log_y:  # ticks at 1, 2, 5 × 10^k, each labelled in full (Plotly's own read "2, 0.01, 5, 2")
        v = np.concatenate(values) if values else np.zeros(0)
        _style_log_axis(fig, v[np.isfinite(v) & (v > 0)])
    return fig


def alpha_bar_figure(schedules: Mapping[str, NoiseSchedule] | None = None, normalise_t: bool = False) -> go.Figure:
    """Figure 1: ᾱ_t against t (or t/T) for each schedule."""
    schedules = report_schedules() if schedules is None else schedules
    fig = schedule_figure({f"{name} (T={s.T})": s for name, s in schedules.items()}, "alpha_bar", normalise_t,
                          title="ᾱ_t = Π(1 − β_s) for the report's schedules")
    fig.update_layout(yaxis_range=[0, 1.02], annotations=[])
    return fig


def schedule_marker_figure(schedule: NoiseSchedule, t: int, max_points: int = 400) -> go.Figure:
    """ᾱ_t of one schedule with the step t marked (beside a reverse-diffusion frame)."""
    idx = thin_indices(schedule.T + 1, max_points)
    ab = schedule.alpha_bars.numpy()
    fig = go.Figure(go.Scatter(x=idx, y=ab[idx], mode="lines", name="ᾱ_t"))
    fig.add_trace(go.Scatter(x=[t], y=[float(ab[t])], mode="markers", marker=dict(size=12), name="current t"))
    fig.update_layout(height=240, margin=dict(t=30, b=30, l=40, r=10), title="ᾱ_t and the current step",
                      xaxis_title="t", yaxis_title="ᾱ_t", showlegend=False)
    return fig


# -------------------------------------------------------------- Figures 2, 3, 7–8: image panels


def image_panels_figure(panels: Mapping[str, np.ndarray], title: str = "", nrow: int | None = 4,
                        rows: int = 1) -> go.Figure:
    """Several grids side by side (e.g. Figure 2 for several models, Figure 3 at several epochs)."""
    if not panels:
        raise ValueError("panels must hold at least one named set of images")
    names = list(panels)
    cols = -(-len(names) // rows)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names, horizontal_spacing=0.02, vertical_spacing=0.08)
    for i, name in enumerate(names):
        fig.add_trace(_image_trace(make_grid(_images01(panels[name]), nrow=nrow), name),
                      row=i // cols + 1, col=i % cols + 1)
    fig.update_layout(title=title, width=max(420, 300 * cols), height=120 + 300 * rows,
                      margin=dict(l=10, r=10, t=80, b=10))
    return _style_image_axes(fig)


def sample_grids_figure(samples: Mapping[str, np.ndarray], nrow: int = 4) -> go.Figure:
    """Figure 2: a 4×4 sample grid per model."""
    return image_panels_figure(samples, title="Samples per model", nrow=nrow)


def samples_at_epochs_figure(samples: Mapping[int, np.ndarray], title: str = "Samples during training",
                             nrow: int = 4) -> go.Figure:
    """Figure 3: sample grids at chosen epochs (e.g. 10, 50, 100)."""
    return image_panels_figure({f"epoch {e}": samples[e] for e in sorted(samples)}, title=title, nrow=nrow)


# ------------------------------------------------------------------ Figures 4, 5, 9, 10: curves


def _series(rows: Sequence[Mapping], key: str, x_key: str = "epoch") -> tuple[list, list]:
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


def _style_log_axis(fig: go.Figure, values: Sequence[float], **where) -> None:
    """A log y-axis labelled by log_ticks and spanning them, so both ends carry a number."""
    ticks, text = log_ticks(values)
    if ticks:
        pad = 0.02 * (np.log10(ticks[-1]) - np.log10(ticks[0]) or 1.0)
        fig.update_yaxes(type="log", tickvals=ticks, ticktext=text,
                         range=[np.log10(ticks[0]) - pad, np.log10(ticks[-1]) + pad], **where)
    else:
        fig.update_yaxes(type="log", **where)


def curves_figure(runs: Mapping[str, Sequence[Mapping]], key: str, title: str, y_title: str,
                  log_y: bool = False, x_key: str = "epoch", colours: Mapping[str, str] | None = None) -> go.Figure:
    """One line per run of metrics-row `key` against `x_key`; runs without that key are left out.
    `colours` (model_colours) fixes each run's colour, so it matches the page's other charts."""
    colours = model_colours(list(runs)) if colours is None else colours
    fig = go.Figure()
    ys: list[float] = []
    for name, rows in runs.items():
        x, y = _series(rows, key, x_key)
        if x:
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers" if len(x) < 30 else "lines", name=name,
                                     line_color=colours.get(name)))
            ys += y
    fig.update_layout(title=title, xaxis_title=x_key, yaxis_title=y_title, yaxis_type="log" if log_y else "linear",
                      legend_title="run")
    if log_y:
        _style_log_axis(fig, ys)
    return fig


def loss_curves_figure(runs: Mapping[str, Sequence[Mapping]], log_y: bool = True,
                       colours: Mapping[str, str] | None = None) -> go.Figure:
    """Figure 4: training loss per epoch."""
    return curves_figure(runs, "loss", "Training loss", "loss (mean per epoch)", log_y=log_y, colours=colours)


def fid_curves_figure(runs: Mapping[str, Sequence[Mapping]], key: str = "fid", floor: float | None = None,
                      ceiling: float | None = None, colours: Mapping[str, str] | None = None) -> go.Figure:
    """Figure 5: classifier-FID during training, with the real-data floor (and a ceiling) as lines."""
    fig = curves_figure(runs, key, "Classifier-FID during training", "classifier-FID", colours=colours)
    for value, label, dash in ((floor, "real-data floor", "dash"), (ceiling, "noise ceiling", "dot")):
        if value is not None:
            fig.add_hline(y=value, line_dash=dash, line_color="gray", annotation_text=f"{label} {value:.3g}")
    return fig


def fid_wall_clock_figure(runs: Mapping[str, Sequence[Mapping]], floor: float | None = None,
                          target: float | None = None, colours: Mapping[str, str] | None = None) -> go.Figure:
    """Classifier-FID against minutes of training (metrics rows with "fid" and "wall_time_s"), log scale, with
    the real-data floor and a target (e.g. 4× the floor) as lines: quality arriving as the clock runs."""
    minutes = {name: [{**r, "minutes": r["wall_time_s"] / 60} for r in rows if r.get("wall_time_s") is not None]
               for name, rows in runs.items()}
    fig = curves_figure(minutes, "fid", "Classifier-FID against training time", "classifier-FID (log)", log_y=True,
                        x_key="minutes", colours=colours)
    fig.update_xaxes(title_text="training time (minutes of wall-clock)", rangemode="tozero")
    ys = [r["fid"] for rows in minutes.values() for r in rows if r.get("fid") is not None]
    for value, label, dash in ((floor, "real-data floor", "dash"), (target, "target", "dot")):
        if value is not None:
            fig.add_hline(y=value, line_dash=dash, line_color="gray", annotation_text=f"{label} {value:.3g}")
            ys.append(value)
    _style_log_axis(fig, ys)
    return fig


def final_fid_figure(points: Mapping[str, Mapping], colours: Mapping[str, str] | None = None) -> go.Figure:
    """The measured classifier-FID of finished models (one bar each, log scale) against the real-data
    floor at the same number of samples (a black tick): for models whose training recorded no FID curve.
    `points`: name → {"fid", "fid_floor" (optional), "n" (optional)}."""
    names = [n for n, p in points.items() if p.get("fid") is not None]
    if not names:
        raise ValueError("points must hold at least one model with a measured fid")
    colours = model_colours(names) if colours is None else colours
    fids = [float(points[n]["fid"]) for n in names]
    at = list(range(len(names)))  # bar positions (numbers, labelled with the names below)
    fig = go.Figure(go.Bar(
        x=at, y=fids, name="measured FID", marker_color=[colours.get(n, PALETTE[0]) for n in names],
        text=[f"{f:.3g}" for f in fids], textposition="outside",
        customdata=[[n, points[n].get("n")] for n in names],
        hovertemplate="%{customdata[0]}: FID %{y:.4g} on %{customdata[1]} samples<extra></extra>"))
    floors = [(i, float(points[n]["fid_floor"])) for i, n in enumerate(names) if points[n].get("fid_floor") is not None]
    if floors:
        fig.add_trace(go.Scatter(
            x=[i for i, _ in floors], y=[f for _, f in floors], mode="markers", name="real-data floor",
            marker=dict(symbol="line-ew-open", size=40, color="black", line=dict(width=3, color="black")),
            hovertemplate="floor %{y:.3g} (held-out real digits, same number of samples)<extra></extra>"))
    fig.update_xaxes(tickvals=at, ticktext=names, title_text="model")
    fig.update_layout(title="Measured classifier-FID of the finished models (lower is better)",
                      yaxis_title="classifier-FID (log)", legend_title="", showlegend=True, margin=dict(t=60))
    _style_log_axis(fig, fids + [f for _, f in floors] + [max(fids) * 1.6])  # room above for the labels
    return fig


def noise_vs_blur_figure(noise_runs: Mapping[str, Sequence[Mapping]], blur_runs: Mapping[str, Sequence[Mapping]],
                         key: str = "loss", colours: Mapping[str, str] | None = None) -> go.Figure:
    """Figures 9–10: loss (or FID) of noise models (top panel) and blur models (bottom panel, dashed)
    over the same epochs. The two losses measure different things (ε error vs x error), so each gets
    its own panel and scale rather than a second axis over the first."""
    colours = model_colours([*noise_runs, *blur_runs]) if colours is None else colours
    what = "loss" if key == "loss" else "classifier-FID" if key == "fid" else key
    titles = (f"noise models: {what}" + (" ‖ε − g‖²" if key == "loss" else ""),
              f"blur models: {what}" + (" ‖x − R‖²" if key == "loss" else ""))
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.14, subplot_titles=titles)
    for row, (runs, dash) in enumerate(((noise_runs, "solid"), (blur_runs, "dash")), start=1):
        ys: list[float] = []
        for name, rows in runs.items():
            x, y = _series(rows, key)
            if x:
                fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=name, line_dash=dash,
                                         line_color=colours.get(name)), row=row, col=1)
                ys += y
        if key == "loss":
            _style_log_axis(fig, ys, row=row, col=1)
        fig.update_yaxes(title_text=what, row=row, col=1)
    fig.update_xaxes(title_text="epoch", row=2, col=1)
    fig.update_layout(title=f"{what}: noise models vs blur model", legend_title="run", height=620,
                      margin=dict(t=90))
    return fig


# ------------------------------------------------------------------ Figure 6: blur σ schedule


def blur_schedule_figure(sigmas: np.ndarray, strip: Mapping[int, np.ndarray], label: str = "blur σ_t",
                         strip_title: str | None = None,
                         title: str = "Gaussian-blur degradation schedule") -> go.Figure:
    """Figure 6: σ_t against t (sigmas[t], t = 0..T) above a strip of one image blurred at chosen t.
    Any degradation: `label` names what its schedule drives, `strip_title` heads the strip (default
    "x blurred at t = …")."""
    s = np.asarray(sigmas, dtype=np.float64).ravel()
    if s.size < 2:
        raise ValueError("sigmas must hold σ_t for t = 0..T (at least two values)")
    ts = sorted(strip)
    strip_title = strip_title or "x blurred at t = " + ", ".join(map(str, ts))
    fig = make_subplots(rows=2, cols=1, row_heights=[0.6, 0.4], vertical_spacing=0.2,
                        subplot_titles=[label, strip_title])
    fig.add_trace(go.Scatter(x=np.arange(s.size), y=s, mode="lines", name=label), row=1, col=1)
    if ts:
        imgs = [_images01(strip[t])[0] for t in ts]
        h, w = imgs[0].shape
        gap = np.full((h, 2), 1.0, dtype=np.float32)
        row = np.concatenate([np.concatenate([im, gap], axis=1) for im in imgs], axis=1)[:, :-2]
        fig.add_trace(_image_trace(row, "strip"), row=2, col=1)
        _style_image_axes(fig)
        fig.update_xaxes(showticklabels=True, tickvals=[i * (w + 2) + w / 2 for i in range(len(ts))],
                         ticktext=[f"t={t}" for t in ts], row=2, col=1)
    fig.update_xaxes(title_text="t", title_standoff=4, row=1, col=1)
    fig.update_yaxes(title_text=label, row=1, col=1)
    fig.update_layout(title=title, height=600, showlegend=False)
    return fig


# -------------------------------------------------------------------------- analysis views


def density_figure(densities: Sequence[FeatureDensity], cols: int = 5, title: str = "Feature densities",
                   labels: tuple[str, str] = ("real", "generated"), x_title: str = "feature value",
                   y_title: str = "density") -> go.Figure:
    """The report's density plot: one panel per feature (titled with its name), real (blue) vs generated (red);
    the lowest panel of each column is titled `x_title` below, the first of each row `y_title`."""
    if not densities:
        raise ValueError("densities must hold at least one feature")
    cols = min(cols, len(densities))
    rows = -(-len(densities) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[d.name for d in densities],
                        horizontal_spacing=0.06, vertical_spacing=0.4 / rows if rows > 1 else 0.1)
    for i, d in enumerate(densities):
        r, c = i // cols + 1, i % cols + 1
        fig.add_trace(go.Scatter(x=d.grid, y=d.real, mode="lines", name=labels[0], legendgroup=labels[0],
                                 line_color=REAL_COLOUR, showlegend=i == 0), row=r, col=c)
        if d.generated is not None:
            fig.add_trace(go.Scatter(x=d.grid, y=d.generated, mode="lines", name=labels[1], legendgroup=labels[1],
                                     line_color=GENERATED_COLOUR, showlegend=i == 0), row=r, col=c)
        if c == 1:
            fig.update_yaxes(title_text=y_title, row=r, col=c)
        if i + cols >= len(densities):  # nothing below this panel
            fig.update_xaxes(title_text=x_title, row=r, col=c)
    fig.update_layout(title=title, height=max(340, 250 * rows), width=max(500, 240 * cols), font_size=13,
                      legend=dict(orientation="h", yanchor="bottom", y=1.0 + 0.12 / rows, xanchor="right", x=1))
    fig.update_annotations(font=dict(size=14, color="#262730"))  # the panels' feature names
    fig.update_xaxes(tickfont_size=12, title_font_size=13, title_standoff=2, automargin=True)
    fig.update_yaxes(tickfont_size=12, title_font_size=13, title_standoff=8, automargin=True)
    return fig


METHOD_NAMES = {"kmeans": "k-means", "gmm": "Gaussian mixture"}


def cluster_space_description(result: Mapping) -> str:
    """What the PCA view projects: 'all 784 pixels', 'the first 50 PCA components of the pixels', …"""
    space, n = result.get("space"), result.get("n_features")
    if space == "pixels":
        return "all 784 pixels"
    if space == "pca":
        return f"the first {n} PCA components of the pixels" if n else "PCA components of the pixels"
    if space == "classifier":
        return f"{n} classifier features" if n else "classifier features"
    return f"{space} features"


def pca_cluster_figure(result: Mapping, color_by: str = "set", title: str | None = None) -> go.Figure:
    """PCA view of real (blue circles) and generated (red crosses) points together ("set"), or coloured by class
    label (real: true or predicted; generated: predicted; "label") or by cluster ("kmeans" / "gmm"), the symbol
    still telling real from generated; then the legend has one entry per class or cluster plus the two symbols.
    `result` is analysis.real_vs_generated's (or explore.cluster_view's) dict; 2 components → 2-D, 3 → 3-D."""
    proj = result["projection"]
    if color_by != "set" and color_by != "label" and color_by not in result["clusters"]:
        raise ValueError(f"color_by must be 'set', 'label' or one of {', '.join(result['clusters'])}; "
                         f"got {color_by!r}")
    n_real = len(proj.real)
    three = proj.real.shape[1] >= 3
    what = None  # "set": real vs generated, the two colours the pages' text promises
    if color_by == "label":
        real_c, gen_c = result["real_labels"], result["generated_labels"]
        what = "predicted class" if result.get("labels_are_predicted") else "class"
    elif color_by != "set":
        labels = result["clusters"][color_by].labels
        real_c, gen_c = labels[:n_real], labels[n_real:]
        what = f"{METHOD_NAMES.get(color_by, color_by)} cluster"

    fig = go.Figure()

    def add(name: str, coords: np.ndarray | None, marker: dict, **kw) -> None:
        """A trace of points (coords: M×2 or M×3), or with coords None a legend entry that draws nothing."""
        xyz = [[None]] * (3 if three else 2) if coords is None else list(coords.T[:3 if three else 2])
        axes = dict(zip("xyz", xyz, strict=False))
        fig.add_trace((go.Scatter3d if three else go.Scatter)(**axes, mode="markers", name=name, marker=marker, **kw))

    size = 3 if three else 6
    sets = (("real", proj.real, "circle", 0.6), ("generated", proj.generated, "x", 0.9))
    if what is None:
        for (group, coords, symbol, opacity), colour in zip(sets, (REAL_COLOUR, GENERATED_COLOUR), strict=True):
            if coords is not None:
                add(group, coords, dict(color=colour, symbol=symbol, size=size, opacity=opacity))
    else:
        drawn = set()
        for (group, coords, symbol, opacity), colours in zip(sets, (real_c, gen_c), strict=True):
            if coords is None or colours is None:
                continue
            for value in np.unique(colours):
                m = np.asarray(colours) == value
                add(f"{group} {what} {value}", coords[m], dict(color=PALETTE[int(value) % len(PALETTE)],
                                                              symbol=symbol, size=size, opacity=opacity),
                    legendgroup=str(value), showlegend=False)
                drawn.add(int(value))
        for value in sorted(drawn):  # the legend: one entry per colour, then what the two symbols mean
            add(f"{what} {value}", None, dict(color=PALETTE[value % len(PALETTE)], symbol="square", size=10),
                legendgroup=str(value))
        for group, symbol, shape in (("real", "circle", "circles"), ("generated", "x", "crosses")):
            add(f"{group}: {shape}", None, dict(color="#555555", symbol=symbol, size=8))
    method = next(iter(result["clusters"]), None)
    if method is not None and not color_by.startswith(tuple(result["clusters"])):
        # not coloured by cluster: the clusters still show, as their centres numbered
        labels = np.asarray(result["clusters"][method].labels)
        points = np.concatenate([c for c in (proj.real, proj.generated) if c is not None])[:, :3 if three else 2]
        ids = np.unique(labels)
        centres = np.stack([points[labels == i].mean(0) for i in ids])
        kw = dict(mode="markers+text", text=[str(int(i)) for i in ids], textposition="middle center",
                  textfont=dict(color="white", size=11), name=f"{METHOD_NAMES.get(method, method)} cluster centres",
                  marker=dict(color="#222222", symbol="diamond" if three else "hexagon", size=22 if not three else 9,
                              opacity=0.85, line=dict(color="white", width=1)))
        xyz = dict(zip("xyz", centres.T, strict=False))
        fig.add_trace(go.Scatter3d(**xyz, **kw) if three else go.Scatter(**xyz, **kw))
    evr = proj.explained_variance_ratio
    dims = len(evr)
    axis = [f"PC{i + 1} ({100 * evr[i]:.1f}% of variance)" for i in range(dims)]
    stats = [f"{METHOD_NAMES.get(m, m)}: silhouette {c.silhouette:.2f}"
             + (f", ARI with real labels {c.ari_real:.2f}" if c.ari_real is not None else "")
             + (f", with predicted classes of generated {c.ari_generated:.2f}" if c.ari_generated is not None else "")
             for m, c in result["clusters"].items() if c.silhouette is not None]
    shown_as = ("Real (blue) vs generated (red) digits" if what is None
                else f"Digits coloured by {what} (circles real, crosses generated)")
    if title is None:
        lines = [f"{shown_as}: {dims}-D PCA of {cluster_space_description(result)}"]
        if stats:
            lines += [f"<sup>Clusters fitted in this {dims}-D view. {stats[0]}</sup>"] + [f"<sup>{x}</sup>"
                                                                                       for x in stats[1:]]
        title = "<br>".join(lines)
    fig.update_layout(title=title, legend_title=None if what is None else what, font_size=13,
                      margin=dict(t=60 + 22 * title.count("<br>")))
    if three:
        fig.update_layout(scene=dict(xaxis_title=axis[0], yaxis_title=axis[1], zaxis_title=axis[2]), height=700)
    else:
        fig.update_layout(xaxis_title=axis[0], yaxis_title=axis[1], height=600)
    return fig


# -------------------------------------------------------------------------------- output


def write_html(fig: go.Figure, path: str | Path, self_contained: bool = True) -> Path:
    """Save a figure as HTML that works offline: plotly.js embedded (self_contained) or written once
    as plotly.min.js next to the file ("directory" mode)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(str(path), include_plotlyjs=True if self_contained else "directory", full_html=True)
    return path


# ------------------------------------------------------------------------ the report's set


def read_run(run_dir: str | Path) -> dict:
    """A training run directory as figure data: metrics rows, diffusion type, epoch → preview images."""
    if not is_run_dir(run_dir):
        raise ValueError(f"{run_dir} is not a training run directory (no metrics.jsonl or config.json)")
    run = read_run_files(run_dir)
    return {"name": run.run_dir.name, "rows": run.metrics, "previews": run.previews,
            "diffusion_type": run.diffusion_type or GaussianProcess.type}


def default_epochs(available: Sequence[int], wanted: Sequence[int] = (10, 50, 100), most: int = 4) -> list[int]:
    """The report's epochs 10, 50, 100 where present; otherwise up to `most` evenly spaced, first and last kept."""
    avail = sorted(available)
    chosen = [e for e in wanted if e in avail]
    if chosen or not avail:
        return chosen
    if len(avail) <= most:
        return avail
    return sorted({avail[round(i * (len(avail) - 1) / (most - 1))] for i in range(most)})


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "x"


def report_figures(
    runs: Sequence[str | Path] = (),
    samples: Mapping[str, np.ndarray] | None = None,
    classifier: object | None = None,
    real_images: np.ndarray | None = None,
    real_labels: np.ndarray | None = None,
    fid_floor: float | None = None,
    seed: int = 0,
) -> dict[str, go.Figure]:
    """The report's figures that the given data allows, by file stem: 01 ᾱ_t (always); 02 sample grids
    (samples); 03 samples at epochs, 04 loss, 05 FID (runs); 06 blur schedule (a real image); 09–10
    noise vs blur (noise and cold runs); density and PCA-cluster views per sample set (with a
    classifier and real images)."""
    from diffusion_core.evaluation.analysis import density_data, feature_sets, real_vs_generated

    samples = dict(samples or {})
    figs: dict[str, go.Figure] = {"01_alpha_bar": alpha_bar_figure()}
    if samples:
        figs["02_sample_grids"] = sample_grids_figure({k: _images01(v)[:16] for k, v in samples.items()})
    data = [read_run(r) for r in runs]
    for run in data:
        if run["previews"]:
            epochs = default_epochs(list(run["previews"]))
            imgs = {e: np.load(run["previews"][e], allow_pickle=False) for e in epochs}
            figs[f"03_samples_at_epochs_{_slug(run['name'])}"] = samples_at_epochs_figure(
                imgs, title=f"{run['name']}: samples during training")
    by_name = {run["name"]: run["rows"] for run in data}
    if any(r.get("loss") is not None for rows in by_name.values() for r in rows):
        figs["04_loss_curves"] = loss_curves_figure(by_name)
    has_fid = any(r.get("fid") is not None for rows in by_name.values() for r in rows)
    if has_fid:
        figs["05_fid_curves"] = fid_curves_figure(by_name, floor=fid_floor)
    if real_images is not None:
        from diffusion_core.process.degradations import make_degradation, preview_strip

        blur = make_degradation("blur")  # the report's σ_t = 0.02 + 0.01·t, T = 500
        ts, frames = preview_strip(blur, torch.as_tensor(_images01(real_images)[:1] - 0.5))
        strip = {t: to_unit_numpy(frames[i:i + 1]) for i, t in enumerate(ts)}
        figs["06_blur_schedule"] = blur_schedule_figure(blur.sigmas.numpy(), strip)
    noise = {r["name"]: r["rows"] for r in data if r["diffusion_type"] == GaussianProcess.type}
    cold = {r["name"]: r["rows"] for r in data if r["diffusion_type"] == ColdProcess.type}
    if noise and cold:
        figs["09_loss_noise_vs_blur"] = noise_vs_blur_figure(noise, cold, key="loss")
        if has_fid:
            figs["10_fid_noise_vs_blur"] = noise_vs_blur_figure(noise, cold, key="fid")
    if classifier is not None and real_images is not None:
        for name, imgs in samples.items():
            slug = _slug(name)
            for kind, what in (("pixels", "the first 20 pixels (the report's features)"),
                               ("classifier", "the 20 most variable classifier features")):
                fs = feature_sets(kind, real_images, imgs, n=20, classifier=classifier, seed=seed)
                figs[f"density_{kind}_{slug}"] = density_figure(
                    density_data(fs), title=f"{name}: densities of {what}, real vs generated")
            for dims in (2, 3):
                res = real_vs_generated(real_images, imgs, classifier, real_labels, space="pca", n_components=dims,
                                        seed=seed)
                figs[f"pca{dims}d_{slug}"] = pca_cluster_figure(res)
    return figs


# ------------------------------------------------------------------ samplers: where the steps go, what they cost


def steps_on_log_snr_figure(schedule: NoiseSchedule, steps: Mapping[str, Sequence[int]]) -> go.Figure:
    """The schedule's log-SNR_t against t, with each labelled list of timesteps drawn as points on it."""
    values = _schedule_values(schedule, "log_snr")
    idx = thin_indices(schedule.T + 1, 400)
    fig = go.Figure(go.Scatter(x=idx, y=values[idx], mode="lines", name="log-SNR_t", line=dict(color="lightgrey")))
    for label, ts in steps.items():
        fig.add_trace(go.Scatter(x=list(ts), y=[values[t] for t in ts], mode="markers", name=label,
                                 marker=dict(size=9)))
    fig.update_layout(title="Where the steps go on the noise schedule", xaxis_title="t", yaxis_title="log-SNR",
                      height=340, margin=dict(t=40, b=40), legend_title="steps")
    return fig


def quality_vs_nfe_figure(rows: Sequence[Mapping], metric: str = "fid", title: str | None = None) -> go.Figure:
    """Quality (FID or KID, with ±1 standard error) against network evaluations, one line per sampler × spacing:
    colour by sampler, dash by spacing. Rows as benchmarks/samplers_nfe.py writes them."""
    dashes = ["solid", "dot", "dash", "dashdot", "longdash"]
    samplers = list(dict.fromkeys(r["sampler"] for r in rows))
    spacings = list(dict.fromkeys(r["spacing"] for r in rows))
    colours = model_colours(samplers)
    fig = go.Figure()
    for sampler in samplers:
        for spacing in spacings:
            pts = sorted((r for r in rows if r["sampler"] == sampler and r["spacing"] == spacing),
                         key=lambda r: r["nfe"])
            if not pts:
                continue
            fig.add_trace(go.Scatter(
                x=[r["nfe"] for r in pts], y=[r[metric] for r in pts], mode="lines+markers",
                name=f"{sampler} · {spacing}", line=dict(color=colours[sampler],
                                                         dash=dashes[spacings.index(spacing) % len(dashes)]),
                error_y=dict(type="data", array=[r.get(f"{metric}_se") or 0 for r in pts], visible=True)))
    fig.update_layout(title=title or f"{metric.upper()} against network evaluations (lower is better)",
                      xaxis_title="network evaluations (NFE)", yaxis_title=metric.upper(), height=460,
                      legend_title="sampler · spacing")
    if metric == "fid":
        fig.update_yaxes(type="log")
    return fig


def spectra_figure(frequencies: np.ndarray, curves: Mapping[str, np.ndarray], title: str,
                   dashed: Sequence[str] = ()) -> go.Figure:
    """Radially averaged power spectra (log power against cycles per pixel, from the lowest non-zero frequency);
    curves named in `dashed` are drawn dashed."""
    fig = go.Figure()
    for name, power in curves.items():
        fig.add_trace(go.Scatter(x=frequencies[1:], y=np.asarray(power)[1:], mode="lines", name=name,
                                 line=dict(dash="dash" if name in dashed else "solid")))
    fig.update_layout(title=title, xaxis_title="spatial frequency (cycles per pixel)", yaxis_title="power",
                      height=380, legend_title="images")
    fig.update_yaxes(type="log")
    return fig


def loss_by_t_strip_figure(rows: Sequence[Mapping], title: str = "Training loss by noise level") -> go.Figure:
    """Epochs × t/T buckets (metrics rows' "loss_by_t"), coloured by log10 of the loss: where across the schedule
    the loss goes down, and where it does not."""
    rows = [r for r in rows if r.get("loss_by_t")]
    if not rows:
        raise ValueError("no rows with a loss by noise level (runs trained before it was recorded have none)")
    buckets = len(rows[0]["loss_by_t"])
    z = [[math.log10(v) if v else None for v in r["loss_by_t"]] for r in rows]
    centres = [(i + 0.5) / buckets for i in range(buckets)]
    fig = go.Figure(go.Heatmap(x=centres, y=[r["epoch"] for r in rows], z=z, colorscale="Viridis",
                               colorbar=dict(title="log10 loss")))
    fig.update_layout(title=title, xaxis_title="t / T (noise level; 1 = pure noise or fully degraded)",
                      yaxis_title="epoch", height=320, margin=dict(t=40, b=40))
    return fig


def heldout_loss_figure(curves: Mapping[str, Mapping], colours: Mapping[str, str] | None = None,
                        log_y: bool = True) -> go.Figure:
    """Held-out loss against t/T per model (evaluation.noise_levels.heldout_loss_by_t), ±1 standard error."""
    colours = colours or model_colours(list(curves))
    fig = go.Figure()
    for name, c in curves.items():
        fig.add_trace(go.Scatter(x=c["t_over_T"], y=c["loss"], mode="lines+markers", name=name,
                                 line=dict(color=colours.get(name)),
                                 error_y=dict(type="data", array=c["se"], visible=True)))
    fig.update_layout(title="Held-out loss by noise level", xaxis_title="t / T", yaxis_title="loss", height=400,
                      legend_title="model")
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def bound_by_t_figure(results: Mapping[str, Mapping], colours: Mapping[str, str] | None = None) -> go.Figure:
    """Where each model's variational bound comes from: its diffusion terms Σ L_{t−1} in buckets of t/T (bits per
    dimension; evaluation.likelihood.variational_bound's "by_t")."""
    colours = colours or model_colours(list(results))
    fig = go.Figure()
    for name, r in results.items():
        buckets = len(r["by_t"])
        fig.add_trace(go.Bar(x=[(i + 0.5) / buckets for i in range(buckets)], y=r["by_t"], name=name,
                             marker_color=colours.get(name)))
    fig.update_layout(title="The bound's diffusion terms by noise level", xaxis_title="t / T",
                      yaxis_title="bits per dimension", barmode="group", height=360, legend_title="model")
    return fig


def weighting_figure(log_snrs: np.ndarray, curves: Mapping[str, np.ndarray],
                     spans: Mapping[str, tuple[float, float]] | None = None) -> go.Figure:
    """The weight λ each (target, weighting) puts on ‖x̂0 − x0‖² against log-SNR (process.targets.weighting_curves),
    log scale; `spans`: the log-SNR range each schedule covers, shaded."""
    fig = go.Figure()
    for name, lam in curves.items():
        fig.add_trace(go.Scatter(x=log_snrs, y=np.asarray(lam), mode="lines", name=name))
    for i, (name, (lo, hi)) in enumerate((spans or {}).items()):
        fig.add_vrect(x0=lo, x1=hi, fillcolor=PALETTE[i % len(PALETTE)], opacity=0.07, line_width=0,
                      annotation_text=name, annotation_position="top left")
    fig.update_layout(title="Loss weight over noise levels (on ‖x̂0 − x0‖²)", height=400,
                      xaxis_title="log-SNR = log(ᾱ_t / (1 − ᾱ_t))  (← noisier · cleaner →)",
                      yaxis_title="weight λ", legend_title="target · weighting")
    fig.update_yaxes(type="log")
    return fig


def neighbours_figure(generated: np.ndarray, train: np.ndarray, neighbours: Mapping[str, tuple[np.ndarray, np.ndarray]],
                      rows: int = 8) -> go.Figure:
    """One row per generated digit (the first `rows`): the digit, then its nearest training digits in each space,
    nearest first. neighbours: space → (indices N×k, distances N×k) into `train`."""
    gen, tr = _images01(generated), _images01(train)
    n = min(rows, len(gen))
    spaces = list(neighbours)
    ks = [neighbours[s][0].shape[1] for s in spaces]
    fig = make_subplots(rows=1, cols=1 + len(spaces), horizontal_spacing=0.03, column_widths=[1, *ks],
                        subplot_titles=["generated"] + [f"nearest training · {s}" for s in spaces])
    fig.add_trace(_image_trace(make_grid(gen[:n], nrow=1), "generated"), row=1, col=1)
    for c, (space, k) in enumerate(zip(spaces, ks, strict=True), start=2):
        fig.add_trace(_image_trace(make_grid(tr[neighbours[space][0][:n].ravel()], nrow=k), space), row=1, col=c)
    fig.update_layout(title="Generated digits and their nearest training digits", height=110 + 40 * n,
                      width=200 + 60 * (1 + sum(ks)), margin=dict(l=10, r=10, t=80, b=10))
    return _style_image_axes(fig)


def novelty_figure(novelty: Mapping[str, Mapping]) -> go.Figure:
    """Histograms of nearest-training distances, generated → train against held-out → train, one panel per space
    (evaluation.memorisation.novelty): overlapping means as novel as real digits; generated piled near 0 means
    copies."""
    spaces = list(novelty)
    fig = make_subplots(rows=1, cols=len(spaces), subplot_titles=[
        f"{s} space · novelty {novelty[s]['score']:.2f}" for s in spaces])
    for c, s in enumerate(spaces, start=1):
        for key, colour, label in (("heldout", REAL_COLOUR, "held-out real → train"),
                                   ("generated", GENERATED_COLOUR, "generated → train")):
            fig.add_trace(go.Histogram(x=np.asarray(novelty[s][key]), name=label, marker_color=colour, opacity=0.6,
                                       nbinsx=30, legendgroup=key, showlegend=c == 1), row=1, col=c)
        fig.update_xaxes(title_text="distance to the nearest training digit", row=1, col=c)
    fig.update_layout(barmode="overlay", height=360, title="How far from the training set", legend_title="digits")
    return fig


# ------------------------------------------------------------------ the 2-D lab

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


def score_field_figure(grid_points: np.ndarray, fields: Mapping[str, np.ndarray], data: np.ndarray, t: int,
                       error: np.ndarray | None = None, extent: float = 3.2) -> go.Figure:
    """The score ∇ log p_t as arrows on a grid (one panel per field, e.g. learned and exact; arrows scaled to the
    panel's largest), over the data points; with `error`, a last panel colours the grid by it."""
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
    fig.update_layout(title=f"Score ∇ log p_t at t = {t}", height=420, legend=dict(orientation="h", y=-0.08))
    return fig


def particle_paths_figure(ts: Sequence[int], runs: Mapping[str, np.ndarray], data: np.ndarray, trails: int = 4,
                          extent: float = 3.2) -> go.Figure:
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
        title="Particles from the same z_T: probability-flow ODE against reverse SDE", height=460,
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


# ------------------------------------------------------------------ editing: round trips and interpolation

def round_trip_figure(steps: Sequence[int], rmse: Sequence[float]) -> go.Figure:
    """Reconstruction error of DDIM inversion then decoding against the number of steps (log–log)."""
    fig = go.Figure(go.Scatter(x=list(steps), y=list(rmse), mode="lines+markers", name="RMSE"))
    fig.update_layout(title="Round trip x → z_T → x̂: reconstruction error against steps", height=360,
                      xaxis_title="DDIM steps each way", yaxis_title="RMSE (data space, pixels in [−0.5, 0.5])")
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    return fig


def path_norms_figure(norms: Mapping[str, Sequence[float]]) -> go.Figure:
    """‖z‖/√d along interpolation paths: typical Gaussian noise sits at 1, a straight line sags in the middle."""
    fig = go.Figure()
    for name, values in norms.items():
        fig.add_trace(go.Scatter(x=np.linspace(0, 1, len(values)), y=list(values), mode="lines+markers", name=name))
    fig.add_hline(y=1.0, line_dash="dot", annotation_text="typical noise: ‖z‖ ≈ √d")
    fig.update_layout(title="‖z‖ / √d along the path", xaxis_title="position along the path",
                      yaxis_title="‖z‖ / √d", height=340, legend_title="interpolation")
    return fig


def ab_difference_figure(ts: Sequence[int], difference: Sequence[float], at: int | None = None) -> go.Figure:
    """Mean |x̂0_A − x̂0_B| along two same-seed runs at the same timesteps t (T on the left, the samples at 0 on the
    right); the y axis starts at 0, where identical runs stay."""
    fig = go.Figure(go.Scatter(x=list(ts), y=list(difference), mode="lines+markers", name="|x̂0 A − x̂0 B|"))
    if at is not None:
        fig.add_vline(x=at, line_dash="dot")
    top = max([float(d) for d in difference] + [0.0])
    fig.update_layout(title="How far apart A and B are, step by step", height=300,
                      xaxis=dict(title="t (the shared start z_T on the left, the samples at t = 0 on the right)",
                                 autorange="reversed"),
                      yaxis=dict(title="mean |x̂0 A − x̂0 B|", range=[0, 1.1 * top if top > 0 else 0.05]))
    return fig


def guidance_curve_figure(curves: Mapping[str, Sequence[Mapping]], w0: Mapping[str, str] | None = None) -> go.Figure:
    """Fidelity against diversity over the guidance scale w (lab.guidance.guidance_curve rows per method): the
    confident share, the variety within a digit (or, for rows without it, the class entropy) and the
    classifier-FID, each against w; `w0` (per method: what its w = 0 point is) is written under the panels."""
    variety = all(r.get("variety") is not None for rows in curves.values() for r in rows)
    middle = ("variety", "variety within a digit (1 = real digits')") if variety else (
        "entropy", "class entropy (nats)")
    panels = [("confident", "confident (fidelity)"), middle, ("fid", "classifier-FID (lower is better)")]
    fig = make_subplots(rows=1, cols=3, subplot_titles=[title for _, title in panels])
    for i, (name, rows) in enumerate(curves.items()):
        w = [r["w"] for r in rows]
        for c, (key, _) in enumerate(panels, start=1):
            fig.add_trace(go.Scatter(x=w, y=[r[key] for r in rows], mode="lines+markers", name=name,
                                     line=dict(color=PALETTE[i % len(PALETTE)]), showlegend=c == 1), row=1, col=c)
    fig.update_xaxes(title_text="guidance scale w")
    notes = [f"{name}: {text}" for name, text in (w0 or {}).items()]
    for k, note in enumerate(notes):
        fig.add_annotation(text=note, xref="paper", yref="paper", x=0, y=-0.32 - 0.09 * k, showarrow=False,
                           xanchor="left", font=dict(size=12))
    fig.update_layout(title="Guidance: fidelity against diversity", height=400 + 30 * len(notes),
                      legend_title="guidance", margin=dict(b=80 + 30 * len(notes)))
    return fig
