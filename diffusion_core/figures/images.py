"""Grids of images: samples, samples during training, nearest training neighbours."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from diffusion_core.figures.style import image_trace, images01, style_image_axes
from diffusion_core.io.images import make_grid


def image_panels_figure(panels: Mapping[str, np.ndarray], title: str = "", nrow: int | None = 4,
                        rows: int = 1) -> go.Figure:
    """Several grids side by side (e.g. Figure 2 for several models, Figure 3 at several epochs)."""
    if not panels:
        raise ValueError("panels must hold at least one named set of images")
    names = list(panels)
    cols = -(-len(names) // rows)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names, horizontal_spacing=0.02, vertical_spacing=0.08)
    for i, name in enumerate(names):
        fig.add_trace(image_trace(make_grid(images01(panels[name]), nrow=nrow), name),
                      row=i // cols + 1, col=i % cols + 1)
    fig.update_layout(title=title, width=max(420, 300 * cols), height=120 + 300 * rows,
                      margin=dict(l=10, r=10, t=80, b=10))
    return style_image_axes(fig)


def sample_grids_figure(samples: Mapping[str, np.ndarray], nrow: int = 4) -> go.Figure:
    """Figure 2: a 4×4 sample grid per model."""
    return image_panels_figure(samples, title="Samples per model", nrow=nrow)


def samples_at_epochs_figure(samples: Mapping[int, np.ndarray], title: str = "Samples during training",
                             nrow: int = 4) -> go.Figure:
    """Figure 3: sample grids at chosen epochs (e.g. 10, 50, 100)."""
    return image_panels_figure({f"epoch {e}": samples[e] for e in sorted(samples)}, title=title, nrow=nrow)


def neighbours_figure(generated: np.ndarray, train: np.ndarray, neighbours: Mapping[str, tuple[np.ndarray, np.ndarray]],
                      rows: int = 8) -> go.Figure:
    """One row per generated digit (the first `rows`): the digit, then its nearest training digits in each space,
    nearest first. neighbours: space → (indices N×k, distances N×k) into `train`."""
    gen, tr = images01(generated), images01(train)
    n = min(rows, len(gen))
    spaces = list(neighbours)
    ks = [neighbours[s][0].shape[1] for s in spaces]
    fig = make_subplots(rows=1, cols=1 + len(spaces), horizontal_spacing=0.03, column_widths=[1, *ks],
                        subplot_titles=["generated"] + [f"nearest training · {s}" for s in spaces])
    fig.add_trace(image_trace(make_grid(gen[:n], nrow=1), "generated"), row=1, col=1)
    for c, (space, k) in enumerate(zip(spaces, ks, strict=True), start=2):
        fig.add_trace(image_trace(make_grid(tr[neighbours[space][0][:n].ravel()], nrow=k), space), row=1, col=c)
    fig.update_layout(title="Generated digits and their nearest training digits", height=110 + 40 * n,
                      width=200 + 60 * (1 + sum(ks)), margin=dict(l=10, r=10, t=80, b=10))
    return style_image_axes(fig)
