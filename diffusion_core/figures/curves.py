"""Curves over training and sampling: loss, FID (by epoch and wall clock), quality against NFE, spectra, losses by
noise level, guidance, round trips."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from diffusion_core.figures.style import GENERATED_COLOUR, PALETTE, REAL_COLOUR, model_colours, series, style_log_axis
from diffusion_core.process.base import DiffusionProcess


def curves_figure(runs: Mapping[str, Sequence[Mapping]], key: str, title: str, y_title: str,
                  log_y: bool = False, x_key: str = "epoch", colours: Mapping[str, str] | None = None) -> go.Figure:
    """One line per run of metrics-row `key` against `x_key`; runs without that key are left out.
    `colours` (model_colours) fixes each run's colour, so it matches the page's other charts."""
    colours = model_colours(list(runs)) if colours is None else colours
    fig = go.Figure()
    ys: list[float] = []
    for name, rows in runs.items():
        x, y = series(rows, key, x_key)
        if x:
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers" if len(x) < 30 else "lines", name=name,
                                     line_color=colours.get(name)))
            ys += y
    fig.update_layout(title=title, xaxis_title=x_key, yaxis_title=y_title, yaxis_type="log" if log_y else "linear",
                      legend_title="run")
    if log_y:
        style_log_axis(fig, ys)
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
    style_log_axis(fig, ys)
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
    style_log_axis(fig, fids + [f for _, f in floors] + [max(fids) * 1.6])  # room above for the labels
    return fig


def by_family(curves: Mapping[str, Sequence[Mapping]], process_type: Mapping[str, str | None]
              ) -> dict[str, dict[str, Sequence[Mapping]]]:
    """{process type: {model: rows}}, the families in their listing order (noise first); models of no known
    process are left out."""
    kinds = DiffusionProcess.PROCESS_TYPES
    groups: dict[str, dict[str, Sequence[Mapping]]] = {}
    for name, rows in curves.items():
        if process_type.get(name) in kinds:
            groups.setdefault(process_type[name], {})[name] = rows
    return dict(sorted(groups.items(), key=lambda kv: kinds[kv[0]].listing))


def family_curves_figure(groups: Mapping[str, Mapping[str, Sequence[Mapping]]], key: str = "loss",
                         colours: Mapping[str, str] | None = None) -> go.Figure:
    """Figures 9–10: loss (or FID) of each process family's models over the same epochs, one panel per family
    (the first solid, the others dashed): noise models' ‖ε − g‖² and cold models' ‖x − R‖² measure different
    things, so each gets its own panel and scale rather than a second axis over the first. `groups`: by_family."""
    colours = model_colours([n for runs in groups.values() for n in runs]) if colours is None else colours
    what = "loss" if key == "loss" else "classifier-FID" if key == "fid" else key
    kinds = [DiffusionProcess.PROCESS_TYPES[k] for k in groups]
    titles = [f"{kind.family}: {what}" + (f" {kind.loss_text}" if key == "loss" else "") for kind in kinds]
    fig = make_subplots(rows=len(groups), cols=1, shared_xaxes=True, vertical_spacing=0.14, subplot_titles=titles)
    for row, runs in enumerate(groups.values(), start=1):
        ys: list[float] = []
        for name, rows in runs.items():
            x, y = series(rows, key)
            if x:
                fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=name, line_dash="solid" if row == 1 else "dash",
                                         line_color=colours.get(name)), row=row, col=1)
                ys += y
        if key == "loss":
            style_log_axis(fig, ys, row=row, col=1)
        fig.update_yaxes(title_text=what, row=row, col=1)
    fig.update_xaxes(title_text="epoch", row=len(groups), col=1)
    fig.update_layout(title=f"{what}: " + " vs ".join(kind.family for kind in kinds), legend_title="run",
                      height=310 * max(2, len(groups)), margin=dict(t=90))
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


def families_vs_nfe_figure(rows: Sequence[Mapping], colours: Mapping[str, str] | None = None) -> go.Figure:
    """FID over the real-data floor against network calls, one line per model (each at its best sampler per
    budget, views/nfe_curves.py), one dash per process family: how few calls each family needs."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    families = list(dict.fromkeys(r["family"] for r in rows))
    dashes = ["solid", "dash", "dot", "dashdot"]
    colours = colours or model_colours(models)
    fig = go.Figure()
    for model in models:
        pts = sorted((r for r in rows if r["model"] == model), key=lambda r: r["nfe"])
        fig.add_trace(go.Scatter(
            x=[r["nfe"] for r in pts], y=[r["fid_over_floor"] for r in pts], mode="lines+markers",
            name=f"{model} ({pts[0]['family']})",
            line=dict(color=colours.get(model), dash=dashes[families.index(pts[0]["family"]) % len(dashes)]),
            customdata=[[r["sampler"], r["steps"], r["confident"], r["digits"]] for r in pts],
            hovertemplate="%{x} calls: %{y:.2f}× the floor<br>%{customdata[0]}, %{customdata[1]} steps<br>"
                          "%{customdata[2]:.0%} confident, %{customdata[3]} digits<extra></extra>"))
    fig.add_hline(y=1.0, line_dash="dot", annotation_text="real digits (the floor)")
    fig.update_layout(title="FID against network calls: diffusion and flow models, each at its best sampler",
                      xaxis_title="network calls per image (log)", yaxis_title="FID ÷ real-data floor (log)",
                      height=460, legend_title="model (family)")
    fig.update_xaxes(type="log")
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
