"""What every degradation is (Degradation), the strength schedules, the helpers the kinds share, and the
registry of kinds: a subclass with a `kind` registers itself, so a new degradation is one new file in this
package (see the package docstring for the kinds)."""

from __future__ import annotations

import inspect
import math
import numbers
from typing import ClassVar

import torch

DEGRADATIONS: dict[str, type[Degradation]] = {}  # kind → class, filled as each kind's module is imported
STRENGTH_SCHEDULES = ("linear", "cosine", "quadratic", "sqrt")
MAX_T = 10_000
MIN_SIGMA = 1e-3  # below this the Gaussian kernel is a delta anyway; far below, σ² underflows to 0
MAX_KERNEL = 55  # 2·28 − 1: reflect padding of a 28-pixel side allows no more
BLACK = -0.5  # a black pixel in data space


def strength(schedule: str, u: torch.Tensor | float) -> torch.Tensor:
    """s(u) for u = t/T in [0, 1] (float64)."""
    u = torch.as_tensor(u, dtype=torch.float64)
    if schedule == "linear":
        return u.clone()
    if schedule == "cosine":
        return 1.0 - torch.cos(u * math.pi / 2)
    if schedule == "quadratic":
        return u**2
    if schedule == "sqrt":
        return u.sqrt()
    raise ValueError(f"degradation schedule must be one of {', '.join(STRENGTH_SCHEDULES)}; got {schedule!r}")


def number_param(name: str, value: object, lo: float, hi: float, kind: str, lo_open: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value > hi or value < lo or (lo_open and value == lo):
        rng = f"{lo} < {name} ≤ {hi}" if lo_open else f"{lo} ≤ {name} ≤ {hi}"
        raise ValueError(f"{kind} degradation: {name} must be a number with {rng}; got {value!r}")
    return float(value)


def integer_param(name: str, value: object, lo: int, hi: int, kind: str, odd: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi or (odd and value % 2 == 0):
        what = "an odd integer" if odd else "an integer"
        raise ValueError(f"{kind} degradation: {name} must be {what} between {lo} and {hi}; got {value!r}")
    return value


class Degradation:
    """D(x, t) for t = 0..T. A kind declares itself in its class line, e.g.
    `class Mask(Degradation, kind="mask", default_T=100, order=2, done_to_x="masked")`, and implements `params`
    and `_apply`."""

    kind: ClassVar[str] = ""
    default_T: ClassVar[int] = 100
    order: ClassVar[int] = 100  # place in the lists of kinds (the report's blur first)
    needs_noise: ClassVar[bool] = False
    done_to_x: ClassVar[str] = "degraded"  # what D(x, t) does to x, for headings: "x blurred at t = …"

    def __init_subclass__(cls, kind: str = "", default_T: int | None = None, order: int | None = None,
                          done_to_x: str | None = None, needs_noise: bool | None = None, **kwargs: object) -> None:
        """A concrete kind (one given `kind`) registers itself under that name; the other class-line settings
        override what it inherits."""
        super().__init_subclass__(**kwargs)
        for name, value in (("default_T", default_T), ("order", order), ("done_to_x", done_to_x),
                            ("needs_noise", needs_noise)):
            if value is not None:
                setattr(cls, name, value)
        if kind:
            cls.kind = kind
            DEGRADATIONS[kind] = cls

    def __init__(self, T: int | None = None, schedule: str = "linear") -> None:
        T = self.default_T if T is None else T
        if isinstance(T, bool) or not isinstance(T, int) or not 1 <= T <= MAX_T:
            raise ValueError(f"degradation T must be an integer between 1 and {MAX_T}; got {T!r}")
        strength(schedule, 0.0)  # validates the name
        self.T = T
        self.schedule = schedule
        self.s = strength(schedule, torch.arange(T + 1, dtype=torch.float64) / T)  # s_t, t = 0..T
        self._cache: dict = {}

    # -- public API -----------------------------------------------------------------------------
    @property
    def params(self) -> dict:
        return {}

    def config(self) -> dict:
        """{"kind", "T", "schedule", **params}: rebuilds this degradation via degradation_from_config."""
        return {"kind": self.kind, "T": self.T, "schedule": self.schedule, **self.params}

    def strength_curve(self) -> tuple[str, list[float]]:
        """(label, value at t = 0..T) of the quantity the schedule drives, for plotting."""
        return "strength s(t/T)", self.s.tolist()

    @property
    def generation_t(self) -> int:
        """Where unconditional generation starts: the mixture start is fitted to D(x, t) there and the
        restorer walks back from it (T unless a kind has measured better)."""
        return self.T

    def draw_noise(self, shape: tuple[int, ...], generator: torch.Generator,
                   device: torch.device | str = "cpu") -> torch.Tensor | None:
        """ε for stochastic hybrids (held fixed along a trajectory); None for deterministic kinds."""
        return None

    def noise_term(self, noise: torch.Tensor, t: int) -> torch.Tensor | float:
        """The additive noise part of D(x, t, ε) (0 for deterministic kinds)."""
        return 0.0

    def __call__(self, x: torch.Tensor, t: int | torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """D(x, t): x is N×C×H×W, t an int or a LongTensor of N timesteps in 0..T."""
        if x.dim() != 4:
            raise ValueError(f"D(x, t) expects images shaped N×C×H×W; got shape {tuple(x.shape)}")
        tt = self._timesteps(t, x.shape[0], x.device)
        if self.needs_noise and noise is None:
            raise ValueError(f"the {self.kind} degradation needs noise=ε (draw it with draw_noise)")
        if noise is not None and self.needs_noise and noise.shape != x.shape:
            raise ValueError(f"noise must have the images' shape {tuple(x.shape)}; got {tuple(noise.shape)}")
        return self._apply(x, tt, noise)

    # -- helpers --------------------------------------------------------------------------------
    def _timesteps(self, t: int | torch.Tensor, n: int, device: torch.device) -> torch.Tensor:
        if isinstance(t, torch.Tensor):
            tt = t.to(device=device, dtype=torch.long).reshape(-1)
            if tt.numel() == 1:
                tt = tt.expand(n)
            if tt.numel() != n:
                raise ValueError(f"t must be one timestep or one per image ({n}); got {tt.numel()}")
            lo, hi = int(tt.min()), int(tt.max())
        else:
            if isinstance(t, bool) or not isinstance(t, numbers.Integral):
                raise ValueError(f"t must be an integer timestep; got {t!r}")
            lo = hi = t = int(t)
            tt = torch.full((n,), t, dtype=torch.long, device=device)
        if lo < 0 or hi > self.T:
            raise ValueError(f"t must be between 0 and T={self.T}; got {lo if lo < 0 else hi}")
        return tt

    def _apply(self, x: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError


class SeparableDegradation(Degradation):
    """D(x, t) = A_t x A_tᵀ with an n×n matrix per axis and timestep (A_0 = I)."""

    def _matrices(self, n: int) -> torch.Tensor:  # [T+1, n, n] float64
        raise NotImplementedError

    def operator(self, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
        key = (n, str(device))
        if key not in self._cache:
            mats = self._matrices(n)
            mats[0] = torch.eye(n, dtype=torch.float64)  # D(x, 0) = x exactly
            self._cache[key] = mats.float().to(device)
        return self._cache[key]

    def _apply(self, x: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        A_h = self.operator(x.shape[-2], x.device)[t][:, None]  # N×1×H×H
        A_w = self.operator(x.shape[-1], x.device)[t][:, None]  # N×1×W×W
        return A_h @ x.float() @ A_w.transpose(-1, -2)


def degradation_kinds() -> tuple[str, ...]:
    """The registered kinds, the report's blur first."""
    return tuple(sorted(DEGRADATIONS, key=lambda k: (DEGRADATIONS[k].order, k)))


def make_degradation(kind: str, T: int | None = None, schedule: str = "linear", **params: object) -> Degradation:
    """Build a validated degradation; unknown parameters are refused with the allowed list."""
    if kind not in DEGRADATIONS:
        raise ValueError(f"degradation kind must be one of {', '.join(degradation_kinds())}; got {kind!r}")
    cls = DEGRADATIONS[kind]
    allowed = set(inspect.signature(cls.__init__).parameters) - {"self", "T", "schedule"}
    unknown = set(params) - allowed
    if unknown:
        names = ", ".join(sorted(allowed)) or "none"
        raise ValueError(f"unknown parameter(s) {sorted(unknown)} for the {kind} degradation; allowed: {names}")
    return cls(T=T, schedule=schedule, **params)


def degradation_from_config(cfg: dict) -> Degradation:
    """Rebuild from {"kind", "T", "schedule", **params} (as written by Degradation.config())."""
    if not isinstance(cfg, dict) or "kind" not in cfg:
        raise ValueError('a cold degradation config must be a dict like {"kind": "blur", "T": 500, ...}; '
                         f"got {cfg!r}")
    rest = {k: v for k, v in cfg.items() if k not in ("kind", "T", "schedule")}
    return make_degradation(cfg["kind"], cfg.get("T"), cfg.get("schedule", "linear"), **rest)


def preview_strip(degradation: Degradation, x: torch.Tensor, ts: list[int] | None = None,
                  seed: int = 0) -> tuple[list[int], torch.Tensor]:
    """D(x, t) of one image (C×H×W or 1×C×H×W) at timesteps `ts` (default: 11 from 0 to T, as the
    report's strip t = 0, 50, …, 500). Returns (ts, len(ts)×C×H×W); hybrids use ε drawn with `seed`."""
    if ts is None:
        ts = sorted({round(degradation.T * i / 10) for i in range(11)})
    x = x.reshape(1, *x.shape[-3:]).float()
    noise = degradation.draw_noise(tuple(x.shape), torch.Generator().manual_seed(seed), x.device)
    frames = [degradation(x, int(t), noise) for t in ts]
    return list(ts), torch.cat(frames)
