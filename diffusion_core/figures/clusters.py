"""Real against generated digits in feature space: density plots and PCA clusters (the report's figures 8–10)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from diffusion_core.evaluation.analysis import FeatureDensity
from diffusion_core.figures.style import GENERATED_COLOUR, PALETTE, REAL_COLOUR


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


def add_cluster_centres(fig: go.Figure, result: Mapping, method: str) -> None:
    """The clusters of `method` drawn as their numbered centres (mean of their points in the PCA view)."""
    proj = result["projection"]
    three = proj.real.shape[1] >= 3
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


def pca_cluster_figure(result: Mapping, color_by: str = "set", title: str | None = None) -> go.Figure:
    """PCA view of real (blue circles) and generated (red crosses) points together ("set"), or coloured by class
    label (real: true or predicted; generated: predicted; "label") or by cluster ("kmeans" / "gmm"), the symbol
    still telling real from generated; then the legend has one entry per class or cluster plus the two symbols.
    `result` is analysis.real_vs_generated's dict; 2 components → 2-D, 3 → 3-D."""
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
        add_cluster_centres(fig, result, method)  # not coloured by cluster: the clusters still show, numbered
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
