"""Cold-diffusion degradations D(x, t) (Bansal et al. 2022) with strength schedules.

Every degradation is batched (t may differ per image), exact at t = 0 (D(x, 0) = x) and
deterministic given x, t and — for the noise + blur hybrid only — a noise draw ε that is held
fixed along a trajectory. Images are in data space (pixel/255 − 0.5), N×C×H×W.

Strength schedule s(u), u = t/T, with s(0) = 0 and s(1) = 1:
    linear     s = u                      (the report)
    cosine     s = 1 − cos(π u / 2)       (slow start: fine detail is removed gently)
    quadratic  s = u²
    sqrt       s = √u                     (fast start)

Kinds:
    blur             the report's Gaussian blur: kernel covering the whole image (reflect padding),
                     σ_t = σ_min + (σ_max − σ_min)·s(t/T); defaults σ_min = 0.02, σ_max = 5.02, T = 500,
                     so the linear schedule is exactly σ_t = 0.02 + 0.01·t
    cumulative-blur  the paper's blur: a small Gaussian kernel applied n(t) = round(T·s(t/T)) times
    mask             inpainting: a centred disc of radius ρ_t = s(t/T)·ρ_max filled with `fill`
    pixelate         super-resolution: averages over blocks, r_t = round(H − s(t/T)·(H − min_size))
                     blocks per side, shown at full size
    fade             (1 − s)·x + s·target: fade to black (target 0) or to a grey such as the data mean
    noise-blur       the report's proposed hybrid: blur(x, t) + noise_std·s(t/T)·ε

blur, cumulative-blur and pixelate are separable linear maps, D(x, t) = A_t x A_tᵀ with one H×H
matrix per t, precomputed for t = 0..T.
"""

from __future__ import annotations

import math
import numbers
from typing import ClassVar

import torch

DEGRADATION_KINDS = ("blur", "cumulative-blur", "mask", "pixelate", "fade", "noise-blur")
STRENGTH_SCHEDULES = ("linear", "cosine", "quadratic", "sqrt")
DEFAULT_T = {"blur": 500, "cumulative-blur": 50, "mask": 100, "pixelate": 50, "fade": 100, "noise-blur": 500}
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


def _number(name: str, value: object, lo: float, hi: float, kind: str, lo_open: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value > hi or value < lo or (lo_open and value == lo):
        rng = f"{lo} < {name} ≤ {hi}" if lo_open else f"{lo} ≤ {name} ≤ {hi}"
        raise ValueError(f"{kind} degradation: {name} must be a number with {rng}; got {value!r}")
    return float(value)


def _integer(name: str, value: object, lo: int, hi: int, kind: str, odd: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi or (odd and value % 2 == 0):
        what = "an odd integer" if odd else "an integer"
        raise ValueError(f"{kind} degradation: {name} must be {what} between {lo} and {hi}; got {value!r}")
    return value


def gaussian_kernel(sigma: float | torch.Tensor, size: int) -> torch.Tensor:
    """Gaussian weights exp(−j²/2σ²), j = −r..r, normalised to sum 1 (float64; one row per σ)."""
    sigma = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1, 1)
    r = size // 2
    j = torch.arange(-r, r + 1, dtype=torch.float64)
    w = torch.exp(-(j**2) / (2.0 * sigma**2))
    w = w / w.sum(dim=1, keepdim=True)
    return w if w.shape[0] > 1 else w[0]


def convolution_matrix(n: int, kernel: torch.Tensor) -> torch.Tensor:
    """The n×n matrix of a 1-D convolution with reflect padding (…2 1 | 0 1 2 … n−1 | n−2 …);
    a K×size stack of kernels gives K×n×n."""
    size = kernel.shape[-1]
    r = size // 2
    if r > n - 1:
        raise ValueError(f"kernel size {size} is too large for a side of {n} pixels "
                         f"(reflect padding allows at most {2 * n - 1}); choose a smaller kernel_size")
    m = torch.arange(n)[:, None] + torch.arange(-r, r + 1)[None, :]  # source pixel of tap j for output i
    m = torch.where(m < 0, -m, torch.where(m > n - 1, 2 * (n - 1) - m, m))
    k = kernel.reshape(-1, size).to(torch.float64)
    A = torch.zeros(k.shape[0], n, n, dtype=torch.float64)
    A.scatter_add_(2, m.expand(k.shape[0], n, size), k[:, None, :].expand(k.shape[0], n, size).contiguous())
    return A if kernel.dim() > 1 else A[0]


class Degradation:
    """D(x, t) for t = 0..T. Subclasses set `kind`, `params` and implement `_apply`."""

    kind: ClassVar[str] = ""
    needs_noise: ClassVar[bool] = False

    def __init__(self, T: int | None = None, schedule: str = "linear") -> None:
        T = DEFAULT_T[self.kind] if T is None else T
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


class _Separable(Degradation):
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


class GaussianBlur(_Separable):
    """The report's blur: σ_t = σ_min + (σ_max − σ_min)·s(t/T), one kernel covering the image."""

    kind = "blur"

    def __init__(self, T: int | None = None, schedule: str = "linear", sigma_min: float = 0.02,
                 sigma_max: float = 5.02, kernel_size: int | None = None) -> None:
        super().__init__(T, schedule)
        self.sigma_min = _number("sigma_min", sigma_min, MIN_SIGMA, 100.0, self.kind)
        self.sigma_max = _number("sigma_max", sigma_max, MIN_SIGMA, 100.0, self.kind)
        if self.sigma_max < self.sigma_min:
            raise ValueError(f"{self.kind} degradation: sigma_max must be ≥ sigma_min; got "
                             f"sigma_min={sigma_min}, sigma_max={sigma_max}")
        self.kernel_size = None if kernel_size is None else _integer("kernel_size", kernel_size, 1, MAX_KERNEL,
                                                                      self.kind, odd=True)

    @property
    def params(self) -> dict:
        return {"sigma_min": self.sigma_min, "sigma_max": self.sigma_max, "kernel_size": self.kernel_size}

    @property
    def sigmas(self) -> torch.Tensor:
        """σ_t for t = 0..T (float64)."""
        return self.sigma_min + (self.sigma_max - self.sigma_min) * self.s

    def strength_curve(self) -> tuple[str, list[float]]:
        return "blur σ_t", self.sigmas.tolist()

    def _matrices(self, n: int) -> torch.Tensor:
        size = self.kernel_size or 2 * n - 1  # default: every output pixel sees the whole image
        return convolution_matrix(n, gaussian_kernel(self.sigmas, size).reshape(-1, size))


class CumulativeBlur(_Separable):
    """The paper's blur: a small Gaussian kernel G applied n(t) = round(T·s(t/T)) times."""

    kind = "cumulative-blur"

    def __init__(self, T: int | None = None, schedule: str = "linear", sigma: float = 1.0,
                 kernel_size: int = 5) -> None:
        super().__init__(T, schedule)
        self.sigma = _number("sigma", sigma, MIN_SIGMA, 100.0, self.kind)
        self.kernel_size = _integer("kernel_size", kernel_size, 3, MAX_KERNEL, self.kind, odd=True)

    @property
    def params(self) -> dict:
        return {"sigma": self.sigma, "kernel_size": self.kernel_size}

    @property
    def applications(self) -> list[int]:
        """n(t), the number of times the kernel has been applied at t = 0..T."""
        return torch.round(self.T * self.s).long().tolist()

    def strength_curve(self) -> tuple[str, list[float]]:
        return "kernel applications n(t)", [float(v) for v in self.applications]

    def _matrices(self, n: int) -> torch.Tensor:
        G = convolution_matrix(n, gaussian_kernel(self.sigma, self.kernel_size))
        counts = self.applications
        powers = [torch.eye(n, dtype=torch.float64)]
        for _ in range(max(counts)):
            powers.append(G @ powers[-1])
        return torch.stack([powers[c] for c in counts])


class Pixelate(_Separable):
    """Super-resolution: r_t × r_t blocks, each replaced by its mean (r_0 = H: the identity)."""

    kind = "pixelate"

    def __init__(self, T: int | None = None, schedule: str = "linear", min_size: int = 4) -> None:
        super().__init__(T, schedule)
        self.min_size = _integer("min_size", min_size, 1, 64, self.kind)

    @property
    def params(self) -> dict:
        return {"min_size": self.min_size}

    def resolution(self, n: int = 28) -> list[int]:
        """Blocks per side r_t for a side of n pixels, t = 0..T."""
        lo = min(self.min_size, n)
        return torch.round(n - self.s * (n - lo)).long().tolist()

    def strength_curve(self) -> tuple[str, list[float]]:
        return "blocks per side r_t (28-pixel image)", [float(r) for r in self.resolution(28)]

    def _matrices(self, n: int) -> torch.Tensor:
        mats = []
        for r in self.resolution(n):
            block = torch.arange(n) * r // n  # pixel m belongs to block ⌊m·r/n⌋
            same = (block[:, None] == block[None, :]).double()
            mats.append(same / same.sum(dim=1, keepdim=True))  # average over the block
        return torch.stack(mats)


class Mask(Degradation):
    """Inpainting: pixels whose centre lies within ρ_t = s(t/T)·ρ_max of the image centre take
    the value `fill` (a pixel in [0, 1]; 0 = black). ρ_max reaches past the corners."""

    kind = "mask"

    def __init__(self, T: int | None = None, schedule: str = "linear", fill: float = 0.0) -> None:
        super().__init__(T, schedule)
        self.fill = _number("fill", fill, 0.0, 1.0, self.kind)

    @property
    def params(self) -> dict:
        return {"fill": self.fill}

    def masks(self, h: int, w: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """[T+1, H, W] with 1 where masked."""
        key = ("mask", h, w, str(device))
        if key not in self._cache:
            yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                                    indexing="ij")
            dist = torch.sqrt((yy - (h - 1) / 2) ** 2 + (xx - (w - 1) / 2) ** 2)
            rho = self.s * (float(dist.max()) + 0.5)
            self._cache[key] = (dist[None] < rho[:, None, None]).float().to(device)
        return self._cache[key]

    def strength_curve(self) -> tuple[str, list[float]]:
        return "masked fraction (28×28)", self.masks(28, 28).mean(dim=(1, 2)).tolist()

    def _apply(self, x: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        m = self.masks(x.shape[-2], x.shape[-1], x.device)[t][:, None]
        return (1 - m) * x.float() + m * (self.fill - 0.5)


class Fade(Degradation):
    """D(x, t) = (1 − s_t)·x + s_t·c, c = `target` pixel value (0 = black; MNIST's mean is 0.1307)."""

    kind = "fade"

    def __init__(self, T: int | None = None, schedule: str = "linear", target: float = 0.0) -> None:
        super().__init__(T, schedule)
        self.target = _number("target", target, 0.0, 1.0, self.kind)

    @property
    def params(self) -> dict:
        return {"target": self.target}

    def strength_curve(self) -> tuple[str, list[float]]:
        return "fade weight s_t", self.s.tolist()

    def _apply(self, x: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        s = self.s.to(x.device).float()[t].view(-1, 1, 1, 1)
        return (1 - s) * x.float() + s * (self.target - 0.5)


class NoiseBlur(GaussianBlur):
    """The report's proposed hybrid: blur(x, t) + noise_std·s_t·ε, ε ~ N(0, I) fixed per trajectory."""

    kind = "noise-blur"
    needs_noise = True

    def __init__(self, T: int | None = None, schedule: str = "linear", sigma_min: float = 0.02,
                 sigma_max: float = 5.02, kernel_size: int | None = None, noise_std: float = 0.1) -> None:
        super().__init__(T, schedule, sigma_min, sigma_max, kernel_size)
        self.noise_std = _number("noise_std", noise_std, 0.0, 1.0, self.kind, lo_open=True)

    @property
    def params(self) -> dict:
        return {**super().params, "noise_std": self.noise_std}

    def noise_levels(self) -> torch.Tensor:
        """noise_std·s_t for t = 0..T."""
        return self.noise_std * self.s

    def draw_noise(self, shape: tuple[int, ...], generator: torch.Generator,
                   device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.randn(shape, generator=generator).to(device)

    def noise_term(self, noise: torch.Tensor, t: int) -> torch.Tensor:
        return float(self.noise_levels()[t]) * noise

    def _apply(self, x: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        a = self.noise_levels().to(x.device).float()[t].view(-1, 1, 1, 1)
        return super()._apply(x, t, None) + a * noise.float()


_KINDS: dict[str, type[Degradation]] = {
    "blur": GaussianBlur, "cumulative-blur": CumulativeBlur, "mask": Mask,
    "pixelate": Pixelate, "fade": Fade, "noise-blur": NoiseBlur,
}
_PARAMS = {"blur": {"sigma_min", "sigma_max", "kernel_size"}, "cumulative-blur": {"sigma", "kernel_size"},
           "mask": {"fill"}, "pixelate": {"min_size"}, "fade": {"target"},
           "noise-blur": {"sigma_min", "sigma_max", "kernel_size", "noise_std"}}


def make_degradation(kind: str, T: int | None = None, schedule: str = "linear", **params: object) -> Degradation:
    """Build a validated degradation; unknown parameters are refused with the allowed list."""
    if kind not in _KINDS:
        raise ValueError(f"degradation kind must be one of {', '.join(DEGRADATION_KINDS)}; got {kind!r}")
    unknown = set(params) - _PARAMS[kind]
    if unknown:
        allowed = ", ".join(sorted(_PARAMS[kind])) or "none"
        raise ValueError(f"unknown parameter(s) {sorted(unknown)} for the {kind} degradation; allowed: {allowed}")
    return _KINDS[kind](T=T, schedule=schedule, **params)


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
