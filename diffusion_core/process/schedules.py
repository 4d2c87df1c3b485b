"""Noise schedules β_t, α_t = 1 − β_t, ᾱ_t = Π_{s≤t} α_s and SNR_t = ᾱ_t / (1 − ᾱ_t).

Every schedule is a tensor of T+1 values indexed t = 0..T, as in the report.
ᾱ is computed in log space: ᾱ = exp(cumsum(log(1 − β))).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

MAX_T = 100_000
MIN_ALPHA_BAR = 1e-20  # below this, ᾱ_T underflows float32 arithmetic in the samplers
NOT_NOISE = 0.01  # ᾱ_T above this: z_T still carries visible signal, so N(0, I) is the wrong start
SCHEDULE_KINDS = ("linear", "cosine", "sigmoid", "quadratic")
KINDS_WITHOUT_BETAS = ("cosine",)  # ᾱ_t fixed by the kind itself: β1 and β2 do not apply

# The report's presets (GUIDE.md §2). Snapshot timesteps are those shown in its figures.
PRESETS: dict[str, dict] = {
    "default": {"kind": "linear", "beta1": 1e-4, "beta2": 0.02, "T": 1000,
                "snapshots": [1000, 750, 500, 250, 100, 50, 10, 5, 1]},
    "model1": {"kind": "linear", "beta1": 1e-5, "beta2": 0.01, "T": 1840,
               "snapshots": [1840, 1000, 540, 140, 40, 10, 5, 2, 1]},
    "model2": {"kind": "linear", "beta1": 1e-5, "beta2": 1e-3, "T": 18300,
               "snapshots": [18300, 10000, 5000, 1000, 500, 100, 50, 10, 1]},
}


@dataclass(frozen=True)
class NoiseSchedule:
    """β_t for t = 0..T and the quantities derived from it (all float32 tensors of length T+1)."""

    kind: str
    beta1: float
    beta2: float
    T: int
    betas: torch.Tensor

    @property
    def alphas(self) -> torch.Tensor:
        """α_t = 1 − β_t."""
        return 1.0 - self.betas

    @property
    def alpha_bars(self) -> torch.Tensor:
        """ᾱ_t = exp(Σ_{s≤t} log(1 − β_s))."""
        return torch.exp(torch.cumsum(torch.log1p(-self.betas.double()), dim=0)).float()

    @property
    def snr(self) -> torch.Tensor:
        """SNR_t = ᾱ_t / (1 − ᾱ_t)."""
        ab = self.alpha_bars.double()
        return (ab / (1.0 - ab)).float()

    @property
    def log_snr(self) -> torch.Tensor:
        """log SNR_t = log(ᾱ_t / (1 − ᾱ_t)) (see log_snr)."""
        return log_snr(self.alpha_bars.double()).float()

    @property
    def ends_in_noise(self) -> bool:
        """ᾱ_T ≤ NOT_NOISE: z_T is (close to) pure noise, so sampling may start from N(0, I)."""
        return float(self.alpha_bars[-1]) <= NOT_NOISE

    def end_warning(self, name: str) -> str | None:
        """Why a schedule that ends short of noise is wrong to sample from N(0, I) (None if it ends in noise)."""
        if self.ends_in_noise:
            return None
        end = float(self.alpha_bars[-1])
        return (f"**{name}** ends at ᾱ_T = {end:.2f}: z_T still keeps √ᾱ_T = {end ** 0.5:.0%} of the digit, so it "
                f"is only {1 - end:.0%} of the way to noise. The model never sees pure noise in training, yet "
                "sampling starts from z_T ~ N(0, I) — the report's lesson from model2 at T = 1000. Raise T or β2 "
                "until ᾱ_T ≈ 0.")

    def to_config(self) -> dict:
        return {"kind": self.kind, "beta1": self.beta1, "beta2": self.beta2, "T": self.T}


def log_snr(alpha_bar: float | torch.Tensor) -> float | torch.Tensor:
    """log SNR = log(ᾱ/(1−ᾱ)), the one log-SNR of the library: +∞ where ᾱ = 1 (t = 0). DPM-Solver's
    λ = log(α/σ) with α = √ᾱ, σ = √(1−ᾱ) is half of it."""
    if isinstance(alpha_bar, torch.Tensor):
        return torch.log(alpha_bar) - torch.log1p(-alpha_bar)
    if alpha_bar >= 1.0:
        return math.inf
    return math.log(alpha_bar) - math.log1p(-alpha_bar)


def validate_schedule_params(kind: str, beta1: float, beta2: float, T: int) -> None:
    """Raise ValueError naming the parameter and its allowed range."""
    if kind not in SCHEDULE_KINDS:
        raise ValueError(f"schedule kind must be one of {', '.join(SCHEDULE_KINDS)}; got {kind!r}")
    if isinstance(T, bool) or not isinstance(T, int) and not (isinstance(T, float) and T.is_integer()):
        raise ValueError(f"T must be an integer between 1 and {MAX_T}; got {T!r}")
    if not 1 <= int(T) <= MAX_T:
        raise ValueError(f"T must be an integer between 1 and {MAX_T}; got {T}")
    if kind in KINDS_WITHOUT_BETAS:
        return  # cosine has no β1/β2: it is fixed by s = 0.008 and the 0.999 cap
    for name, value in (("beta1", beta1), ("beta2", beta2)):
        if not isinstance(value, (int, float)) or not math.isfinite(value) or not 0.0 < value < 1.0:
            raise ValueError(f"{name} must be a number with 0 < {name} < 1; got {value!r}")
    if not beta1 < beta2:
        raise ValueError(f"beta1 must be smaller than beta2 (0 < beta1 < beta2 < 1); got beta1={beta1}, beta2={beta2}")


def make_schedule(kind: str = "linear", beta1: float = 1e-4, beta2: float = 0.02, T: int = 1000) -> NoiseSchedule:
    """Build a validated schedule of the given kind with T+1 values (t = 0..T)."""
    validate_schedule_params(kind, beta1, beta2, T)
    T = int(T)
    t = torch.arange(0, T + 1, dtype=torch.float64)
    if kind == "linear":
        # β_t = β1 + (β2 − β1)·t/T  (the report's schedule)
        betas = beta1 + (beta2 - beta1) * t / T
    elif kind == "quadratic":
        # β_t = (√β1 + (√β2 − √β1)·t/T)²
        betas = (math.sqrt(beta1) + (math.sqrt(beta2) - math.sqrt(beta1)) * t / T) ** 2
    elif kind == "sigmoid":
        # β_t = β1 + (β2 − β1)·(σ(−6 + 12t/T) − σ(−6)) / (σ(6) − σ(−6)), so β_0 = β1 and β_T = β2
        s = torch.sigmoid(-6.0 + 12.0 * t / T)
        lo, hi = 1 / (1 + math.exp(6.0)), 1 / (1 + math.exp(-6.0))
        betas = beta1 + (beta2 - beta1) * (s - lo) / (hi - lo)
    else:  # cosine (Nichol & Dhariwal 2021): ᾱ_t = f(t)/f(0), f(t) = cos²(π/2·(t/T + s)/(1 + s))
        s = 0.008
        f = torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
        abar = f / f[0]
        betas = torch.zeros(T + 1, dtype=torch.float64)
        betas[1:] = (1 - abar[1:] / abar[:-1]).clamp(max=0.999)  # β_0 = 0 so ᾱ_0 = 1
        beta1, beta2 = float(betas[1]), float(betas[-1])
    log_abar_T = float(torch.log1p(-betas).sum())
    if log_abar_T < math.log(MIN_ALPHA_BAR):
        raise ValueError(
            f"beta1={beta1:g}, beta2={beta2:g}, T={T} destroy the signal far too early: ᾱ_T = e^{log_abar_T:.0f} "
            f"is below {MIN_ALPHA_BAR:g} and underflows; lower beta2 or T"
        )
    return NoiseSchedule(kind=kind, beta1=float(beta1), beta2=float(beta2), T=T, betas=betas.float())


def preset_schedule(name: str) -> NoiseSchedule:
    """One of the report's named presets: default, model1, model2."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    p = PRESETS[name]
    return make_schedule(p["kind"], p["beta1"], p["beta2"], p["T"])


def schedule_from_config(cfg: dict) -> NoiseSchedule:
    missing = {"kind", "T"} - set(cfg)
    if missing:
        raise ValueError(f"schedule config is missing {sorted(missing)}")
    return make_schedule(cfg["kind"], cfg.get("beta1", 1e-4), cfg.get("beta2", 0.02), cfg["T"])
