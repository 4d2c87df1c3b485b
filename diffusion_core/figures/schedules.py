"""Noise schedules and where steps go: β_t, ᾱ_t, log-SNR (the report's figure 1), blur σ_t, loss weightings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from diffusion_core.figures.style import (
    PALETTE,
    image_trace,
    images01,
    style_image_axes,
    style_log_axis,
    thin,
    thin_indices,
)
from diffusion_core.process.base import DiffusionProcess
from diffusion_core.process.schedules import PRESETS, NoiseSchedule, make_schedule, preset_schedule


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
        x, y = thin(t / s.T if normalise_t else t, _schedule_values(s, quantity))
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
        style_log_axis(fig, v[np.isfinite(v) & (v > 0)])
    return fig


def levels_figure(processes: Mapping[str, DiffusionProcess], points: int = 201) -> go.Figure:
    """Each process's path z_t = α_t·x + σ_t·ε against t/T: α_t (solid) and σ_t (dotted) above, log-SNR = 2·log(α_t/σ_t)
    below — a β schedule's √ᾱ_t, √(1 − ᾱ_t) beside a flow's 1 − t, t: the same Gaussian paths on other clocks."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=("signal α_t (solid) and noise σ_t (dotted)", "log-SNR = 2·log(α_t / σ_t)"))
    for i, (name, process) in enumerate(processes.items()):
        ts = np.unique(np.linspace(0, process.T, points).round().astype(int))
        a, s = np.array([process.levels(int(t)) for t in ts]).T
        colour = PALETTE[i % len(PALETTE)]
        fig.add_trace(go.Scatter(x=ts / process.T, y=a, name=f"{name}: α_t", line=dict(color=colour)), row=1, col=1)
        fig.add_trace(go.Scatter(x=ts / process.T, y=s, name=f"{name}: σ_t", line=dict(color=colour, dash="dot")),
                      row=1, col=1)
        with np.errstate(divide="ignore"):
            snr = 2 * np.log(a / s)
        keep = np.isfinite(snr)
        fig.add_trace(go.Scatter(x=ts[keep] / process.T, y=snr[keep], name=f"{name}: log-SNR",
                                 line=dict(color=colour), showlegend=False), row=2, col=1)
    fig.update_xaxes(title_text="t / T", row=2, col=1)
    fig.update_layout(title="Signal and noise along each path", height=560, legend_title="path")
    return fig


def alpha_bar_figure(schedules: Mapping[str, NoiseSchedule] | None = None, normalise_t: bool = False) -> go.Figure:
    """Figure 1: ᾱ_t against t (or t/T) for each schedule."""
    schedules = report_schedules() if schedules is None else schedules
    fig = schedule_figure({f"{name} (T={s.T})": s for name, s in schedules.items()}, "alpha_bar", normalise_t,
                          title="ᾱ_t = Π(1 − β_s) for the report's schedules")
    fig.update_layout(yaxis_range=[0, 1.02], annotations=[])
    return fig


def curve_marker_figure(name: str, values: Sequence[float], t: int, max_points: int = 400) -> go.Figure:
    """A process's curve over t = 0..T (process.frame_curve(): ᾱ_t, or a flow's α_t = 1 − t) with the step t marked
    (beside a reverse-diffusion frame)."""
    idx = thin_indices(len(values), max_points)
    y = np.asarray(values, dtype=np.float64)
    fig = go.Figure(go.Scatter(x=idx, y=y[idx], mode="lines", name=name))
    fig.add_trace(go.Scatter(x=[t], y=[float(y[t])], mode="markers", marker=dict(size=12), name="current t"))
    fig.update_layout(height=240, margin=dict(t=30, b=30, l=40, r=10), title=f"{name} and the current step",
                      xaxis_title="t", yaxis_title=name, showlegend=False)
    return fig


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
        imgs = [images01(strip[t])[0] for t in ts]
        h, w = imgs[0].shape
        gap = np.full((h, 2), 1.0, dtype=np.float32)
        row = np.concatenate([np.concatenate([im, gap], axis=1) for im in imgs], axis=1)[:, :-2]
        fig.add_trace(image_trace(row, "strip"), row=2, col=1)
        style_image_axes(fig)
        fig.update_xaxes(showticklabels=True, tickvals=[i * (w + 2) + w / 2 for i in range(len(ts))],
                         ticktext=[f"t={t}" for t in ts], row=2, col=1)
    fig.update_xaxes(title_text="t", title_standoff=4, row=1, col=1)
    fig.update_yaxes(title_text=label, row=1, col=1)
    fig.update_layout(title=title, height=600, showlegend=False)
    return fig


def steps_on_log_snr_figure(log_snrs: Sequence[float], steps: Mapping[str, Sequence[int]]) -> go.Figure:
    """A process's log-SNR_t against t (log_snrs: t = 1..T, process.log_snrs()), with each labelled list of
    timesteps drawn as points on it."""
    values = np.concatenate([[np.nan], np.asarray(log_snrs, dtype=np.float64)])  # index t; t = 0: clean
    idx = thin_indices(len(values), 400)[1:]
    fig = go.Figure(go.Scatter(x=idx, y=values[idx], mode="lines", name="log-SNR_t", line=dict(color="lightgrey")))
    for label, ts in steps.items():
        fig.add_trace(go.Scatter(x=list(ts), y=[values[t] for t in ts], mode="markers", name=label,
                                 marker=dict(size=9)))
    fig.update_layout(title="Where the steps go on the noise schedule", xaxis_title="t", yaxis_title="log-SNR",
                      height=340, margin=dict(t=40, b=40), legend_title="steps")
    return fig


def weighting_figure(log_snrs: np.ndarray, curves: Mapping[str, np.ndarray],
                     spans: Mapping[str, tuple[float, float]] | None = None,
                     title: str = "Loss weight over noise levels (on ‖x̂0 − x0‖²)", y_title: str = "weight λ",
                     legend_title: str = "target · weighting", log_y: bool = True) -> go.Figure:
    """The weight λ each (target, weighting) puts on ‖x̂0 − x0‖² against log-SNR (process.targets.weighting_curves),
    log scale; `spans`: the log-SNR range each schedule covers, shaded. Any curves over log-SNR (how often
    training draws each level) draw the same way under their own titles."""
    fig = go.Figure()
    for name, lam in curves.items():
        fig.add_trace(go.Scatter(x=log_snrs, y=np.asarray(lam), mode="lines", name=name))
    for i, (name, (lo, hi)) in enumerate((spans or {}).items()):
        fig.add_vrect(x0=lo, x1=hi, fillcolor=PALETTE[i % len(PALETTE)], opacity=0.07, line_width=0,
                      annotation_text=name, annotation_position="top left")
    fig.update_layout(title=title, height=400, xaxis_title="log-SNR = log(ᾱ_t / (1 − ᾱ_t))  (← noisier · cleaner →)",
                      yaxis_title=y_title, legend_title=legend_title)
    if log_y:
        fig.update_yaxes(type="log")
    return fig
