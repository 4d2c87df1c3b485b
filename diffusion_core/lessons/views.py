"""The live views a lesson step can show (`::: view NAME key=value …`): each a short function computing a Plotly
figure from the library — the report's schedules, a real digit noised or blurred, a shipped model sampling a few
digits step by step, the committed benchmark curves, the exact score field of a 2-D mixture — in a second or two
on 2 CPU cores (`python benchmarks/lesson_views.py` times every shipped lesson's views).

A view's keyword arguments are its settings; a setting the function does not take, or a value it refuses, is a
ValueError naming it (lessons.check reports it with the lesson's line).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import plotly.graph_objects as go
import torch

from diffusion_core.io.images import to_unit_numpy

from .registry import resolve

VIEWS: dict[str, Callable[..., LessonView]] = {}
MAX_IMAGES = 8


@dataclass(frozen=True)
class LessonView:
    figure: go.Figure
    caption: str = ""


def view(fn: Callable[..., LessonView]) -> Callable[..., LessonView]:
    VIEWS[fn.__name__] = fn
    return fn


def _checkpoint(model: str):
    """A shipped (or named) checkpoint. Not cached here: the page caches each view's figure, so a view loads its
    model once per server and settings."""
    from diffusion_core.io.checkpoints import load_checkpoint, resolve_checkpoint

    return load_checkpoint(resolve_checkpoint(model))


def _digits(n: int, seed: int) -> torch.Tensor:
    """n real test digits in data space (the full MNIST when present, else the bundled subset)."""
    from diffusion_core.io.data import load_dataset

    images = load_dataset("mnist", "test", download=False).images
    idx = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]
    return images[idx]


@view
def schedules(presets: list | None = None, quantity: str = "alpha_bar", normalise: bool = False) -> LessonView:
    """The report's β schedules: ᾱ_t, β_t or log-SNR against t (or t/T)."""
    from diffusion_core.figures.schedules import SCHEDULE_QUANTITIES, report_schedules, schedule_figure

    every = report_schedules()
    names = list(presets or every)
    unknown = [p for p in names if p not in every]
    if unknown or quantity not in SCHEDULE_QUANTITIES:
        raise ValueError(f"presets must be among {', '.join(every)} and quantity one of "
                         f"{', '.join(SCHEDULE_QUANTITIES)}; got {unknown or quantity}")
    return LessonView(schedule_figure({p: every[p] for p in names}, quantity, bool(normalise)))


@view
def forward_strip(preset: str = "default", seed: int = 0) -> LessonView:
    """One real digit through the forward process, z_t = √ᾱ_t·x + √(1−ᾱ_t)·ε, at the preset's snapshot steps."""
    from diffusion_core.figures.images import image_panels_figure
    from diffusion_core.process.gaussian import q_sample
    from diffusion_core.process.schedules import PRESETS, preset_schedule

    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}; got {preset!r}")
    schedule = preset_schedule(preset)
    ts = sorted(PRESETS[preset]["snapshots"])
    x = _digits(1, int(seed)).expand(len(ts), -1, -1, -1)
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(int(seed)))
    z = q_sample(schedule, x, torch.tensor(ts), eps)
    panels = {f"t={t}": to_unit_numpy(z[i:i + 1]) for i, t in enumerate(ts)}
    fig = image_panels_figure(panels, title=f"One digit noised by the {preset} schedule", nrow=1)
    fig.update_layout(width=120 * len(ts) + 40, height=230)
    alphas = ", ".join(f"{float(schedule.alpha_bars[t]):.3g}" for t in ts)
    return LessonView(fig, f"ᾱ_t at those steps: {alphas}.")


@view
def loss_by_t(model: str = "uncond-unet") -> LessonView:
    """A shipped model's training loss by noise level, epoch by epoch (its metrics.jsonl)."""
    from diffusion_core.figures.curves import loss_by_t_strip_figure
    from diffusion_core.io.checkpoints import resolve_checkpoint
    from diffusion_core.io.files import read_jsonl

    rows = read_jsonl(resolve_checkpoint(model).with_suffix(".metrics.jsonl"))
    if not any(r.get("loss_by_t") for r in rows):
        raise ValueError(f"{model} has no loss-by-noise-level record in its metrics")
    return LessonView(loss_by_t_strip_figure(rows, f"{model}: training loss by noise level"))


@view
def samplers_nfe() -> LessonView:
    """Classifier-FID against network calls for every sampler on default-unet (samplers_nfe.json)."""
    from diffusion_core.figures.curves import quality_vs_nfe_figure

    from .answers import benchmark_results

    data = benchmark_results("samplers_nfe")
    return LessonView(quality_vs_nfe_figure(data["rows"]), f"{data['model']}, {data['n']} samples per point, "
                                                           f"measured {data['date'][:10]} on {data['machine']}.")


@view
def reverse_strip(model: str = "default-unet", sampler: str = "ddim", steps: int = 10, n: int = 4,
                  seed: int = 0, frames: int = 6) -> LessonView:
    """A shipped model sampling `n` digits: z_t (top) and its x̂0 (bottom) at a few of the sampler's steps."""
    from diffusion_core.figures.images import image_panels_figure
    from diffusion_core.process import SamplerChoice
    from diffusion_core.sampling import checkpoint_frames

    if not 1 <= int(n) <= MAX_IMAGES or not 2 <= int(frames) <= 10:
        raise ValueError(f"n must be 1–{MAX_IMAGES} and frames 2–10")
    ckpt = _checkpoint(model)
    run = list(checkpoint_frames(ckpt, SamplerChoice(sampler, int(steps), seed=int(seed)), int(n)))
    keep = sorted({round(i * (len(run) - 1) / (int(frames) - 1)) for i in range(int(frames))})
    panels = {}
    for i in keep:
        step = run[i]
        pair = torch.cat([step.z, step.x0_hat]).clamp(-1, 1)
        panels[f"t={step.t}"] = to_unit_numpy(pair)
    fig = image_panels_figure(panels, title=f"{model}, {sampler} with {steps} steps: z_t over x̂0", nrow=int(n))
    fig.update_layout(width=150 * len(keep) + 40, height=330)
    return LessonView(fig, "Each panel: the current z_t (top row) and the network's guess x̂0 of the clean digit "
                           "(bottom row) at that step.")


@view
def degradation_strip(model: str = "blur", seed: int = 0) -> LessonView:
    """A shipped cold model's degradation: its strength against t, above one real digit degraded at ten steps."""
    from diffusion_core.figures.schedules import blur_schedule_figure
    from diffusion_core.views.degradations import cold_parts, degradation_preview

    _, degradation = cold_parts(_checkpoint(model))
    preview = degradation_preview(degradation, _digits(1, int(seed))[0], seed=int(seed))
    fig = blur_schedule_figure(preview.curve, dict(zip(preview.ts, preview.frames, strict=True)), preview.label,
                               preview.strip_title, title=f"{model}: the degradation over t")
    return LessonView(fig)


@view
def cold_starts(model: str = "blur", n: int = 8, seed: int = 0, steps: int = 50) -> LessonView:
    """A cold model's samples from a black start and from its mixture start, same seed."""
    from diffusion_core.figures.images import image_panels_figure
    from diffusion_core.views.degradations import mean_pairwise_distance, unconditional_samples

    if not 2 <= int(n) <= MAX_IMAGES:
        raise ValueError(f"n must be 2–{MAX_IMAGES}")
    samples = unconditional_samples(_checkpoint(model), n=int(n), seed=int(seed), steps=int(steps))
    fig = image_panels_figure({f"from {k}": v for k, v in samples.items()}, nrow=int(n))
    fig.update_layout(height=260)
    spread = ", ".join(f"{k}: {mean_pairwise_distance(v):.3f}" for k, v in samples.items())
    return LessonView(fig, f"Mean pairwise distance between the samples (0 = all the same): {spread}.")


@view
def guidance_curve() -> LessonView:
    """Fidelity, variety and FID against the guidance scale w, each kind on its model (guidance_curve.json)."""
    from diffusion_core.figures.curves import guidance_curve_figure

    from .answers import benchmark_results

    data = benchmark_results("guidance_curve")
    names = {kind: f"{kind} · {c.get('model', data.get('model', '?'))}" for kind, c in data["curves"].items()}
    curves = {names[kind]: c["rows"] for kind, c in data["curves"].items()}
    w0 = {names[kind]: c["w0"] for kind, c in data["curves"].items() if c.get("w0")}
    floor = f" The FID of {data['n']} real digits (the floor at this n) is {data['fid_floor']:.1f}." \
        if data.get("fid_floor") else ""
    return LessonView(guidance_curve_figure(curves, w0 or None),
                      f"{data['sampler']}, {data['n']} samples per point, measured on {data['machine']}.{floor}")


@view
def score_field(data: str = "8 Gaussians on a ring", t: int = 100) -> LessonView:
    """The exact score ∇ log p_t of a 2-D Gaussian mixture under the default schedule, as arrows over its points."""
    from diffusion_core.figures.points import score_field_figure
    from diffusion_core.views.points import exact_score_field, grid, make_points, point_process

    points, mixture = make_points(str(data), 600, 0)
    if mixture is None:
        raise ValueError(f"{data!r} has no closed-form score: use a Gaussian-mixture data set")
    process = point_process()
    if not 1 <= int(t) <= process.schedule.T:
        raise ValueError(f"t must be 1–{process.schedule.T}")
    g = grid(21)
    field = exact_score_field(process, mixture, int(t), g).numpy()
    fig = score_field_figure(g.numpy(), {f"exact score at t={t}": field}, points.numpy(), int(t))
    fig.update_layout(width=560, height=560)  # one square panel
    return LessonView(fig)


@view
def flow_vs_diffusion() -> LessonView:
    """FID over the real-data floor against network calls for the diffusion and flow families
    (flow_vs_diffusion.json)."""
    from diffusion_core.figures.curves import families_vs_nfe_figure

    from .answers import benchmark_results

    data = benchmark_results("flow_vs_diffusion")
    return LessonView(families_vs_nfe_figure(data["rows"]), f"{data['n']} samples per point, measured "
                                                            f"{data['measured']} on {data['machine']}.")


def render(name: str, params: dict[str, object]) -> LessonView:
    """The view `name` with `params`; ValueError naming an unknown view or setting."""
    return resolve("view", VIEWS, name, params)(**params)


__all__ = ["MAX_IMAGES", "VIEWS", "LessonView", "render"]
