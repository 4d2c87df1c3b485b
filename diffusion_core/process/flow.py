"""Flow matching on the linear (conditional optimal-transport) path (Lipman et al. 2023; Liu et al. 2023, rectified
flow), the third process family beside Gaussian noise and cold diffusion.

    z_t = (1 − t)·x0 + t·ε,  t ∈ [0, 1],  α_t = 1 − t,  σ_t = t        (t = k/T on the networks' grid k = 0..T)
    v = dz_t/dt = ε − x0                                                (the network's target: a velocity)
    loss = ‖(ε − x0) − g(z_t, t)‖²,  t ~ U(0, 1) or logit-normal (SD3: t = sigmoid(m + s·n), n ~ N(0, 1))

Its samplers integrate dz/dt = v from t = 1 to 0 (samplers/flow.py). The same path is a Gaussian path in another
clock: x = z/(1 − t) = x0 + σ·ε with σ = t/(1 − t), so log SNR = 2·log((1 − t)/t) and, through the denoiser view
(x̂0 = z − t·v, ε̂ = z + (1 − t)·v), every σ-space noise sampler (DDIM, DPM-Solver++, Euler, Heun, …) runs on a
flow model unchanged.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable

import torch
from torch import nn

from diffusion_core.process.base import IMAGE_SHAPE, DiffusionProcess, SamplerChoice
from diffusion_core.process.gaussian import Denoiser
from diffusion_core.process.runs import model_call
from diffusion_core.process.spacing import spaced_by

TIME_SAMPLINGS = ("uniform", "logit-normal")
MAX_FLOW_T = 100_000
MAX_DISTIL_STEPS = 8
# the σ-space view's noisiest level: t = 1 is pure noise (σ = ∞), so the σ-space samplers start at
# t = 1 − T_END, σ ≈ 10⁴ (a cosine schedule's σ_T is 2·10⁴); the flow's own samplers start at t = 1 exactly
T_END = 1e-4


def flow_scale(sigma: float) -> float:
    """α_t = 1 − t at noise level σ = t/(1 − t): 1/(1 + σ) (z = (1 − t)·x)."""
    return 1.0 / (1.0 + sigma)


def validate_flow(T: object, time_sampling: object, logit_mean: object, logit_std: object) -> None:
    """ValueError naming the first field out of range."""
    if isinstance(T, bool) or not isinstance(T, int) or not 1 <= T <= MAX_FLOW_T:
        raise ValueError(f"a flow's T (its time grid t = k/T) must be a whole number from 1 to {MAX_FLOW_T}; "
                         f"got {T!r}")
    if time_sampling not in TIME_SAMPLINGS:
        raise ValueError(f"time sampling must be one of {', '.join(TIME_SAMPLINGS)}; got {time_sampling!r}")
    for name, value, lo, hi in (("logit_mean", logit_mean, -3.0, 3.0), ("logit_std", logit_std, 0.1, 3.0)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            raise ValueError(f"{name} (the logit-normal's {'m' if name == 'logit_mean' else 's'}) must be a "
                             f"number from {lo:g} to {hi:g}; got {value!r}")


class FlowView(Denoiser):
    """A flow model as its samplers see it: the velocity v(z_t, t) for the flow's own samplers, and (as a
    Denoiser) x̂0 and ε̂ at noise level σ for every σ-space noise sampler — the network asked at the state's own
    continuous time t = σ/(1 + σ), z = x/(1 + σ): ε̂ = z + (1 − t)·v̂, x̂0 = x − σ·ε̂ = z − t·v̂."""

    def __init__(self, process: FlowProcess, model: nn.Module) -> None:
        super().__init__(model, process.sigmas(range(process.T + 1)), flow_scale)
        self.velocity_model = model

    def __call__(self, x: torch.Tensor, sigma: float, t: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        time = sigma / (1.0 + sigma)  # the continuous time of level σ (the grid step t is not needed)
        z = self.to_z(x, sigma)
        v = self.velocity_model(z, torch.full((z.shape[0],), time, device=z.device, dtype=torch.float32)).float()
        eps = z + (1.0 - time) * v
        return x - sigma * eps, eps

    def time(self, k: int) -> float:
        """t = k/T (t = 1 at k = T: pure noise)."""
        return k / self.T

    def velocity(self, z: torch.Tensor, k: int) -> torch.Tensor:
        """v̂ = g(z_t, t) at t = k/T."""
        return model_call(self.velocity_model, z, k, self.T)


class FlowProcess(DiffusionProcess):
    """The linear path from data (t = 0) to noise (t = 1); the network predicts the velocity ε − x0."""

    type = "flow"
    noise_levels = True
    takes_labels = True
    model_noun = "flow model"
    family, loss_text, listing = "flow models", "‖(ε − x) − v‖²", 2
    sampler_views = ("flow", "noise")
    signal_symbol = "α_t = 1 − t"
    preview_text = "flow-euler, 20 steps"

    def __init__(self, T: int = 1000, time_sampling: str = "uniform", logit_mean: float = 0.0,
                 logit_std: float = 1.0, data_shape: tuple[int, ...] = IMAGE_SHAPE) -> None:
        validate_flow(T, time_sampling, logit_mean, logit_std)
        self.T, self.time_sampling = T, time_sampling
        self.logit_mean, self.logit_std = float(logit_mean), float(logit_std)
        self.prediction, self.data_shape = "v", tuple(data_shape)
        self.coupling, self.at_ts = False, None  # trained on given (x0, z1) pairs; training t only on this grid

    def coupled(self, distil_steps: int | None = None) -> FlowProcess:
        """This flow trained on a given coupling (reflow, Liu et al. 2023): a training row is a pair (x0, z1)
        joined along its last dimension and the path runs between them, z1 in place of fresh noise. distil_steps
        N: training t only at the N-step Euler grid's times (uniform: 1, 1 − 1/N, …), so that N Euler steps
        follow each pair's straight line from z1 to x0 — N = 1: a one-step generator, x̂0 = z1 − v(z1, 1)."""
        if distil_steps is not None and (isinstance(distil_steps, bool) or not isinstance(distil_steps, int)
                                         or not 1 <= distil_steps <= min(MAX_DISTIL_STEPS, self.T)):
            raise ValueError(f"distil_steps must be a whole number from 1 to {min(MAX_DISTIL_STEPS, self.T)}; got "
                             f"{distil_steps!r}")
        twin = copy.copy(self)
        twin.coupling = True
        twin.at_ts = None if distil_steps is None else tuple(self.timesteps("uniform", self.T, distil_steps))
        return twin

    @classmethod
    def from_config(cls, diffusion: dict) -> FlowProcess:
        allowed = {"type", "T", "time_sampling", "logit_mean", "logit_std"}
        unknown = set(diffusion) - allowed
        if unknown:
            raise ValueError(f"unknown flow field(s) {sorted(unknown)}; allowed: "
                             f"{', '.join(sorted(allowed - {'type'}))}")
        return cls(diffusion.get("T", 1000), diffusion.get("time_sampling", "uniform"),
                   diffusion.get("logit_mean", 0.0), diffusion.get("logit_std", 1.0))

    def config(self) -> dict:
        return {"type": self.type, "T": self.T, "time_sampling": self.time_sampling,
                **({"logit_mean": self.logit_mean, "logit_std": self.logit_std}
                   if self.time_sampling == "logit-normal" else {})}

    def train_flags(self) -> list[str]:
        flags = ["--flow", "--T", str(self.T), "--time-sampling", self.time_sampling]
        if self.time_sampling == "logit-normal":
            flags += ["--logit-mean", f"{self.logit_mean:g}", "--logit-std", f"{self.logit_std:g}"]
        return flags

    def describe(self) -> str:
        clock = "uniform t" if self.time_sampling == "uniform" else \
            f"logit-normal t (m = {self.logit_mean:g}, s = {self.logit_std:g})"
        return f"flow matching, linear path z_t = (1 − t)·x + t·ε, T = {self.T} steps of t, {clock}; predicts v = ε − x"

    @property
    def variant(self) -> str | None:
        return self.time_sampling

    def label(self) -> str:
        return f"flow T={self.T}"

    # -- the path -------------------------------------------------------------------------------------------

    def times(self, k: torch.Tensor) -> torch.Tensor:
        """t = k/T for integer steps k (shape [B]), as float."""
        return k.float() / self.T

    def path(self, x0: torch.Tensor, k: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """z_t = (1 − t)·x0 + t·ε at integer steps k (shape [B])."""
        t = self.times(k).to(x0.device).view(-1, *([1] * (x0.dim() - 1)))
        return (1.0 - t) * x0 + t * eps

    def frame_facts(self, t: int) -> dict[str, str]:
        """The continuous time and the signal left: t = k/T and α_t = 1 − t."""
        return {"time t = k/T": f"{t / self.T:.4g}", "α_t = 1 − t": f"{1 - t / self.T:.4g}"}

    def frame_curve(self) -> tuple[str, list[float]]:
        return "α_t = 1 − t", [1.0 - k / self.T for k in range(self.T + 1)]

    def log_snrs(self) -> list[float]:
        """log SNR = 2·log((1 − t)/t) for t = 1..T, at t = 1 that of the σ-space view's noisiest level."""
        return [-2.0 * math.log(s) for s in self.sigmas(range(1, self.T + 1))]

    def x0_weight(self, snr: torch.Tensor) -> torch.Tensor:
        """λ = 1/t² = (1 + √SNR)²: x̂0 − x0 = −t·(v̂ − v), so ‖v̂ − v‖² = ‖x̂0 − x0‖²/t² (with √SNR = (1 − t)/t)."""
        return (1.0 + snr.sqrt()) ** 2

    def log_snr_density(self, grid: torch.Tensor) -> torch.Tensor:
        """The density of log SNR = λ when training draws t uniformly or logit-normally, in closed form: with
        t = 1/(1 + e^(λ/2)), |dt/dλ| = t(1 − t)/2, so uniform t gives t(1 − t)/2, and logit-normal t (logit t = −λ/2 ~
        N(m, s²)) gives a Gaussian in λ: N(−λ/2; m, s²)/2."""
        lam = grid.double()
        if self.time_sampling == "uniform":
            t = torch.sigmoid(-lam / 2)
            return t * (1 - t) / 2
        u = (-lam / 2 - self.logit_mean) / self.logit_std
        return torch.exp(-u**2 / 2) / (math.sqrt(2 * math.pi) * self.logit_std) / 2

    def levels(self, t: int) -> tuple[float, float]:
        """(α_t, σ_t) of z_t = α_t·x + σ_t·ε at step t: (1 − t/T, t/T)."""
        return 1.0 - t / self.T, t / self.T

    def sigmas(self, ks: Iterable[int]) -> list[float]:
        """σ = t/(1 − t) at each step k (t capped at 1 − T_END: the σ-space view's noisiest level)."""
        times = [min(k / self.T, 1.0 - T_END) for k in ks]
        return [t / (1.0 - t) for t in times]

    def alpha_bars(self) -> list[float]:
        """The variance-preserving ᾱ with the same SNR at each k, 1/(1 + σ²): what the spacings read."""
        return [1.0 / (1.0 + s**2) for s in self.sigmas(range(self.T + 1))]

    def draw_steps(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n training steps k in 1..T: t uniform, or t = sigmoid(m + s·N(0, 1)) rounded to the grid."""
        if self.time_sampling == "uniform":
            return torch.randint(1, self.T + 1, (n,), generator=generator)
        t = torch.sigmoid(self.logit_mean + self.logit_std * torch.randn((n,), generator=generator))
        return (t * self.T).round().long().clamp(1, self.T)

    def corrupt(self, x0: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        eps = torch.randn(x0.shape, generator=generator).to(x0.device)
        return self.path(x0, t, eps)

    def loss_terms(self, model: nn.Module, x: torch.Tensor, generator: torch.Generator | None = None,
                   shard: slice = slice(None), y: torch.Tensor | None = None,
                   t: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """‖(ε − x0) − g(z_t, t)‖² with k drawn for the whole batch (or given) and ε ~ N(0, I) (coupled: each row's
        own z1, see coupled)."""
        if self.coupling:
            x, pairs = x.chunk(2, dim=-1)
        if self.at_ts is not None and t is None:  # the distillation's grid, each row at one of its times
            t = torch.tensor(self.at_ts)[torch.randint(len(self.at_ts), (x.shape[0],), generator=generator)]
        k = (self.draw_steps(x.shape[0], generator) if t is None else t.cpu()).to(x.device)[shard]
        eps = (pairs if self.coupling else torch.randn(x.shape, generator=generator).to(x.device))[shard]
        x = x[shard]
        z = self.path(x, k, eps)
        tt = k.float() / self.T
        output = model(z, tt) if y is None else model(z, tt, y[shard])
        squared = ((eps - x) - output.float()) ** 2
        return squared.mean(), k, squared.detach().flatten(1).mean(1)

    def x0_from_output(self, z: torch.Tensor, output: torch.Tensor, t: int) -> torch.Tensor:
        """x̂0 = z_t − t·v̂."""
        return z - (t / self.T) * output.float()

    def diffuse(self, z: torch.Tensor, t_from: int, t_to: int, eps: torch.Tensor) -> torch.Tensor:
        """A draw of q(z_to | z_from) for t_to ≥ t_from: z_to = a·z + √(σ_to² − a²σ_from²)·ε with a = α_to/α_from
        (from t_from = 0, clean data: the path itself)."""
        t0, t1 = t_from / self.T, t_to / self.T
        a = (1.0 - t1) / (1.0 - t0)
        return a * z + math.sqrt(max(t1**2 - (a * t0) ** 2, 0.0)) * eps

    # -- sampling -------------------------------------------------------------------------------------------

    def view(self, model: nn.Module) -> FlowView:
        """The velocity network, and its σ-space denoiser view (see FlowView)."""
        return FlowView(self, model)

    def timesteps(self, spacing: str, t_start: int, steps: int, rho: float = 7.0) -> list[int]:
        """Uniform: Euler's equal steps in t, t_i = t_start·(1 − i/N), the last ending at t = 0 — not the noise
        processes' grid from T down to 1, whose last call at t = 1/T would be a wasted step for a flow (two steps
        would be one real step). Other spacings place the steps by σ = t/(1 − t), as for noise."""
        if spacing == "uniform":
            spaced_by(spacing, self.alpha_bars(), t_start, steps, rho)  # validates the count against t_start
            return [round(t_start * (steps - i) / steps) for i in range(steps)]
        return spaced_by(spacing, self.alpha_bars(), t_start, steps, rho)

    def quick_choice(self) -> SamplerChoice:
        return SamplerChoice("flow-euler", min(20, self.T))

    def preview_choice(self, seen: torch.Tensor, seed: int) -> SamplerChoice:
        """20 Euler steps; a distillation to N steps is previewed in its N steps."""
        return SamplerChoice("flow-euler", len(self.at_ts) if self.at_ts else min(20, self.T), seed=seed)

    def start(self, choice: SamplerChoice, n: int, generator: torch.Generator,
              device: torch.device | str = "cpu") -> tuple[torch.Tensor, dict]:
        """z_1 = ε ~ N(0, I) drawn from `generator`; or given states z_t at t = choice.t_start/T."""
        return self.noise_or_given_start(choice, n, generator, device)


def flow_diffusion_config(T: int = 1000, time_sampling: str = "uniform", logit_mean: float = 0.0,
                          logit_std: float = 1.0) -> dict:
    """The "diffusion" config of a flow-matching process (validated)."""
    return FlowProcess(T, time_sampling, logit_mean, logit_std).config()
