"""The DDPM variational bound in bits per dimension (Ho et al. 2020, eq. 5), for a Gaussian (noise) model:

    −log p(x0) ≤ L_T + Σ_{t=2..T} L_{t−1} + L_0
    L_T     = KL(q(z_T | x0) ‖ N(0, I))
    L_{t−1} = KL(q(z_{t−1} | z_t, x0) ‖ p(z_{t−1} | z_t)),  q: mean μ̃_t, variance β̃_t = (1−ᾱ_{t−1})/(1−ᾱ_t)·β_t;
              p: the report's sampler, mean (z_t − β_t/√(1−ᾱ_t)·ε̂)/√α_t, variance β_t (Algorithm 2)
    L_0     = −log p(x0 | z_1): that mean and variance at t = 1, integrated over each of the 256 pixel levels
              (a pixel level is 1/255 wide in data space; the edges take the tails)

Σ L_{t−1} is estimated with `t_samples` timesteps per image: 2..T is cut into ≤ t_samples ranges evenly spaced
in log t (the first timesteps, which carry most of the bound, stay single), each image draws its own t in each
range (weighted by the range's width) and its own z_t ~ q(z_t | x0). That is unbiased; the standard error over the
images includes the timestep draws. With t_samples None every t is used (exact but for z_t). In bits per
dimension: the total over the D pixels, divided by D·ln 2.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from diffusion_core.process import GaussianProcess
from diffusion_core.process.gaussian import q_sample
from diffusion_core.samplers.base import model_call

HALF_BIN = 0.5 / 255  # half a pixel level in data space (x/255 − 0.5)
BUCKETS = 10


def _normal_kl(mean1, var1, mean2, var2):
    """KL(N(mean1, var1) ‖ N(mean2, var2)) per element."""
    return 0.5 * (torch.log(var2 / var1) + (var1 + (mean1 - mean2) ** 2) / var2 - 1.0)


def _log_cdf(x):
    return torch.special.log_ndtr(x)


def discretised_gaussian_nll(x0: torch.Tensor, mean: torch.Tensor, var: float) -> torch.Tensor:
    """−log P(x0) per pixel under N(mean, var) integrated over x0's pixel level (edges: the tails)."""
    sd = math.sqrt(var)
    upper = (x0 + HALF_BIN - mean) / sd
    lower = (x0 - HALF_BIN - mean) / sd
    log_upper_cdf = _log_cdf(upper)  # P(X < upper) for the lowest level
    log_lower_sf = _log_cdf(-lower)  # P(X > lower) for the highest level
    mid = torch.log((torch.special.ndtr(upper) - torch.special.ndtr(lower)).clamp_min(1e-12))
    log_p = torch.where(x0 < -0.5 + HALF_BIN, log_upper_cdf, torch.where(x0 > 0.5 - HALF_BIN, log_lower_sf, mid))
    return -log_p


def _reverse_mean(z: torch.Tensor, eps_hat: torch.Tensor, beta: float, ab: float) -> torch.Tensor:
    return (z - beta / math.sqrt(1.0 - ab) * eps_hat) / math.sqrt(1.0 - beta)


def strata(T: int, t_samples: int | None) -> list[tuple[int, int]]:
    """Ranges [lo, hi) covering 2..T: every t on its own when t_samples is None, else at most t_samples ranges
    evenly spaced in log t — the first few timesteps, which carry most of the bound, stay single."""
    if t_samples is None:
        return [(t, t + 1) for t in range(2, T + 1)]
    edges = np.unique(np.floor(np.exp(np.linspace(math.log(2), math.log(T + 1), t_samples + 1))).astype(int))
    edges[-1] = T + 1
    return [(int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:], strict=True) if hi > lo]


def variational_bound(process: GaussianProcess, model: nn.Module, images: torch.Tensor,
                      t_samples: int | None = 50, seed: int = 0,
                      on_progress: Callable[[int, int], None] | None = None) -> dict:
    """The bound for each of the data-space images (N×C×H×W), in bits per dimension: {"bpd" (mean over images),
    "se", "terms" (prior L_T, decoder L_0, diffusion Σ L_{t−1}: mean bpd each), "by_t" (Σ L_{t−1} split into
    BUCKETS buckets of t/T: mean bpd each), "n", "t_samples"}; on_progress(done, total) after each stratum."""
    if not process.noise_levels:
        raise ValueError(f"the variational bound is for noise models; this is a {process.type} model")
    T = process.T
    if t_samples is not None and (isinstance(t_samples, bool) or not isinstance(t_samples, int)
                                  or not 1 <= t_samples <= T - 1):
        raise ValueError(f"t_samples must be a whole number from 1 to T − 1 = {T - 1}, or None for all; "
                         f"got {t_samples!r}")
    if T < 2:
        raise ValueError("the variational bound needs T ≥ 2")
    x0 = images.float()
    n, dims = len(x0), x0[0].numel()
    betas, abs_ = process.schedule.betas.double().tolist(), process.schedule.alpha_bars.double().tolist()
    generator = torch.Generator().manual_seed(seed)
    model = process.eps_model(model).eval()  # ε̂ whatever the network predicts
    per_image = lambda v: v.double().flatten(1).sum(1)  # noqa: E731  nats per image
    with torch.no_grad():
        ab_T = abs_[T]
        prior = per_image(_normal_kl(math.sqrt(ab_T) * x0.double(), torch.tensor(1.0 - ab_T, dtype=torch.float64),
                                     torch.zeros(()), torch.ones((), dtype=torch.float64)))
        eps = torch.randn(x0.shape, generator=generator)
        z1 = q_sample(process.schedule, x0, torch.ones(n, dtype=torch.long), eps)
        mean1 = _reverse_mean(z1, model_call(model, z1, 1, T), betas[1], abs_[1])
        decoder = per_image(discretised_gaussian_nll(x0, mean1, betas[1]))
        diffusion = torch.zeros(n, dtype=torch.float64)
        by_t = np.zeros(BUCKETS)
        view = (n, *([1] * (x0.dim() - 1)))
        beta_all, ab_all = torch.tensor(betas), torch.tensor(abs_)
        parts = strata(T, t_samples)
        for k, (lo, hi) in enumerate(parts):  # one t per image in each stratum lo..hi−1, standing for all hi − lo
            t = torch.randint(lo, hi, (n,), generator=generator)
            beta, ab, ab_prev = beta_all[t].view(view), ab_all[t].view(view), ab_all[t - 1].view(view)
            z = q_sample(process.schedule, x0, t, torch.randn(x0.shape, generator=generator))
            q_mean = (ab_prev.sqrt() * beta / (1 - ab)) * x0 + ((1 - beta).sqrt() * (1 - ab_prev) / (1 - ab)) * z
            q_var = (1 - ab_prev) / (1 - ab) * beta
            eps_hat = model(z, t.float() / T).double()
            p_mean = (z - beta / (1 - ab).sqrt() * eps_hat) / (1 - beta).sqrt()
            term = per_image(_normal_kl(q_mean, q_var.expand_as(q_mean), p_mean, beta.expand_as(q_mean))) * (hi - lo)
            diffusion += term
            by_t += np.bincount(((t - 1) * BUCKETS // T).clamp(max=BUCKETS - 1).numpy(), weights=term.numpy(),
                                minlength=BUCKETS) / n
            if on_progress is not None:
                on_progress(k + 1, len(parts))
    to_bpd = 1.0 / (dims * math.log(2.0))
    total = (prior + decoder + diffusion) * to_bpd
    return {"bpd": float(total.mean()), "se": float(total.std()) / math.sqrt(n) if n > 1 else None,
            "terms": {"prior L_T": float(prior.mean()) * to_bpd, "decoder L_0": float(decoder.mean()) * to_bpd,
                      "diffusion Σ L_t−1": float(diffusion.mean()) * to_bpd},
            "by_t": (by_t * to_bpd).tolist(), "n": n, "t_samples": t_samples}
