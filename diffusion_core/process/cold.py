"""Cold diffusion (Bansal et al. 2022): Algorithm 3 (training a restorer R), the starts of a reverse run,
and the cold process built on them (its samplers are in samplers/cold.py).

Training (Algorithm 3): t ~ U{1..T}, z_t = D(x, t), loss ‖x − R(z_t, t/T)‖² (or ‖·‖₁).
Starts: "black" (the report: D(black image, T)), "mixture" (the paper:
a Gaussian mixture fitted to degraded training images, plus a little noise), or a given x_T
(conditional: a degraded real digit, made with conditional_start).

The mixture is fitted in the PCA space of D(x, t) so its samples stay smooth like real degraded
images, at t = the degradation's generation_t (T, except blur: σ_t ≈ 2.5, where the digit's class survives);
the restorer then walks back from there. A shipped checkpoint reads the rich fit `ship` stored for it
(SHIPPED_FIT, checkpoints/mixtures/, io/mixtures.py); any other fits LIVE_FIT when first needed (seeded),
cached in memory for the session.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from diffusion_core.process.base import DiffusionProcess, SamplerChoice, Start
from diffusion_core.process.degradations import BLACK, Degradation, degradation_from_config
from diffusion_core.process.runs import SeedBatch, model_call, validate_sample_count, validate_seed

COLD_STARTS = ("mixture", "black")
COLD_LOSSES = ("l2", "l1")


@dataclass(frozen=True)
class MixtureFit:
    """How rich a mixture start is: training images fitted, components, PCA dimensions."""

    images: int
    components: int
    pca_dim: int


# What `ship` fits once and stores beside a cold checkpoint (io/mixtures.py): on the blur card's model FID 7.9× the
# floor, a 17–40 s fit on 2 cores. A model without a stored fit gets LIVE_FIT on first use (about 5 s; 13.7× there).
# benchmarks/cold_generation.py measured the steps between (the blur card's table).
SHIPPED_FIT = MixtureFit(images=4500, components=120, pca_dim=96)
LIVE_FIT = MixtureFit(images=1000, components=30, pca_dim=48)
MIXTURE_NOISE = 0.01  # the paper's small perturbation of the start against collapse


def cold_loss_terms(
    model: nn.Module, degradation: Degradation, x: torch.Tensor, generator: torch.Generator | None = None,
    loss: str = "l2", shard: slice = slice(None), t: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Algorithm 3: t ~ U{1..T} (or the given t), z_t = D(x, t), mean ‖x − R(z_t, t/T)‖² (l2) or |x − R| (l1).
    Returns (that mean, t, each image's own mean, detached).

    t (and any noise) is drawn for the whole batch x; the loss is over x[shard] (one rank's part)."""
    if loss not in COLD_LOSSES:
        raise ValueError(f"cold loss must be one of {', '.join(COLD_LOSSES)}; got {loss!r}")
    T = degradation.T
    t = (torch.randint(1, T + 1, (x.shape[0],), generator=generator) if t is None else t.cpu()).to(x.device)
    noise = degradation.draw_noise(tuple(x.shape), generator, x.device)
    x, t = x[shard], t[shard]
    noise = None if noise is None else noise[shard]
    z_t = degradation(x, t, noise)
    x_hat = model(z_t, t.float() / T).float()
    err = x.float() - x_hat
    per_pixel = err**2 if loss == "l2" else err.abs()
    return torch.mean(per_pixel), t, per_pixel.detach().flatten(1).mean(1)


def cold_loss(model: nn.Module, degradation: Degradation, x: torch.Tensor, generator: torch.Generator | None = None,
              loss: str = "l2", shard: slice = slice(None)) -> torch.Tensor:
    """Algorithm 3's loss (see cold_loss_terms)."""
    return cold_loss_terms(model, degradation, x, generator, loss, shard)[0]


# -- starts ----------------------------------------------------------------------------------------

def black_start(degradation: Degradation, n: int, image_shape: tuple[int, int, int] = (1, 28, 28),
                noise: torch.Tensor | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
    """x_T = D(black image, T): black itself for blur, mask and pixelation (the report's start)."""
    black = torch.full((n, *image_shape), BLACK, device=device)
    return degradation(black, degradation.T, noise)


@dataclass
class MixtureStart:
    """A Gaussian mixture over degraded images D(x, t), in their top principal components:
    x_t = mean + V·z + noise_std·ε, z ~ Σ_k π_k N(μ_k, Σ_k), fitted to D(x, t)."""

    image_shape: tuple[int, ...]
    mean: torch.Tensor  # [D]
    basis: torch.Tensor  # [D, d] principal directions V
    weights: torch.Tensor  # [K] π_k
    means: torch.Tensor  # [K, d] μ_k
    chol: torch.Tensor  # [K, d, d] Cholesky factors of Σ_k
    noise_std: float
    t: int  # the step whose degraded images it models: a run from it starts there

    @property
    def n_components(self) -> int:
        return int(self.weights.numel())

    @property
    def is_point(self) -> bool:
        """Every degraded image was the same (e.g. fully masked): the start is that image plus noise_std·ε."""
        return not bool(self.chol.any())

    def sample(self, n: int, generator: torch.Generator | SeedBatch,
               device: torch.device | str = "cpu") -> torch.Tensor:
        """n draws (N×C×H×W) using only `generator` (a SeedBatch: sample k from its own): same seed, same images."""
        if isinstance(generator, SeedBatch):
            return generator.rows(lambda g: self.sample(1, g, device))
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn((n, self.means.shape[1]), generator=generator, dtype=torch.float64)
        z = self.means[k] + (self.chol[k] @ eps[:, :, None])[:, :, 0]
        x = self.mean + z @ self.basis.T
        x = x + self.noise_std * torch.randn(x.shape, generator=generator, dtype=torch.float64)
        return x.float().reshape(n, *self.image_shape).to(device)


def fit_mixture_start(
    degradation: Degradation, images: torch.Tensor, n_components: int = LIVE_FIT.components,
    pca_dim: int = LIVE_FIT.pca_dim, noise_std: float = MIXTURE_NOISE, seed: int = 0, t: int | None = None,
) -> MixtureStart:
    """Fit the paper's start to D(x, t) (default t = T) of `images` (sklearn GaussianMixture, seeded).
    Components and PCA dimensions shrink to what the number of images supports."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    n = images.shape[0]
    if n < 2:
        raise ValueError(f"the mixture start needs at least 2 training images; got {n}")
    if isinstance(n_components, bool) or not isinstance(n_components, int) or n_components < 1:
        raise ValueError(f"n_components must be a positive integer; got {n_components!r}")
    # hybrids: fit the noise-free part D(x, t, 0); cold_start adds the trajectory's own noise term
    t = degradation.T if t is None else t
    if isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= degradation.T:
        raise ValueError(f"the mixture's t must be an integer between 1 and T={degradation.T}; got {t!r}")
    noise = torch.zeros(images.shape) if degradation.needs_noise else None
    with torch.no_grad():
        x_T = degradation(images.float().cpu(), t, noise).reshape(n, -1).double()
    d = max(1, min(pca_dim, n - 1, x_T.shape[1]))
    mean = x_T.mean(dim=0)
    if float((x_T - mean).abs().max()) < 1e-9:  # every D(x, t) is one image (e.g. fully masked): a point mass
        return MixtureStart(image_shape=tuple(images.shape[1:]), mean=mean, basis=torch.zeros(x_T.shape[1], 1,
                            dtype=torch.float64), weights=torch.ones(1, dtype=torch.float64),
                            means=torch.zeros(1, 1, dtype=torch.float64),
                            chol=torch.zeros(1, 1, 1, dtype=torch.float64), noise_std=float(noise_std), t=t)
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
        noise_std=float(noise_std), t=t,
    )


def conditional_start(degradation: Degradation, x: torch.Tensor, seed: int = 0,
                      t: int | None = None) -> torch.Tensor:
    """x_t = D(x, t) of real images (default t = T) for conditional generation. Hybrids draw ε from
    `seed` exactly as cold_start does, so sampling with the same seed continues the same trajectory."""
    validate_seed(seed)
    noise = degradation.draw_noise(tuple(x.shape), SeedBatch(seed, len(x)), x.device)
    return degradation(x, degradation.T if t is None else t, noise)


def cold_start(
    degradation: Degradation, start: Start, n: int, generator: torch.Generator,
    image_shape: tuple[int, int, int] = (1, 28, 28), device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(x_T, ε) for a start: "black", a fitted MixtureStart or given N×C×H×W x_T ("mixture" must come fitted).
    ε is the hybrid's trajectory noise (None for deterministic degradations), drawn from `generator`."""
    if start.states is not None:
        if start.states.dim() != 4:
            raise ValueError(f"a conditional start must be degraded images N×C×H×W; got shape "
                             f"{tuple(start.states.shape)}")
        x_T = start.states.float().to(device)
        return x_T, degradation.draw_noise(tuple(x_T.shape), generator, device)
    name = start.name or "mixture"
    if start.fitted is None and name not in COLD_STARTS:
        raise ValueError(f"start must be one of {', '.join(COLD_STARTS)} or a tensor of degraded images; "
                         f"got {name!r}")
    validate_sample_count(n)
    if name == "black":
        noise = degradation.draw_noise((n, *image_shape), generator, device)
        return black_start(degradation, n, image_shape, noise, device), noise
    mixture = start.fitted
    if not isinstance(mixture, MixtureStart):
        raise ValueError("start 'mixture' needs a fitted mixture (fit_mixture_start or dataset_mixture)")
    x_T = mixture.sample(n, generator, device)
    noise = degradation.draw_noise(tuple(x_T.shape), generator, device)
    if noise is not None:
        x_T = x_T + degradation.noise_term(noise, mixture.t)
    return x_T, noise


@dataclass(frozen=True)
class Restorer:
    """A cold model as its samplers see it: x̂0 = R(x_t, t/T) and the degradation D(x̂0, t) (with a hybrid's
    fixed trajectory noise, the same at every t)."""

    model: nn.Module
    degradation: Degradation
    noise: torch.Tensor | None = None

    def restore(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """x̂0 = R(x_t, t/T)."""
        return model_call(self.model, x, t, self.degradation.T)

    def degrade(self, x0: torch.Tensor, t: int) -> torch.Tensor:
        """D(x̂0, t)."""
        return self.degradation(x0, t, self.noise)


class ColdProcess(DiffusionProcess):
    """A deterministic (or hybrid) degradation D(x, t) undone by a restorer: the network predicts x̂0."""

    type = "cold"
    variant_defines_output = True
    sampler_noun = "cold sampler"
    model_noun = "cold-diffusion model (one trained with a degradation)"
    family, loss_text, listing = "cold (degradation) models", "‖x − R‖²", 1
    degrades = True
    starts = COLD_STARTS

    def __init__(self, degradation: Degradation, loss: str = "l2") -> None:
        if loss not in COLD_LOSSES:
            raise ValueError(f"cold diffusion loss must be one of {', '.join(COLD_LOSSES)}; got {loss!r}")
        self.degradation = degradation
        self.loss_kind = loss
        self.T = degradation.T
        self.prediction = "x0"
        self._preview_mixture: tuple[int, MixtureStart] | None = None

    @classmethod
    def from_config(cls, diffusion: dict) -> ColdProcess:
        unknown = set(diffusion) - {"type", "degradation", "loss"}
        if unknown:
            raise ValueError(f"unknown cold diffusion field(s) {sorted(unknown)}; allowed: degradation, loss")
        if not isinstance(diffusion.get("degradation"), dict):
            raise ValueError('a cold model needs "diffusion": {"type": "cold", "degradation": {...}}')
        return cls(degradation_from_config(diffusion["degradation"]), diffusion.get("loss", "l2"))

    def config(self) -> dict:
        return {"type": self.type, "degradation": self.degradation.config(), "loss": self.loss_kind}

    def train_flags(self) -> list[str]:
        """The `train` options that give this process (a card's recipe line)."""
        d = self.degradation.config()
        return (["--degradation", d["kind"], "--degradation-T", str(d["T"]), "--degradation-schedule",
                 d.get("schedule", "linear"), "--loss", self.loss_kind]
                + [a for k, v in sorted(d.items()) if k not in ("kind", "T", "schedule") and v is not None
                   for a in ("--degradation-param", f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}")])

    def describe(self) -> str:
        d = self.degradation.config()
        extra = ", ".join(f"{k} = {v}" for k, v in sorted(d.items())
                          if k not in ("kind", "T", "schedule") and v is not None)  # None: the default, e.g. a
        # kernel covering the whole image
        return (f"cold diffusion, {d['kind']} ({d.get('schedule', 'linear')} strength, T = {d['T']}"
                f"{', ' + extra if extra else ''}), {self.loss_kind} loss")

    @property
    def variant(self) -> str | None:
        return self.degradation.kind

    def label(self) -> str:
        return f"cold {self.degradation.kind}"

    def corrupt(self, x0: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = self.degradation.draw_noise(tuple(x0.shape), generator, x0.device)
        return self.degradation(x0, t, noise)

    def loss_terms(self, model: nn.Module, x: torch.Tensor, generator: torch.Generator | None = None,
                   shard: slice = slice(None), y: torch.Tensor | None = None,
                   t: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if y is not None:
            raise ValueError("class-conditional training is for Gaussian-noise diffusion; cold restorers take no label")
        return cold_loss_terms(model, self.degradation, x, generator, self.loss_kind, shard, t)

    def x0_from_output(self, z: torch.Tensor, output: torch.Tensor, t: int) -> torch.Tensor:
        return output

    preview_text = "improved, ≤ 50 steps"

    def preview_choice(self, seen: torch.Tensor, seed: int) -> SamplerChoice:
        """The improved sampler (≤ 50 steps) from a mixture fitted to the images seen (black before 16)."""
        if len(seen) < 16:
            return SamplerChoice("improved", min(50, self.T), seed=seed, start=Start("black"))
        if self._preview_mixture is None or self._preview_mixture[0] != len(seen):  # a small, quick fit
            mixture = fit_mixture_start(self.degradation, seen, n_components=10, pca_dim=16, seed=seed,
                                        t=self.degradation.generation_t)
            self._preview_mixture = (len(seen), mixture)
        mixture = self._preview_mixture[1]
        return SamplerChoice("improved", min(50, mixture.t), seed=seed, start=Start(fitted=mixture),
                             t_start=mixture.t)

    def resolve(self, choice: SamplerChoice) -> SamplerChoice:
        """A mixture start without t_start starts where its mixture is fitted: the degradation's generation_t
        for "mixture", the fitted MixtureStart's own t."""
        fitted = choice.start.fitted
        if fitted is not None:
            if choice.t_start not in (None, fitted.t):
                raise ValueError(f"this mixture models D(x, t) at t = {fitted.t}; "
                                 f"a run from it starts there, not at t_start = {choice.t_start}")
            return dataclasses.replace(choice, t_start=fitted.t)
        if self._is_mixture(choice.start) and choice.t_start is None:
            t = self.degradation.generation_t  # the process's own start: a step count beyond it takes its t steps
            return dataclasses.replace(choice, t_start=t, steps=None if choice.steps is None else min(choice.steps, t))
        return choice

    def fitted_start(self, choice: SamplerChoice) -> tuple[Degradation, int] | None:
        """A "mixture" start is fitted to training images, which the data layer holds: (degradation, t) to fit
        or load it for (io.mixtures.dataset_mixture), handed back as choice.start; None for any other start."""
        if self._is_mixture(choice.start):
            return self.degradation, self.resolve(choice).t_start
        return None

    @staticmethod
    def _is_mixture(start: Start) -> bool:
        """The mixture start, not yet fitted (named, or the default)."""
        return start.states is None and start.fitted is None and start.name in (None, "mixture")

    def start(self, choice: SamplerChoice, n: int, generator: torch.Generator,
              device: torch.device | str = "cpu") -> tuple[torch.Tensor, dict]:
        """choice.start: "black", a fitted MixtureStart (see fitted_start) or a tensor x_T; beside it `noise`, a
        hybrid degradation's fixed trajectory noise (None for the others), for view()."""
        self.check_start(choice.start)
        choice = self.resolve(choice)
        if self._is_mixture(choice.start):
            raise ValueError("a 'mixture' start is fitted to training images: run it through diffusion_core.sampling "
                             "(which loads the fit), or pass the fitted MixtureStart as Start(fitted=…)")
        if choice.t_start not in (None, self.T) and choice.start.name is not None:
            raise ValueError("starting midway (t_start) needs the degraded images x_t or the mixture as the start")
        x_T, noise = cold_start(self.degradation, choice.start, n, generator, device=device)
        return x_T, {"noise": noise}

    def view(self, model: nn.Module, noise: torch.Tensor | None = None) -> Restorer:
        """The restorer and the degradation, as every cold sampler runs over them; `noise`: a hybrid
        degradation's fixed trajectory noise (from start)."""
        return Restorer(model, self.degradation, noise)
