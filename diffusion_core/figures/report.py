"""Writing figures as offline HTML, and the report's figure set from run folders."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import torch

from diffusion_core.figures.clusters import density_figure, pca_cluster_figure
from diffusion_core.figures.curves import by_family, family_curves_figure, fid_curves_figure, loss_curves_figure
from diffusion_core.figures.images import sample_grids_figure, samples_at_epochs_figure
from diffusion_core.figures.schedules import alpha_bar_figure, blur_schedule_figure
from diffusion_core.figures.style import images01
from diffusion_core.io.images import to_unit_numpy
from diffusion_core.io.runs import is_run_dir, read_run_files
from diffusion_core.process import GaussianProcess


def write_html(fig: go.Figure, path: str | Path, self_contained: bool = True) -> Path:
    """Save a figure as HTML that works offline: plotly.js embedded (self_contained) or written once
    as plotly.min.js next to the file ("directory" mode)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(str(path), include_plotlyjs=True if self_contained else "directory", full_html=True)
    return path


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
        figs["02_sample_grids"] = sample_grids_figure({k: images01(v)[:16] for k, v in samples.items()})
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
        ts, frames = preview_strip(blur, torch.as_tensor(images01(real_images)[:1] - 0.5))
        strip = {t: to_unit_numpy(frames[i:i + 1]) for i, t in enumerate(ts)}
        figs["06_blur_schedule"] = blur_schedule_figure(blur.sigmas.numpy(), strip)
    families = by_family({r["name"]: r["rows"] for r in data}, {r["name"]: r["diffusion_type"] for r in data})
    if len(families) > 1:  # the report's figures 9–10: noise models against the blur model, each in its panel
        figs["09_loss_noise_vs_blur"] = family_curves_figure(families, key="loss")
        if has_fid:
            figs["10_fid_noise_vs_blur"] = family_curves_figure(families, key="fid")
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
