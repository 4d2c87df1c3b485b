"""The Gaussian forward process, Algorithm 1's loss, and the noise process built on them.

z_t = √ᾱ_t · x + √(1 − ᾱ_t) · ε,   loss = ‖ε − g(z_t, t/T)‖²  (the report's; other targets and weightings:
process/targets.py).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

from diffusion_core.process.base import IMAGE_SHAPE, DiffusionProcess, SamplerChoice
from diffusion_core.process.runs import model_call
from diffusion_core.process.schedules import (
    KINDS_WITHOUT_BETAS,
    PRESETS,
    NoiseSchedule,
    schedule_from_config,
    validate_schedule_params,
)
from diffusion_core.process.spacing import sigma_of, spaced_by
from diffusion_core.process.targets import (
    DEFAULT_GAMMA,
    PREDICTION_NAMES,
    EpsView,
    eps_from_output,
    loss_weight,
    training_target,
    validate_target,
    x0_weight,
)


def q_sample(schedule: NoiseSchedule, x: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """z_t = √ᾱ_t x + √(1−ᾱ_t) ε for integer timesteps t (shape [B])."""
    ab = schedule.alpha_bars.to(x.device)[t].view(-1, *([1] * (x.dim() - 1)))
    return ab.sqrt() * x + (1.0 - ab).sqrt() * eps


def noising_strip(schedule: NoiseSchedule, x: torch.Tensor, ts: list[int], seed: int = 0) -> torch.Tensor:
    """z_t = √ᾱ_t x + √(1−ᾱ_t) ε of one data-space image x (C×H×W) at each t, with the same ε (drawn with
    `seed`) at every t: one path from x to noise. ValueError for a t outside 0..T."""
    if not ts or any(isinstance(t, bool) or not isinstance(t, int) or not 0 <= t <= schedule.T for t in ts):
        raise ValueError(f"timesteps must be whole numbers between 0 and T = {schedule.T}; got {ts}")
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    n = len(ts)
    return q_sample(schedule, x.expand(n, *x.shape), torch.tensor(ts), eps.expand(n, *x.shape))


def parse_timesteps(text: str, T: int, most: int = 16) -> list[int]:
    """'0, 10, 100' → [0, 10, 100]: 1 to `most` whole numbers between 0 and T; ValueError saying what is wrong."""
    try:
        ts = [int(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"timesteps must be whole numbers separated by commas; got {text!r}") from None
    if not ts or len(ts) > most or any(not 0 <= t <= T for t in ts):
        raise ValueError(f"give 1 to {most} timesteps, each between 0 and T = {T}; got {text!r}")
    return ts


def predict_x0(z_t: torch.Tensor, eps_hat: torch.Tensor, alpha_bar_t: float) -> torch.Tensor:
    """x̂0 = (z_t − √(1−ᾱ_t) ε̂) / √ᾱ_t."""
    return (z_t - (1.0 - alpha_bar_t) ** 0.5 * eps_hat) / alpha_bar_t**0.5


def ddpm_loss_terms(
    model: nn.Module, schedule: NoiseSchedule, x: torch.Tensor, generator: torch.Generator | None = None,
    shard: slice = slice(None), y: torch.Tensor | None = None, t: torch.Tensor | None = None,
    prediction: str = "eps", weighting: str = "uniform", gamma: float = DEFAULT_GAMMA,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Algorithm 1: t ~ U{1..T} (or the given t), ε ~ N(0, I), mean ‖ε − g(z_t, t/T)‖² (‖ε − g(z_t, t/T, y)‖² with
    class labels y for a class-conditional denoiser). Returns (that mean, t, each image's own mean, detached).
    Another prediction target or weighting: the mean of w(t)·‖target − g‖² (process/targets.py).

    t and ε are drawn for the whole batch x; the loss is taken over x[shard] (one rank's part
    of a distributed global batch)."""
    T = schedule.T
    t = (torch.randint(1, T + 1, (x.shape[0],), generator=generator) if t is None else t.cpu()).to(x.device)[shard]
    eps = torch.randn(x.shape, generator=generator).to(x.device)[shard]
    x = x[shard]
    z_t = q_sample(schedule, x, t, eps)
    output = model(z_t, t.float() / T) if y is None else model(z_t, t.float() / T, y[shard])
    if prediction == "eps" and weighting == "uniform":  # the report's loss, exactly
        squared = (eps - output.float()) ** 2
    else:
        ab = schedule.alpha_bars.to(x.device)[t].view(-1, *([1] * (x.dim() - 1)))
        target = training_target(prediction, x, eps, ab.sqrt(), (1.0 - ab).sqrt())
        squared = loss_weight(prediction, weighting, ab / (1.0 - ab), gamma) * (target - output.float()) ** 2
    return torch.mean(squared), t, squared.detach().flatten(1).mean(1)


def ddpm_loss(model: nn.Module, schedule: NoiseSchedule, x: torch.Tensor, generator: torch.Generator | None = None,
              shard: slice = slice(None), y: torch.Tensor | None = None) -> torch.Tensor:
    """Algorithm 1's loss (see ddpm_loss_terms)."""
    return ddpm_loss_terms(model, schedule, x, generator, shard, y)[0]


class Denoiser:
    """A network seen in noise-level space (k-diffusion's denoiser view), the one view every noise sampler runs
    over: the process's state z at level σ is z = scale(σ)·x, where x = x0 + σ·ε, and D(x; σ) = x − σ·ε̂ is the
    network's x̂0. For Gaussian noise on a β schedule scale(σ) = √ᾱ = 1/√(1+σ²) and σ_t = √((1−ᾱ_t)/ᾱ_t); a flow
    path (process/flow.py) has its own. A σ off the grid is evaluated at the nearest integer t (in log σ), as the
    networks were trained on integer t.

    model: the network as ε̂(z_t, t/T); sigmas: σ_t for t = 0..T; scale: z = scale(σ)·x."""

    def __init__(self, model: nn.Module, sigmas: list[float], scale: Callable[[float], float]) -> None:
        self.model, self.T, self._sigmas, self.scale = model, len(sigmas) - 1, list(sigmas), scale
        self._log_sigma = torch.tensor([math.log(s) for s in self._sigmas[1:]], dtype=torch.float64)

    def sigma(self, t: int) -> float:
        """σ_t (0 at t = 0 where the process starts from clean data)."""
        return self._sigmas[t]

    def sigmas(self, ts: Iterable[int]) -> list[float]:
        """σ at each of the timesteps ts, then 0 (where a run ends: the samples)."""
        return [self.sigma(t) for t in ts] + [0.0]

    def t_of(self, sigma: float) -> int:
        """The integer t whose σ_t is nearest to σ in log space (1..T)."""
        return int(torch.argmin((self._log_sigma - math.log(sigma)).abs())) + 1

    def to_z(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """z = scale(σ)·x: the process's own state at noise level σ."""
        return x * self.scale(sigma)

    def from_z(self, z: torch.Tensor, sigma: float) -> torch.Tensor:
        """x = z / scale(σ)."""
        return z / self.scale(sigma)

    def __call__(self, x: torch.Tensor, sigma: float, t: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(x̂0, ε̂) at x with noise level σ (the network at t, default t_of(σ)); ε̂ = (x − x̂0)/σ = dx/dσ."""
        eps = model_call(self.model, self.to_z(x, sigma), self.t_of(sigma) if t is None else t, self.T)
        return x - sigma * eps, eps


def vp_scale(sigma: float) -> float:
    """√ᾱ at noise level σ: 1/√(1+σ²) (variance preserving: z = √ᾱ·x0 + √(1−ᾱ)·ε)."""
    return 1.0 / math.sqrt(1.0 + sigma**2)


class GaussianProcess(DiffusionProcess):
    """Gaussian noise on a β schedule (DDPM): the network predicts ε (the report's), x0 or v, trained with a
    weighting over noise levels (process/targets.py)."""

    type = "noise"
    noise_levels = True
    takes_labels = True
    guidable = True
    signal_symbol = "√ᾱ_t"
    model_noun = "noise model"
    family, loss_text, listing = "noise models", "‖ε − g‖²", 0
    QUICK_SAMPLER, QUICK_STEPS = "dpm++2m-sde", 20

    def __init__(self, schedule: NoiseSchedule, preset: str | None = None, prediction: str = "eps",
                 weighting: str = "uniform", gamma: float = DEFAULT_GAMMA,
                 data_shape: tuple[int, ...] = IMAGE_SHAPE) -> None:
        """data_shape: one sample's shape, (1, 28, 28) for digits, (2,) for the 2-D lab's points."""
        validate_target(prediction, weighting, gamma)
        self.schedule, self.data_shape = schedule, tuple(data_shape)
        self.preset = preset
        self.T = schedule.T
        self.prediction, self.weighting, self.gamma = prediction, weighting, float(gamma)
        self.declared = True  # False: read from a config that names no target (a model from before targets)

    @classmethod
    def from_config(cls, diffusion: dict) -> GaussianProcess:
        """A config without "prediction" is a model from before targets could be chosen: it predicts ε."""
        allowed = {"type", "schedule", "preset", "prediction", "weighting", "snr_gamma"}
        unknown = set(diffusion) - allowed
        if unknown:
            raise ValueError(f"unknown noise diffusion field(s) {sorted(unknown)}; "
                             f"allowed: {', '.join(sorted(allowed - {'type'}))}")
        if not isinstance(diffusion.get("schedule"), dict):
            raise ValueError('a noise model needs "diffusion": {"type": "noise", "schedule": {...}}')
        process = cls(schedule_from_config(diffusion["schedule"]), diffusion.get("preset"),
                      diffusion.get("prediction", "eps"), diffusion.get("weighting", "uniform"),
                      diffusion.get("snr_gamma", DEFAULT_GAMMA))
        process.declared = "prediction" in diffusion
        return process

    def config(self) -> dict:
        return {"type": self.type, **({"preset": self.preset} if self.preset else {}),
                "schedule": self.schedule.to_config(), "prediction": self.prediction,
                **({"weighting": self.weighting} if self.weighting != "uniform" else {}),
                **({"snr_gamma": self.gamma} if self.weighting != "uniform" else {})}

    def train_flags(self) -> list[str]:
        """The `train` options that give this process (a card's recipe line)."""
        s = self.schedule.to_config()
        flags = ["--preset", self.preset] if self.preset else (
            ["--schedule", s["kind"], "--T", str(s["T"])]
            + [a for k in ("beta1", "beta2") if k in s and s["kind"] not in KINDS_WITHOUT_BETAS
               for a in (f"--{k}", f"{s[k]:g}")])
        flags += ["--prediction", self.prediction]
        if self.weighting != "uniform":
            flags += ["--weighting", self.weighting, "--snr-gamma", f"{self.gamma:g}"]
        return flags

    def describe(self) -> str:
        s = self.schedule
        name = f"preset {self.preset}: " if self.preset else ""
        if not self.declared:
            return (f"Gaussian noise, {name}{s.kind} β from {s.beta1:g} to {s.beta2:g}, T = {s.T}; "
                    "predicts ε (no target declared: read as the report's)")
        target = "" if self.prediction == "eps" and self.weighting == "uniform" else (
            f"; predicts {PREDICTION_NAMES[self.prediction]}, {self.weighting} weighting"
            + (f" (γ = {self.gamma:g})" if self.weighting != "uniform" else ""))
        return f"Gaussian noise, {name}{s.kind} β from {s.beta1:g} to {s.beta2:g}, T = {s.T}{target}"

    @property
    def variant(self) -> str | None:
        return self.preset

    def label(self) -> str:
        return f"noise {self.preset or self.schedule.kind} T={self.T}"

    def diffuse(self, z: torch.Tensor, t_from: int, t_to: int, eps: torch.Tensor) -> torch.Tensor:
        """A draw of q(z_{t_to} | z_{t_from}) from the noise ε: √(ᾱ_to/ᾱ_from)·z + √(1 − ᾱ_to/ᾱ_from)·ε with
        ᾱ_0 = 1, so from t_from = 0 (clean data x) it is the report's z_t = √ᾱ_t·x + √(1−ᾱ_t)·ε at one t."""
        ab = self.schedule.alpha_bars
        ratio = float(ab[t_to]) / (1.0 if t_from == 0 else float(ab[t_from]))
        return math.sqrt(ratio) * z + math.sqrt(1.0 - ratio) * eps

    def corrupt(self, x0: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        eps = torch.randn(x0.shape, generator=generator).to(x0.device)
        return q_sample(self.schedule, x0, t, eps)

    def loss_terms(self, model: nn.Module, x: torch.Tensor, generator: torch.Generator | None = None,
                   shard: slice = slice(None), y: torch.Tensor | None = None,
                   t: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return ddpm_loss_terms(model, self.schedule, x, generator, shard, y, t, self.prediction, self.weighting,
                               self.gamma)

    def x0_from_output(self, z: torch.Tensor, output: torch.Tensor, t: int) -> torch.Tensor:
        ab = float(self.schedule.alpha_bars[t])
        return predict_x0(z, eps_from_output(self.prediction, z, output, ab**0.5, (1.0 - ab) ** 0.5), ab)

    def eps_model(self, model: nn.Module) -> nn.Module:
        """The network seen as ε̂(z_t, t/T) whatever it predicts: the samplers and the bound are written for ε̂."""
        return model if self.prediction == "eps" else EpsView(model, self.prediction, self.schedule.alpha_bars)

    def quick_choice(self) -> SamplerChoice:
        """The stochastic DPM-Solver++(2M) on 20 steps: fresh noise at every step like the T-step ancestral
        sampler, whose classifier-FID it matches for the shipped default in 1/50 of the time, where the
        deterministic samplers score worse (benchmarks/run.py)."""
        return SamplerChoice(self.QUICK_SAMPLER, min(self.QUICK_STEPS, self.T))

    def timesteps(self, spacing: str, t_start: int, steps: int, rho: float = 7.0) -> list[int]:
        return spaced_by(spacing, self.schedule.alpha_bars.tolist(), t_start, steps, rho)

    def predicting_eps(self) -> GaussianProcess:
        """This process for a network that outputs ε̂ whatever the checkpoint's own predicts: a steered ε̃ built on
        eps_model (classifier or loss guidance) is sampled through it, so it is not converted a second time."""
        twin = copy.copy(self)
        twin.prediction = "eps"
        return twin

    def frame_facts(self, t: int) -> dict[str, str]:
        return {"β_t": f"{float(self.schedule.betas[t]):.3g}", "ᾱ_t": f"{float(self.schedule.alpha_bars[t]):.4g}"}

    def frame_curve(self) -> tuple[str, list[float]]:
        return "ᾱ_t", self.schedule.alpha_bars.tolist()

    def log_snrs(self) -> list[float]:
        """log SNR_t = log(ᾱ_t/(1 − ᾱ_t)) for t = 1..T, from the whole schedule at once (model2 has T = 18,300)."""
        ab = self.schedule.alpha_bars[1:].double()
        return (ab / (1.0 - ab)).log().tolist()

    def levels(self, t: int) -> tuple[float, float]:
        """(α_t, σ_t) of z_t = α_t·x + σ_t·ε: (√ᾱ_t, √(1 − ᾱ_t)); (1, 0) at t = 0."""
        ab = 1.0 if t == 0 else float(self.schedule.alpha_bars[t])
        return math.sqrt(ab), math.sqrt(1.0 - ab)

    def x0_weight(self, snr: torch.Tensor) -> torch.Tensor:
        """λ of its target and weighting (process/targets.py): SNR for ε · uniform, SNR + 1 for v, …"""
        return x0_weight(self.prediction, self.weighting, snr, self.gamma)

    def view(self, model: nn.Module) -> Denoiser:
        """The network in noise-level space (see Denoiser), as every noise sampler runs over it."""
        return Denoiser(self.eps_model(model), self.sigmas(range(self.T + 1)), vp_scale)

    def sigmas(self, ts: Iterable[int]) -> list[float]:
        """σ_t = √((1−ᾱ_t)/ᾱ_t) at each t (the noise level of x = z/√ᾱ_t)."""
        ab = self.schedule.alpha_bars.tolist()
        return [sigma_of(ab[t]) for t in ts]

    preview_text = "ddim, 20 steps"

    def preview_choice(self, seen: torch.Tensor, seed: int) -> SamplerChoice:
        """DDIM on 20 steps from noise."""
        return SamplerChoice("ddim", min(20, self.T), seed=seed)

    def start(self, choice: SamplerChoice, n: int, generator: torch.Generator,
              device: torch.device | str = "cpu") -> tuple[torch.Tensor, dict]:
        """z_T ~ N(0, I) drawn from `generator`; or, with given states, that state z_t (N×C×H×W) at
        t = choice.t_start (default T): a run from midway, as SDEdit and the Diffuse ↑ button start."""
        return self.noise_or_given_start(choice, n, generator, device)


def noise_diffusion_config(preset: str | None = None, kind: str = "linear", beta1: float = 1e-4,
                           beta2: float = 0.02, T: int = 1000, prediction: str = "eps", weighting: str = "uniform",
                           gamma: float = DEFAULT_GAMMA) -> dict:
    """The "diffusion" config of a noise process from a preset name or explicit schedule parameters, with its
    prediction target and loss weighting (process/targets.py)."""
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        p = PRESETS[preset]
        schedule = {"kind": p["kind"], "beta1": p["beta1"], "beta2": p["beta2"], "T": p["T"]}
    else:
        validate_schedule_params(kind, beta1, beta2, T)
        schedule = {"kind": kind, "beta1": beta1, "beta2": beta2, "T": T}
    validate_target(prediction, weighting, gamma)
    return {"type": GaussianProcess.type, **({"preset": preset} if preset else {}), "schedule": schedule,
            "prediction": prediction,
            **({"weighting": weighting, "snr_gamma": float(gamma)} if weighting != "uniform" else {})}
