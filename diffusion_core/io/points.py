"""Point datasets for the 2-D lab: Gaussian mixtures with known parameters (and their exact score under the
forward process), two moons, rings, and points a user draws.

Under z_t = a·x + s·ε (a = √ᾱ_t, s = √(1−ᾱ_t)) a mixture Σ_k π_k N(μ_k, Σ_k) stays a mixture:
    p_t(z) = Σ_k π_k N(z; a·μ_k, C_k),  C_k = a²Σ_k + s²I,
    ∇ log p_t(z) = −Σ_k r_k(z) C_k⁻¹ (z − a·μ_k),  r_k = the posterior weight of component k,
and the ideal ε-predictor is ε̂(z, t) = −s·∇ log p_t(z).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

MAX_POINTS = 20_000
DRAWN_SPREAD = 0.08  # drawn data: a small Gaussian (this standard deviation) around each drawn point


@dataclass(frozen=True)
class GaussianMixture:
    """Σ_k weights[k]·N(means[k], covs[k]) in `dim` dimensions (float64 tensors [K], [K, d], [K, d, d])."""

    weights: torch.Tensor
    means: torch.Tensor
    covs: torch.Tensor

    def __post_init__(self) -> None:
        k, d = self.means.shape
        if self.weights.shape != (k,) or self.covs.shape != (k, d, d):
            raise ValueError(f"a mixture of {k} components in {d} dimensions needs {k} weights and {k} {d}×{d} "
                             f"covariances; got {tuple(self.weights.shape)} and {tuple(self.covs.shape)}")
        if (self.weights <= 0).any() or abs(float(self.weights.sum()) - 1.0) > 1e-6:
            raise ValueError("mixture weights must be positive and sum to 1")
        if (torch.linalg.eigvalsh(self.covs) <= 0).any():
            raise ValueError("every covariance of the mixture must be positive definite")

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def mean(self) -> torch.Tensor:
        return self.weights @ self.means

    def covariance(self) -> torch.Tensor:
        """Σ_k π_k (Σ_k + μ_k μ_kᵀ) − μ μᵀ."""
        m = self.mean()
        second = (self.weights[:, None, None] * (self.covs + self.means[:, :, None] * self.means[:, None, :])).sum(0)
        return second - torch.outer(m, m)

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """n points (float32 [n, d]) drawn with `seed`."""
        g = torch.Generator().manual_seed(seed)
        component = torch.multinomial(self.weights, n, replacement=True, generator=g)
        noise = torch.randn((n, self.dim), generator=g, dtype=torch.float64)
        chol = torch.linalg.cholesky(self.covs)[component]
        return (self.means[component] + (chol @ noise[:, :, None])[:, :, 0]).float()

    def _noised(self, a: float, s: float) -> tuple[torch.Tensor, torch.Tensor]:
        eye = torch.eye(self.dim, dtype=torch.float64)
        return a * self.means, a * a * self.covs + s * s * eye

    def log_density(self, z: torch.Tensor, a: float = 1.0, s: float = 0.0) -> torch.Tensor:
        """log p_t(z) of the noised mixture at points z [n, d] (a = 1, s = 0: the data's own density)."""
        means, covs = self._noised(a, s)
        dist = torch.distributions.MultivariateNormal(means, covariance_matrix=covs)
        return torch.logsumexp(dist.log_prob(z.double()[:, None, :]) + self.weights.log(), dim=1)

    def score(self, z: torch.Tensor, a: float = 1.0, s: float = 0.0) -> torch.Tensor:
        """∇_z log p_t(z) in closed form, [n, d] float64."""
        means, covs = self._noised(a, s)
        dist = torch.distributions.MultivariateNormal(means, covariance_matrix=covs)
        z = z.double()
        r = torch.softmax(dist.log_prob(z[:, None, :]) + self.weights.log(), dim=1)  # [n, K]
        diff = z[:, None, :] - means[None]  # [n, K, d]
        per = -torch.linalg.solve(covs[None], diff[..., None])[..., 0]  # −C_k⁻¹(z − aμ_k)
        return (r[..., None] * per).sum(1)


    def posterior_mean(self, z: torch.Tensor, a: float, s: float) -> torch.Tensor:
        """E[x0 | z] for z = a·x0 + s·ε (a > 0 or s > 0), [n, d] float64: Σ_k r_k(z)·(μ_k + a·C_k·S_k⁻¹(z − a·μ_k)),
        S_k = a²C_k + s²I and r_k the component's posterior weight."""
        means, covs = self._noised(a, s)
        dist = torch.distributions.MultivariateNormal(means, covariance_matrix=covs)
        z = z.double()
        r = torch.softmax(dist.log_prob(z[:, None, :]) + self.weights.log(), dim=1)  # [n, K]
        solved = torch.linalg.solve(covs[None], (z[:, None, :] - means[None])[..., None])[..., 0]  # S_k⁻¹(z − aμ_k)
        per = self.means[None] + a * (self.covs[None] @ solved[..., None])[..., 0]  # [n, K, d]
        return (r[..., None] * per).sum(1)

    def flow_velocity(self, z: torch.Tensor, t: float) -> torch.Tensor:
        """The marginal velocity of the linear path z_t = (1 − t)·x0 + t·ε at time t, in closed form:
        v(z, t) = E[ε − x0 | z_t = z] with E[ε | z] = (z − (1 − t)·E[x0 | z])/t (t = 0: E[ε] = 0, v = −z)."""
        if not 0.0 <= t <= 1.0:
            raise ValueError(f"the path's time t must lie in [0, 1]; got {t!r}")
        z = z.double()
        if t == 0.0:
            return -z
        x0 = self.posterior_mean(z, 1.0 - t, t)
        return (z - (1.0 - t) * x0) / t - x0


class ExactVelocity(nn.Module):
    """The exact velocity of a mixture on the linear path, called as model(z_t, t) like a flow network."""

    def __init__(self, mixture: GaussianMixture) -> None:
        super().__init__()
        self.mixture = mixture

    def forward(self, z: torch.Tensor, t_frac: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(z, dtype=torch.float64)
        for t in t_frac.double().unique().tolist():  # the samplers call it at one t per batch
            rows = t_frac.double() == t
            out[rows] = self.mixture.flow_velocity(z[rows], t)
        return out.float()


class ExactEps(nn.Module):
    """The ideal ε-predictor of a mixture on a schedule's ᾱ: model(z_t, t/T) = −√(1−ᾱ_t)·∇ log p_t(z_t)."""

    def __init__(self, mixture: GaussianMixture, alpha_bars: torch.Tensor) -> None:
        super().__init__()
        self.mixture, self.alpha_bars, self.T = mixture, alpha_bars.double(), len(alpha_bars) - 1

    def forward(self, z: torch.Tensor, t_frac: torch.Tensor) -> torch.Tensor:
        t = (t_frac.double() * self.T).round().long().clamp(1, self.T)
        out = torch.empty_like(z, dtype=torch.float64)
        for step in t.unique().tolist():  # the samplers call it at one t per batch
            rows = t == step
            ab = float(self.alpha_bars[step])
            out[rows] = -math.sqrt(1 - ab) * self.mixture.score(z[rows], math.sqrt(ab), math.sqrt(1 - ab))
        return out.float()


def isotropic_mixture(means: list[tuple[float, ...]], std: float) -> GaussianMixture:
    """An equal mixture of N(mean, std²·I) at each of `means`."""
    k, d = len(means), len(means[0])
    w = torch.full((k,), 1.0 / k, dtype=torch.float64)
    return GaussianMixture(w, torch.tensor(means, dtype=torch.float64),
                           (std**2) * torch.eye(d, dtype=torch.float64).repeat(k, 1, 1))


def mixture_presets() -> dict[str, GaussianMixture]:
    """The 2-D lab's mixtures with known parameters."""
    ring = [(2 * math.cos(2 * math.pi * i / 8), 2 * math.sin(2 * math.pi * i / 8)) for i in range(8)]
    return {
        "8 Gaussians on a ring": isotropic_mixture(ring, 0.15),
        "2 Gaussians, unequal": GaussianMixture(
            torch.tensor([0.7, 0.3], dtype=torch.float64), torch.tensor([[-1.0, 0.0], [1.5, 1.0]], dtype=torch.float64),
            torch.tensor([[[0.3, 0.15], [0.15, 0.2]], [[0.05, 0.0], [0.0, 0.3]]], dtype=torch.float64)),
        "4 Gaussians on a grid": isotropic_mixture([(-1.0, -1.0), (-1.0, 1.0), (1.0, -1.0), (1.0, 1.0)], 0.25),
    }


def _count(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 2 <= n <= MAX_POINTS:
        raise ValueError(f"the number of points must be a whole number from 2 to {MAX_POINTS:,}; got {n!r}")
    return n


def two_moons(n: int, seed: int = 0, noise: float = 0.08) -> torch.Tensor:
    """Two interleaved half circles (scikit-learn's make_moons, centred and scaled to unit spread)."""
    from sklearn.datasets import make_moons

    x, _ = make_moons(_count(n), noise=noise, random_state=seed)
    return torch.from_numpy((x - [0.5, 0.25]) / 0.7).float()


def rings(n: int, seed: int = 0, noise: float = 0.05) -> torch.Tensor:
    """Two concentric circles, radius 1 and 2 (half the points each), with Gaussian jitter."""
    g = torch.Generator().manual_seed(seed)
    n = _count(n)
    radius = torch.where(torch.arange(n) % 2 == 0, 1.0, 2.0)
    angle = 2 * math.pi * torch.rand(n, generator=g)
    x = torch.stack([radius * angle.cos(), radius * angle.sin()], dim=1)
    return x + noise * torch.randn((n, 2), generator=g)


def drawn_mixture(points: np.ndarray | list, spread: float = DRAWN_SPREAD) -> GaussianMixture:
    """The density of drawn points (in data coordinates, [m, 2]): an equal mixture of N(point, spread²·I), whose
    score is then known exactly. ValueError saying what is wrong with the drawing."""
    p = np.asarray(points, dtype=np.float64)
    if p.size == 0:
        raise ValueError("nothing is drawn yet: click on the canvas (or type points) to place at least 2 points")
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"points must be pairs x, y; got an array shaped {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError("points must be finite numbers")
    if len(p) < 2:
        raise ValueError("a single point is no distribution to learn: place at least 2 points")
    if np.ptp(p, axis=0).max() < 1e-6:
        raise ValueError(f"all {len(p)} points are at the same place: spread them out")
    if len(p) > 2000:
        raise ValueError(f"at most 2,000 drawn points; got {len(p):,}")
    return isotropic_mixture([tuple(row) for row in p.tolist()], spread)
