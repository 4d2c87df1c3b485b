"""Cold diffusion: Algorithm 3 (training a restorer R) and its samplers (Bansal et al. 2022).

Training (Algorithm 3): t ~ U{1..T}, z_t = D(x, t), loss ‖x − R(z_t, t/T)‖² (or ‖·‖₁).
Sampling from x_T, with x̂0 = R(x_t, t/T) at each visited t (and s the next, smaller t):
    direct    x̂0 = R(x_T, T) in one step
    naive     x_s = D(x̂0, s)
    improved  x_s = x_t − D(x̂0, t) + D(x̂0, s)     (Algorithm 4 in the report)
With all T steps s = t − 1. Starts: "black" (the report: D(black image, T)), "mixture" (the paper:
a Gaussian mixture fitted to fully degraded training images, plus a little noise), or a given x_T
(conditional: a degraded real digit, made with conditional_start).

The mixture is fitted in the PCA space of D(x, T) so its samples stay smooth like real degraded
images. For a checkpoint it is fitted when first needed from a few hundred training images
(seeded) and cached in memory for the session; nothing is stored in the checkpoint.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from diffusion_core.process.degradations import BLACK, Degradation
from diffusion_core.samplers import (
    SampleResult,
    SamplerStep,
    in_inference_mode,
    run_to_end,
    validate_sample_count,
    validate_seed,
)
from diffusion_core.samplers.base import model_call, spaced_timesteps

COLD_SAMPLERS = ("improved", "naive", "direct")
COLD_STARTS = ("mixture", "black")
COLD_LOSSES = ("l2", "l1")
MIXTURE_IMAGES = 300  # training images fitted at load time


def cold_loss(
    model: nn.Module, degradation: Degradation, x: torch.Tensor, generator: torch.Generator | None = None,
    loss: str = "l2", shard: slice = slice(None),
) -> torch.Tensor:
    """Algorithm 3: t ~ U{1..T}, z_t = D(x, t), mean ‖x − R(z_t, t/T)‖² (l2) or |x − R|  (l1).

    t (and any noise) is drawn for the whole batch x; the loss is over x[shard] (one rank's part)."""
    if loss not in COLD_LOSSES:
        raise ValueError(f"cold loss must be one of {', '.join(COLD_LOSSES)}; got {loss!r}")
    T = degradation.T
    t = torch.randint(1, T + 1, (x.shape[0],), generator=generator).to(x.device)
    noise = degradation.draw_noise(tuple(x.shape), generator, x.device)
    x, t = x[shard], t[shard]
    noise = None if noise is None else noise[shard]
    z_t = degradation(x, t, noise)
    x_hat = model(z_t, t.float() / T).float()
    err = x.float() - x_hat
    return torch.mean(err**2) if loss == "l2" else torch.mean(err.abs())


# -- samplers: generators of SamplerStep(t, x_t, x̂0), ending with t = 0 --------------------------

def _timesteps(degradation: Degradation, steps: int | None, t_start: int | None) -> list[int]:
    t0 = degradation.T if t_start is None else t_start
    if isinstance(t0, bool) or not isinstance(t0, int) or not 1 <= t0 <= degradation.T:
        raise ValueError(f"t_start must be an integer between 1 and T={degradation.T}; got {t_start!r}")
    return spaced_timesteps(t0, t0 if steps is None else steps)


def direct_steps(model: nn.Module, degradation: Degradation, x_T: torch.Tensor,
                 t_start: int | None = None) -> Iterator[SamplerStep]:
    """Direct reconstruction: x̂0 = R(x_T, T)."""
    t = _timesteps(degradation, 1, t_start)[0]
    x0 = model_call(model, x_T, t, degradation.T)
    yield SamplerStep(t, x_T, x0)
    yield SamplerStep(0, x0, x0)


def naive_steps(model: nn.Module, degradation: Degradation, x_T: torch.Tensor, noise: torch.Tensor | None = None,
                steps: int | None = None, t_start: int | None = None) -> Iterator[SamplerStep]:
    """x_s = D(x̂0, s) with x̂0 = R(x_t, t)."""
    ts = _timesteps(degradation, steps, t_start)
    x = x_T
    for i, t in enumerate(ts):
        s = ts[i + 1] if i + 1 < len(ts) else 0
        x0 = model_call(model, x, t, degradation.T)
        yield SamplerStep(t, x, x0)
        x = degradation(x0, s, noise)
    yield SamplerStep(0, x, x)


def improved_steps(model: nn.Module, degradation: Degradation, x_T: torch.Tensor, noise: torch.Tensor | None = None,
                   steps: int | None = None, t_start: int | None = None) -> Iterator[SamplerStep]:
    """Algorithm 4: x_s = x_t − D(x̂0, t) + D(x̂0, s) with x̂0 = R(x_t, t)."""
    ts = _timesteps(degradation, steps, t_start)
    x = x_T
    for i, t in enumerate(ts):
        s = ts[i + 1] if i + 1 < len(ts) else 0
        x0 = model_call(model, x, t, degradation.T)
        yield SamplerStep(t, x, x0)
        x = x - degradation(x0, t, noise) + degradation(x0, s, noise)
    yield SamplerStep(0, x, x)


def cold_sampler_steps(
    model: nn.Module, degradation: Degradation, sampler: str, x_T: torch.Tensor,
    noise: torch.Tensor | None = None, steps: int | None = None, t_start: int | None = None,
) -> Iterator[SamplerStep]:
    """Frames of one cold reverse run from x_T (under torch.inference_mode while computing)."""
    if sampler not in COLD_SAMPLERS:
        raise ValueError(f"cold sampler must be one of {', '.join(COLD_SAMPLERS)}; got {sampler!r}")
    _timesteps(degradation, steps, t_start)  # validate before the first frame is asked for
    model.eval()
    if sampler == "direct":
        it = direct_steps(model, degradation, x_T, t_start)
    elif sampler == "naive":
        it = naive_steps(model, degradation, x_T, noise, steps, t_start)
    else:
        it = improved_steps(model, degradation, x_T, noise, steps, t_start)
    return in_inference_mode(it)


# -- starts ----------------------------------------------------------------------------------------

def black_start(degradation: Degradation, n: int, image_shape: tuple[int, int, int] = (1, 28, 28),
                noise: torch.Tensor | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
    """x_T = D(black image, T): black itself for blur, mask and pixelation (the report's start)."""
    black = torch.full((n, *image_shape), BLACK, device=device)
    return degradation(black, degradation.T, noise)


@dataclass
class MixtureStart:
    """A Gaussian mixture over fully degraded images D(x, T), in their top principal components:
    x_T = mean + V·z + noise_std·ε, z ~ Σ_k π_k N(μ_k, Σ_k)."""

    image_shape: tuple[int, ...]
    mean: torch.Tensor  # [D]
    basis: torch.Tensor  # [D, d] principal directions V
    weights: torch.Tensor  # [K] π_k
    means: torch.Tensor  # [K, d] μ_k
    chol: torch.Tensor  # [K, d, d] Cholesky factors of Σ_k
    noise_std: float

    @property
    def n_components(self) -> int:
        return int(self.weights.numel())

    def sample(self, n: int, generator: torch.Generator, device: torch.device | str = "cpu") -> torch.Tensor:
        """n draws (N×C×H×W) using only `generator`: same seed, same images."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn((n, self.means.shape[1]), generator=generator, dtype=torch.float64)
        z = self.means[k] + (self.chol[k] @ eps[:, :, None])[:, :, 0]
        x = self.mean + z @ self.basis.T
        x = x + self.noise_std * torch.randn(x.shape, generator=generator, dtype=torch.float64)
        return x.float().reshape(n, *self.image_shape).to(device)


def fit_mixture_start(
    degradation: Degradation, images: torch.Tensor, n_components: int = 10, pca_dim: int = 16,
    noise_std: float = 0.01, seed: int = 0,
) -> MixtureStart:
    """Fit the paper's start to D(x, T) of `images` (sklearn GaussianMixture, seeded). Components and
    PCA dimensions shrink to what the number of images supports."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    n = images.shape[0]
    if n < 2:
        raise ValueError(f"the mixture start needs at least 2 training images; got {n}")
    if isinstance(n_components, bool) or not isinstance(n_components, int) or n_components < 1:
        raise ValueError(f"n_components must be a positive integer; got {n_components!r}")
    # hybrids: fit the noise-free part D(x, T, 0); cold_start adds the trajectory's own noise term
    noise = torch.zeros(images.shape) if degradation.needs_noise else None
    with torch.no_grad():
        x_T = degradation(images.float().cpu(), degradation.T, noise).reshape(n, -1).double()
    d = max(1, min(pca_dim, n - 1, x_T.shape[1]))
    mean = x_T.mean(dim=0)
    _, _, vh = torch.linalg.svd(x_T - mean, full_matrices=False)  # principal directions = rows of Vᵀ
    basis = vh[:d].T.contiguous()  # [D, d]
    z = ((x_T - mean) @ basis).numpy()
    k = max(1, min(n_components, n // 4))
    gm = GaussianMixture(n_components=k, covariance_type="full", reg_covar=1e-6, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # degenerate D(x, T) (e.g. fully masked) is fine
        gm.fit(z)
    weights = torch.as_tensor(gm.weights_, dtype=torch.float64)
    return MixtureStart(
        image_shape=tuple(images.shape[1:]), mean=mean, basis=basis,
        weights=weights / weights.sum(), means=torch.as_tensor(gm.means_, dtype=torch.float64),
        chol=torch.linalg.cholesky(torch.as_tensor(gm.covariances_, dtype=torch.float64)),
        noise_std=float(noise_std),
    )


_MIXTURES: dict[tuple, MixtureStart] = {}


def dataset_mixture(degradation: Degradation, dataset: str = "mnist", n_images: int = MIXTURE_IMAGES,
                    seed: int = 0, root: str | None = None) -> MixtureStart:
    """The mixture start of a cold checkpoint: fitted to D(x, T) of `n_images` training images chosen
    with `seed`, cached per (dataset, root, degradation, n_images, seed) for this process."""
    from diffusion_core.io.data import DatasetUnavailableError, load_dataset

    key = (dataset, root, json.dumps(degradation.config(), sort_keys=True), n_images, seed)
    if key not in _MIXTURES:
        try:
            data = load_dataset(dataset, "train", root=root, download=False)
        except DatasetUnavailableError as exc:
            raise DatasetUnavailableError(f"{exc} (The mixture start is fitted to training images; "
                                          "start from 'black' to sample without them.)") from None
        idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n_images]
        _MIXTURES[key] = fit_mixture_start(degradation, data.images[idx], seed=seed)
    return _MIXTURES[key]


def conditional_start(degradation: Degradation, x: torch.Tensor, seed: int = 0,
                      t: int | None = None) -> torch.Tensor:
    """x_t = D(x, t) of real images (default t = T) for conditional generation. Hybrids draw ε from
    `seed` exactly as cold_start does, so sampling with the same seed continues the same trajectory."""
    validate_seed(seed)
    noise = degradation.draw_noise(tuple(x.shape), torch.Generator().manual_seed(seed), x.device)
    return degradation(x, degradation.T if t is None else t, noise)


def cold_start(
    degradation: Degradation, start: str | torch.Tensor, n: int, generator: torch.Generator,
    mixture: MixtureStart | None = None, image_shape: tuple[int, int, int] = (1, 28, 28),
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(x_T, ε) for a start: "black", "mixture" (needs `mixture`) or a given N×C×H×W x_T. ε is the
    hybrid's trajectory noise (None for deterministic degradations), drawn from `generator`."""
    if isinstance(start, torch.Tensor):
        if start.dim() != 4:
            raise ValueError(f"a conditional start must be degraded images N×C×H×W; got shape {tuple(start.shape)}")
        x_T = start.float().to(device)
        return x_T, degradation.draw_noise(tuple(x_T.shape), generator, device)
    if start not in COLD_STARTS:
        raise ValueError(f"start must be one of {', '.join(COLD_STARTS)} or a tensor of degraded images; "
                         f"got {start!r}")
    validate_sample_count(n)
    if start == "black":
        noise = degradation.draw_noise((n, *image_shape), generator, device)
        return black_start(degradation, n, image_shape, noise, device), noise
    if mixture is None:
        raise ValueError("start 'mixture' needs a fitted mixture (fit_mixture_start or dataset_mixture)")
    x_T = mixture.sample(n, generator, device)
    noise = degradation.draw_noise(tuple(x_T.shape), generator, device)
    if noise is not None:
        x_T = x_T + degradation.noise_term(noise, degradation.T)
    return x_T, noise


def cold_steps(
    model: nn.Module, degradation: Degradation, sampler: str = "improved", start: str | torch.Tensor = "black",
    n: int = 16, seed: int = 0, steps: int | None = None, mixture: MixtureStart | None = None,
    t_start: int | None = None, device: torch.device | str = "cpu",
) -> Iterator[SamplerStep]:
    """Frames of one seeded cold run: start → x_T, then the chosen sampler."""
    validate_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x_T, noise = cold_start(degradation, start, n, generator, mixture, device=device)
    return cold_sampler_steps(model, degradation, sampler, x_T, noise, steps, t_start)


def sample_cold(
    model: nn.Module, degradation: Degradation, sampler: str = "improved", start: str | torch.Tensor = "black",
    n: int = 16, seed: int = 0, steps: int | None = None, mixture: MixtureStart | None = None,
    record: tuple[int, ...] = (), device: torch.device | str = "cpu",
) -> SampleResult:
    return run_to_end(cold_steps(model, degradation, sampler, start, n, seed, steps, mixture, device=device), record)
