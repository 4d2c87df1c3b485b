"""The 2-D lab: points from a known mixture, moons, rings or a drawing; a small MLP denoiser trained on them in
seconds through the same process, objective and samplers as the digits; and the views — the learned and (for
mixtures) exact score field at a chosen t with its error, particle paths of the probability-flow ODE and of the
SDE from the same starting points, and the final samples against the data."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from diffusion_core.io.points import GaussianMixture, drawn_mixture, mixture_presets, rings, two_moons
from diffusion_core.models.mlp import PointDenoiser
from diffusion_core.process import FlowProcess, GaussianProcess, SamplerChoice
from diffusion_core.process.schedules import preset_schedule
from diffusion_core.sampling import model_frames
from diffusion_core.training.in_memory import fit

DRAWN = "drawn points"
SHAPES = ("two moons", "rings")
EXTENT = 3.2  # the views cover [−EXTENT, EXTENT]²
ODE_SAMPLER, SDE_SAMPLER = "ddim", "dpm++2m-sde"  # the probability-flow ODE (DDIM, η = 0) and the reverse SDE


def dataset_names() -> list[str]:
    return [*mixture_presets(), *SHAPES, DRAWN]


def make_points(name: str, n: int = 2000, seed: int = 0,
                drawn: np.ndarray | list | None = None) -> tuple[torch.Tensor, GaussianMixture | None]:
    """(n points [n, 2], their mixture when its parameters are known, else None). ValueError naming the problem
    (an unknown name, a bad count, an empty or degenerate drawing)."""
    mixtures = mixture_presets()
    if name == DRAWN:
        mixture = drawn_mixture([] if drawn is None else drawn)
        return mixture.sample(n, seed), mixture
    if name in mixtures:
        return mixtures[name].sample(n, seed), mixtures[name]
    if name == "two moons":
        return two_moons(n, seed), None
    if name == "rings":
        return rings(n, seed), None
    raise ValueError(f"2-D data must be one of {', '.join(dataset_names())}; got {name!r}")


def point_process(flow: bool = False) -> GaussianProcess | FlowProcess:
    """The report's default schedule (linear β, T = 1000) on 2-D points; flow: flow matching's linear path
    (T = 1000 steps of t) instead."""
    if flow:
        return FlowProcess(T=1000, data_shape=(2,))
    return GaussianProcess(preset_schedule("default"), preset="default", data_shape=(2,))


TRAIN_DEFAULTS = {"steps": 2000, "lr": 3e-3}  # clusters of 8 Gaussians on a ring in ~8 s on 2 CPU cores


@dataclass
class PointModel:
    process: GaussianProcess | FlowProcess
    model: nn.Module  # ε̂(z_t, t/T) on points
    losses: list[float]
    loss_by_t: dict


def train_points(data: torch.Tensor, steps: int = TRAIN_DEFAULTS["steps"], seed: int = 0,
                 lr: float = TRAIN_DEFAULTS["lr"], hidden: int = 256,
                 on_step: Callable[[int, int, float], None] | None = None, flow: bool = False) -> PointModel:
    """An MLP denoiser fitted to `data` with the report's ε loss (training.in_memory.fit): batches of 512, the
    rate decaying as a half cosine, EMA 0.99 — at 2,000 steps the ODE puts ~90 % of its samples inside the ring's
    8 components, where 1,500 steps of batch 256 at a constant 2e-3 put ~55 %. flow: the same MLP learns the
    velocity ε − x of flow matching's straight path instead (process/flow.py)."""
    process = point_process(flow)
    torch.manual_seed(seed)
    result = fit(process, PointDenoiser(2, hidden), data, steps, batch_size=512, lr=lr, seed=seed, ema_decay=0.99,
                 lr_decay="cosine", on_step=on_step)
    return PointModel(process, result.model, result.losses, result.loss_by_t)


def grid(n: int = 21, extent: float = EXTENT) -> torch.Tensor:
    """An n×n grid of points over [−extent, extent]², rows of [n², 2] (x varies fastest)."""
    axis = torch.linspace(-extent, extent, n)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([xx.ravel(), yy.ravel()], dim=1)


def score_field(process: GaussianProcess, model: nn.Module, t: int, points: torch.Tensor) -> torch.Tensor:
    """The model's score ∇ log p_t ≈ −ε̂(z, t)/√(1−ᾱ_t) at `points` (z_t positions)."""
    if isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= process.T:
        raise ValueError(f"t must be a whole number from 1 to T = {process.T}; got {t!r}")
    s = math.sqrt(1.0 - float(process.schedule.alpha_bars[t]))
    with torch.no_grad():
        eps = process.eps_model(model)(points, torch.full((len(points),), t / process.T))
    return -eps.double() / s


def exact_score_field(process: GaussianProcess, mixture: GaussianMixture, t: int, points: torch.Tensor) -> torch.Tensor:
    """∇ log p_t of the noised mixture at `points`, in closed form."""
    ab = float(process.schedule.alpha_bars[t])
    return mixture.score(points, math.sqrt(ab), math.sqrt(1.0 - ab))


def score_error(learned: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    """‖learned − exact‖ / (‖exact‖ + 1) at each point: the relative error, kept finite where the score is 0."""
    return (learned - exact).norm(dim=1) / (exact.norm(dim=1) + 1.0)


@dataclass(frozen=True)
class Coverage:
    """How well samples sit on a known mixture."""

    share: float  # of the samples inside some component's 99 % ellipse ((x−μ)ᵀΣ⁻¹(x−μ) ≤ χ²₀.₉₉)
    reached: int  # components holding at least a quarter of the samples they would hold under the mixture
    components: int


def mixture_coverage(samples: np.ndarray | torch.Tensor, mixture: GaussianMixture) -> Coverage:
    """The share of `samples` [n, d] inside a component's 99 % ellipse (the mixture's own samples: ≈ 0.99 or
    more where ellipses overlap) and how many components they reach."""
    from scipy.stats import chi2

    x = torch.as_tensor(np.asarray(samples), dtype=torch.float64)
    diff = x[:, None, :] - mixture.means[None]  # [n, K, d]
    m2 = torch.einsum("nki,kij,nkj->nk", diff, torch.linalg.inv(mixture.covs), diff)  # squared Mahalanobis
    inside = m2 <= chi2.ppf(0.99, mixture.dim)
    expected = 0.99 * mixture.weights * len(x)
    reached = int((inside.sum(0) >= 0.25 * expected).sum())
    return Coverage(float(inside.any(1).double().mean()), reached, len(mixture.weights))


@dataclass
class ParticlePaths:
    ts: list[int]  # the timesteps of the frames, T … 0 (shared by both runs)
    ode: np.ndarray  # [frames, n, 2]: positions along the probability-flow ODE
    sde: np.ndarray  # [frames, n, 2]: positions along the reverse SDE, from the same z_T


def particle_paths(process: GaussianProcess, model: nn.Module, n: int = 200, seed: int = 0,
                   steps: int = 40) -> ParticlePaths:
    """n particles from the same z_T ~ N(0, I) (drawn with `seed`) run through the probability-flow ODE (DDIM,
    η = 0) and the reverse SDE (DPM-Solver++(2M) SDE) on the same `steps` timesteps."""
    runs = {}
    for sampler in (ODE_SAMPLER, SDE_SAMPLER):
        choice = SamplerChoice(sampler, steps, seed=seed, spacing="uniform")
        frames = list(model_frames(process, model, choice, n, precision="fp32"))
        runs[sampler] = ([f.t for f in frames], np.stack([f.z.numpy() for f in frames]))
    (ts, ode), (_, sde) = runs[ODE_SAMPLER], runs[SDE_SAMPLER]
    return ParticlePaths(ts, ode, sde)


def flow_pairs(model: PointModel, n: int = 4096, seed: int = 0, steps: int = 40) -> torch.Tensor:
    """n (x0, z1) pairs of a flow model's coupling, joined along the last dimension ([n, 2d]): noises z1 (drawn with
    `seed`) carried to samples x0 by its ODE (flow-heun on `steps` steps)."""
    frames = list(model_frames(model.process, model.model, SamplerChoice("flow-heun", steps, seed=seed), n,
                               precision="fp32"))
    return torch.cat([frames[-1].z, frames[0].z], dim=1)


def reflow_points(model: PointModel, steps: int = TRAIN_DEFAULTS["steps"], seed: int = 0, n_pairs: int = 4096,
                  lr: float = TRAIN_DEFAULTS["lr"], hidden: int = 256,
                  on_step: Callable[[int, int, float], None] | None = None) -> PointModel:
    """Reflow (rectified flow): a new velocity MLP trained on the straight paths between the flow's own (z1, x0)
    pairs instead of independent noise and data — its paths cross less, so they are straighter."""
    pairs = flow_pairs(model, n_pairs, seed)
    torch.manual_seed(seed)
    result = fit(model.process.coupled(), PointDenoiser(2, hidden), pairs, steps, batch_size=512, lr=lr, seed=seed,
                 ema_decay=0.99, lr_decay="cosine", on_step=on_step)
    return PointModel(model.process, result.model, result.losses, result.loss_by_t)


def distil_points(model: PointModel, steps: int = 1000, seed: int = 0, n_pairs: int = 4096, lr: float = 1e-3,
                  on_step: Callable[[int, int, float], None] | None = None) -> PointModel:
    """A one-step generator distilled from a (reflowed) flow: its velocity fine-tuned at t = 1 only on the flow's
    own pairs, so that one Euler step, x̂0 = z1 − v(z1, 1), lands where the flow's whole ODE does."""
    pairs = flow_pairs(model, n_pairs, seed)
    process = model.process
    result = fit(process.coupled(distil_steps=1), copy.deepcopy(model.model).train(), pairs, steps, batch_size=512,
                 lr=lr, seed=seed, ema_decay=None, lr_decay="cosine", on_step=on_step)
    return PointModel(process, result.model, result.losses, result.loss_by_t)


def straightness(path: np.ndarray) -> np.ndarray:
    """How straight each particle's path is, whatever its clock: |end − start| / the path's length (1: a straight
    line; path: [frames, n, d] positions)."""
    steps = np.linalg.norm(np.diff(path, axis=0), axis=2).sum(axis=0)
    return np.linalg.norm(path[-1] - path[0], axis=1) / np.maximum(steps, 1e-12)


def flow_straightness(model: PointModel, n: int = 200, seed: int = 0, steps: int = 40) -> float:
    """Rectified flow's straightness S = E ∫₀¹ ‖(Z₁ − Z₀) − v(Z_t, t)‖² dt along the flow's own ODE (flow-euler on
    `steps` uniform steps from n noises, Z₁ the noise, Z₀ the sample); 0 for straight paths. Any flow model with
    .process and .model (points or images: ‖·‖² over every dimension)."""
    process = model.process
    choice = SamplerChoice("flow-euler", steps, seed=seed)
    frames = list(model_frames(process, model.model, choice, n, precision="fp32"))
    z1, z0 = frames[0].z.double(), frames[-1].z.double()
    times = [f.t / process.T for f in frames]
    total = 0.0
    for i in range(len(frames) - 1):  # v on each step: the state's change over the step's time
        v = (frames[i].z.double() - frames[i + 1].z.double()) / (times[i] - times[i + 1])
        total += (times[i] - times[i + 1]) * float(((z1 - z0) - v).pow(2).flatten(1).sum(1).mean())
    return total


_ORIGIN = {"left": 0.0, "center": 0.5, "right": 1.0, "top": 0.0, "bottom": 1.0}


def canvas_points(json_data: dict | None, width: int, height: int, extent: float = EXTENT) -> np.ndarray:
    """The points of a drawing canvas's Fabric.js JSON in data coordinates ([m, 2]; the canvas spans
    [−extent, extent]², y up): the centre of each placed point or circle, and every vertex of free-hand
    strokes."""
    pixels = []
    for obj in (json_data or {}).get("objects", []):
        if obj.get("type") == "path":
            for command in obj.get("path", []):
                if len(command) >= 3:  # ["M"|"L", x, y] or ["Q", cx, cy, x, y]: the end point
                    pixels.append((float(command[-2]), float(command[-1])))
        elif "left" in obj and "top" in obj:
            w = float(obj.get("width", 0)) * float(obj.get("scaleX", 1))
            h = float(obj.get("height", 0)) * float(obj.get("scaleY", 1))
            pixels.append((float(obj["left"]) + (0.5 - _ORIGIN.get(obj.get("originX", "left"), 0.0)) * w,
                           float(obj["top"]) + (0.5 - _ORIGIN.get(obj.get("originY", "top"), 0.0)) * h))
    if not pixels:
        return np.zeros((0, 2))
    p = np.asarray(pixels)
    return np.stack([(p[:, 0] / width * 2 - 1) * extent, (1 - p[:, 1] / height * 2) * extent], axis=1)


def typed_points(text: str) -> np.ndarray:
    """'x, y' per line (blank lines skipped) → [m, 2]; ValueError naming the first bad line."""
    rows = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.replace(";", ",").split(",")
        try:
            if len(parts) != 2:
                raise ValueError
            rows.append((float(parts[0]), float(parts[1])))
        except ValueError:
            raise ValueError(f"line {i} must be two numbers 'x, y'; got {line.strip()!r}") from None
    return np.asarray(rows, dtype=np.float64).reshape(-1, 2)


@dataclass
class PointsView:
    """Everything the page draws after training: the data, the model, and what it was run for."""

    data_name: str
    data: np.ndarray  # [n, 2]
    mixture: GaussianMixture | None
    model: PointModel
    paths: ParticlePaths
    samples_ode: np.ndarray
    samples_sde: np.ndarray


def build_points_view(name: str, n: int, seed: int, drawn: np.ndarray | None, steps: int = TRAIN_DEFAULTS["steps"],
                      lr: float = TRAIN_DEFAULTS["lr"],
                      on_progress: Callable[[int, int], None] | None = None, particles: int = 300) -> PointsView:
    """Data → trained denoiser → particle paths and final samples (the 2-D lab's one training action);
    on_progress(step, steps) every 50 training steps and at the last."""
    data, mixture = make_points(name, n, seed, drawn)
    on_step = None if on_progress is None else (
        lambda step, total, loss: on_progress(step, total) if step % 50 == 0 or step == total else None)
    model = train_points(data, steps, seed, lr, on_step=on_step)
    paths = particle_paths(model.process, model.model, particles, seed)
    return PointsView(name, data.numpy(), mixture, model, paths, paths.ode[-1], paths.sde[-1])


def field_panels(view: PointsView, t: int, n: int = 21) -> dict:
    """{"grid", "fields": {"learned": …, "exact": …}, "error"} at t (exact and error only for a known mixture)."""
    points = grid(n)
    fields = {"learned": score_field(view.model.process, view.model.model, t, points)}
    error = None
    if view.mixture is not None:
        fields["exact"] = exact_score_field(view.model.process, view.mixture, t, points)
        error = score_error(fields["learned"], fields["exact"]).numpy()
    return {"grid": points.numpy(), "fields": {k: v.numpy() for k, v in fields.items()}, "error": error}


@dataclass
class FlowLab:
    """Flow matching beside diffusion on the same points: particle paths from the same noises through the diffusion
    model's ODE, the flow's and the reflowed flow's, how straight each is, and a one-step generator's samples."""

    paths: dict[str, np.ndarray]  # name → [frames, n, 2], the same noises and timesteps
    ts: list[int]
    ratio: dict[str, float]  # mean |end − start| / path length per run (1: straight)
    S: dict[str, float]  # rectified flow's straightness E∫‖(Z₁ − Z₀) − v‖² dt (0: straight), flow and reflowed
    one_step: np.ndarray  # [n, 2]: the distilled generator's samples, one network call each
    flow: PointModel  # the flow-matching model (before reflow), for its velocity field
    flow_times: list[float]  # the flows' frames' continuous times t, from 1 (noise) to 0 (data)


def build_flow_lab(view: PointsView, steps: int = TRAIN_DEFAULTS["steps"], lr: float = TRAIN_DEFAULTS["lr"],
                   seed: int = 0, on_progress: Callable[[int, int], None] | None = None) -> FlowLab:
    """Train flow matching on the view's data, reflow it and distil a one-step generator (on_progress(done, 3)
    after each), then run the particles of the diffusion model's ODE through both flows."""
    data = torch.as_tensor(view.data, dtype=torch.float32)
    flow = train_points(data, steps, seed, lr, flow=True)
    if on_progress is not None:
        on_progress(1, 3)
    reflowed = reflow_points(flow, steps, seed, lr=lr)
    if on_progress is not None:
        on_progress(2, 3)
    one_step = distil_points(reflowed, steps=min(steps, 1000), seed=seed)  # the same budget, at most 1,000
    if on_progress is not None:
        on_progress(3, 3)
    n, ts = view.paths.ode.shape[1], view.paths.ts
    paths = {"diffusion (DDIM ODE)": view.paths.ode}
    for name, model in (("flow matching", flow), ("reflowed flow", reflowed)):
        frames = list(model_frames(model.process, model.model, SamplerChoice("flow-euler", len(ts) - 1, seed=seed),
                                   n, precision="fp32"))
        paths[name] = np.stack([f.z.numpy() for f in frames])
        times = [f.t / model.process.T for f in frames]
    last = list(model_frames(one_step.process, one_step.model, SamplerChoice("flow-euler", 1, seed=seed), n,
                             precision="fp32"))[-1].z.numpy()
    S = {"flow matching": flow_straightness(flow, n, seed), "reflowed flow": flow_straightness(reflowed, n, seed)}
    return FlowLab(paths, ts, {k: float(straightness(p).mean()) for k, p in paths.items()}, S, last, flow, times)


def velocity_panels(lab: FlowLab, mixture: GaussianMixture | None, t: float, n: int = 21) -> dict:
    """{"grid", "fields": {"learned": v̂(z, t), "exact": …}, "error"} of the flow at continuous time t ∈ (0, 1]
    (exact and error only for a known mixture: its marginal velocity on the linear path, in closed form)."""
    if isinstance(t, bool) or not isinstance(t, int | float) or not 0 < t <= 1:
        raise ValueError(f"t must be a number with 0 < t ≤ 1; got {t!r}")
    points = grid(n)
    with torch.no_grad():
        fields = {"learned": lab.flow.model(points, torch.full((len(points),), float(t))).double()}
    error = None
    if mixture is not None:
        fields["exact"] = mixture.flow_velocity(points, float(t))
        error = score_error(fields["learned"], fields["exact"]).numpy()
    return {"grid": points.numpy(), "fields": {k: v.numpy() for k, v in fields.items()}, "error": error}
