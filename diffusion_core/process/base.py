"""What every diffusion process provides: the one interface the trainer, the sampling loop and the pages use.

A process is built from a checkpoint's "diffusion" config (process_from_config). It owns T and the forward
corruption q(x_t | x_0), what the network predicts and how its output becomes x̂0, the training loss, how a
reverse run starts (x_T), its samplers (registered in diffusion_core/samplers by process type) and a
one-line description. Adding a process is one subclass with its own `type`; nothing else switches on it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from diffusion_core.process.knobs import knob_values
from diffusion_core.process.runs import (
    SamplerStep,
    SeedBatch,
    in_inference_mode,
    seeded_noise,
    validate_sample_count,
    validate_seed,
)
from diffusion_core.process.spacing import SPACINGS, spaced_by

IMAGE_SHAPE = (1, 28, 28)

# The samplers by name, each registered by its own module in diffusion_core/samplers (registry.register): the
# process finds its own here and never imports them. Importing diffusion_core.samplers registers them all.
SAMPLERS: dict[str, Any] = {}


def sampler_spec(name: str) -> Any:
    """The registered sampler `name`; ValueError listing them all if there is none."""
    if not SAMPLERS:
        raise ValueError("no sampler is registered: import diffusion_core.samplers (diffusion_core.sampling does)")
    if name not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}; got {name!r}")
    return SAMPLERS[name]


def samplers_of(view: str) -> tuple[str, ...]:
    """The names of the registered samplers that run over a view ("noise": the σ-space denoiser; "cold"; "flow"),
    in their order."""
    return tuple(s.name for s in sorted(SAMPLERS.values(), key=lambda s: s.order) if s.process == view)


@dataclass(frozen=True)
class Start:
    """Where a reverse run begins, one of three (at most one field set; none: the process's default start):
    name     one of the process's named starts (its `starts`: a cold model's "mixture" or "black")
    states   given states x_t, N×C×H×W (a degraded digit; SDEdit's or Diffuse ↑'s noised images), at the
             choice's t_start
    fitted   a start fitted to training images (a cold model's MixtureStart), which only the data layer can fit
             or load: the process asks for it (fitted_start) and it is handed in here."""

    name: str | None = None
    states: torch.Tensor | None = None
    fitted: Any = None

    def __post_init__(self) -> None:
        if sum(v is not None for v in (self.name, self.states, self.fitted)) > 1:
            raise ValueError("a start is a name, given states or a fitted start: one of them")
        if self.name is not None and not isinstance(self.name, str):
            raise ValueError(f"a start's name must be text; got {self.name!r}")
        if self.states is not None and not isinstance(self.states, torch.Tensor):
            raise ValueError(f"a start's states must be a tensor N×C×H×W; got {type(self.states).__name__}")

    @classmethod
    def of(cls, value: Start | str | torch.Tensor | None) -> Start:
        """A Start from what a caller has: a name, a tensor of states, None (the default) or a Start; a fitted
        start is passed as Start(fitted=…)."""
        if value is None or isinstance(value, Start):
            return value or cls()
        if isinstance(value, torch.Tensor):
            return cls(states=value)
        if isinstance(value, str):
            return cls(name=value)
        raise ValueError(f"a start is a name, a tensor of states or a Start; got {type(value).__name__}")

    @property
    def count(self) -> int | None:
        """How many images given states hold (None: the run's n decides)."""
        return None if self.states is None else len(self.states)

    def describe(self) -> str | None:
        """Its name for a caption ("black", "given states", "fitted mixture"); None for the default."""
        if self.name is not None:
            return self.name
        return "given states" if self.states is not None else ("fitted" if self.fitted is not None else None)


@dataclass(frozen=True)
class SamplerChoice:
    """Everything that picks one reverse run apart from the model: the sampler and its settings, the seed,
    where it starts (a Start; a name or a tensor of states is taken as one), and for a class-conditional model
    the digit (None: every class in turn) and guidance scale w (None: the model's)."""

    sampler: str
    steps: int | None = None
    seed: int = 0
    start: Start = field(default_factory=Start)
    digit: int | None = None
    guidance: float | None = None
    t_start: int | None = None  # start the reverse run at this t from a given x_t (default T; a cold mixture
    # start: the degradation's generation_t)
    spacing: str | None = None  # where the steps go (process/spacing.py); None: the sampler's own
    rho: float = 7.0  # ρ of the Karras spacing
    knobs: Mapping[str, float] = field(default_factory=dict)  # the sampler's knobs set (η, churn); others: default

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", Start.of(self.start))

    def knob_values(self) -> dict[str, float]:
        """Every knob of the sampler at its value here (checked) or its default; ValueError for one it lacks."""
        spec = sampler_spec(self.sampler)
        return knob_values(spec.name, spec.knobs, self.knobs)

    def describe(self) -> str:
        """E.g. "ddim, 20 steps, η = 1"."""
        try:
            knobs = sampler_spec(self.sampler).knobs
        except ValueError:
            knobs = ()
        return ", ".join([self.sampler] + ([f"{self.steps} steps"] if self.steps else []) +
                         ([f"{self.spacing} spacing" + (f" (ρ = {self.rho:g})" if self.spacing == "karras" else "")]
                          if self.spacing else []) +
                         [k.describe(self.knobs.get(k.name, k.default)) for k in knobs])


class DiffusionProcess(ABC):
    """A forward corruption with its loss, its starts and its samplers."""

    type: ClassVar[str]  # the config's "type"
    # whether models of another variant learn a different task (a blur restorer and a mask restorer do; two
    # noise schedules learn the same data), so a model of one variant says nothing of another's quality
    variant_defines_output: ClassVar[bool] = False
    sampler_noun: ClassVar[str] = "sampler"  # in messages: "sampler must be one of …"
    model_noun: ClassVar[str] = "model"  # in messages: "No trained … yet"
    family: ClassVar[str] = "models"  # a chart's panel of this process's models: "noise models"
    loss_text: ClassVar[str] = ""  # its training loss in symbols, for that panel: "‖ε − g‖²"
    listing: ClassVar[int] = 99  # where its models come among the families (noise first)
    starts: ClassVar[tuple[str, ...]] = ()  # named starts of a reverse run besides the default
    # whether it corrupts by Gaussian noise levels (σ_t, log-SNR): steps spaced by them, re-noising a state (Diffuse
    # ↑, SDEdit), the variational bound and classifier guidance need them; pages and tools ask this, not the type
    noise_levels: ClassVar[bool] = False
    # whether classifier and loss guidance (models/classifier_guidance.py, written on ε̂ and ᾱ_t) can steer it
    guidable: ClassVar[bool] = False
    degrades: ClassVar[bool] = False  # whether a restorer undoes a degradation D(x, t) (the Degradations page's)
    takes_labels: ClassVar[bool] = False  # whether a class-conditional network can be trained on it
    # the views its samplers run over, its own first (default: the samplers registered for its type); a process
    # whose view is also the σ-space denoiser lists "noise" and runs every noise sampler unchanged
    sampler_views: ClassVar[tuple[str, ...]] = ()
    preview_text: ClassVar[str] = "its preview sampler"  # preview_choice in words (the trainer's FID checks)
    PROCESS_TYPES: ClassVar[dict[str, type[DiffusionProcess]]] = {}
    T: int
    prediction: str  # what the network outputs: "eps" (ε̂), "x0" (x̂0) or "v" (process/targets.py)

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        DiffusionProcess.PROCESS_TYPES[cls.type] = cls

    @classmethod
    @abstractmethod
    def from_config(cls, diffusion: dict) -> DiffusionProcess:
        """Build from a "diffusion" config; ValueError naming the field that is wrong."""

    @abstractmethod
    def config(self) -> dict:
        """The "diffusion" config that rebuilds this process."""

    @abstractmethod
    def describe(self) -> str:
        """One line for cards and tables, e.g. "Gaussian noise, linear β from 0.0001 to 0.02, T = 1000"."""

    @property
    @abstractmethod
    def variant(self) -> str | None:
        """Which one of its kind, for matching like with like: a preset or a degradation kind (None: custom)."""

    @abstractmethod
    def label(self) -> str:
        """A few words for pickers, e.g. "noise default T=1000" or "cold blur"."""

    @abstractmethod
    def corrupt(self, x0: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A draw of z_t ~ q(z_t | x_0) at integer timesteps t (shape [B])."""

    @abstractmethod
    def loss_terms(self, model: nn.Module, x: torch.Tensor, generator: torch.Generator | None = None,
                   shard: slice = slice(None), y: torch.Tensor | None = None,
                   t: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(the training loss, t, each image's own loss, detached): t (unless given, one per image of x) and any
        noise drawn for the whole batch x, the loss the mean over x[shard]."""

    def loss(self, model: nn.Module, x: torch.Tensor, generator: torch.Generator | None = None,
             shard: slice = slice(None), y: torch.Tensor | None = None) -> torch.Tensor:
        """The training loss (see loss_terms)."""
        return self.loss_terms(model, x, generator, shard, y)[0]

    @abstractmethod
    def x0_from_output(self, z: torch.Tensor, output: torch.Tensor, t: int) -> torch.Tensor:
        """x̂0 from the network's output at z_t."""

    @abstractmethod
    def view(self, model: nn.Module, **extras: Any) -> Any:
        """The network as this process's samplers see it, every sampler of the process over the same view (a
        noise process: its σ-space denoiser D(x; σ) → (x̂0, ε̂); cold: the restorer R and the degradation D).
        extras: what start() handed back beside x_T (a hybrid degradation's trajectory noise)."""

    @abstractmethod
    def start(self, choice: SamplerChoice, n: int, generator: torch.Generator,
              device: torch.device | str = "cpu") -> tuple[torch.Tensor, dict[str, Any]]:
        """(x_T, what view() takes besides the model, as keyword arguments) of a reverse run, drawn from
        `generator`."""

    def noise_or_given_start(self, choice: SamplerChoice, n: int, generator: torch.Generator,
                             device: torch.device | str = "cpu") -> tuple[torch.Tensor, dict[str, Any]]:
        """The start of a process whose runs begin at pure Gaussian noise: N(0, I) drawn from `generator`, or given
        states z_t (N×data_shape, finite) at choice.t_start — a run from midway, as SDEdit and Diffuse ↑ start."""
        self.check_start(choice.start)
        shape = self.data_shape  # type: ignore[attr-defined]
        z = choice.start.states
        if z is not None:
            if tuple(z.shape[1:]) != shape or len(z) < 1:
                raise ValueError(f"a start state must be N×{'×'.join(map(str, shape))}; got {tuple(z.shape)}")
            if not torch.isfinite(z).all():
                raise ValueError("the start state holds NaN or Inf values")
            return z.float().to(device), {}
        if choice.t_start is not None:
            raise ValueError(f"a {self.model_noun}'s run from midway (t_start) needs the state z_t as its start; "
                             "from fresh noise it starts at t = T")
        validate_sample_count(n)
        return seeded_noise((n, *shape), generator, device), {}

    def coupled(self, distil_steps: int | None = None) -> DiffusionProcess:
        """This process trained on a given (x0, z1) coupling (reflow); only a flow has one (process/flow.py)."""
        raise ValueError(f"reflow and one-step distillation train a flow model on its own (noise, sample) pairs; "
                         f"this is a {self.model_noun} (train a teacher with --flow first)")

    def fitted_start(self, choice: SamplerChoice) -> object | None:
        """What the choice's start must be fitted to from training data, which only the data layer holds (it
        fits or loads it and hands it back as Start(fitted=…)); None: the process draws its start itself."""
        return None

    def check_start(self, start: Start) -> None:
        """ValueError for a named start this process does not have (fresh noise, the default, needs no name)."""
        if start.name is not None and start.name not in self.starts:
            has = f"its starts are {', '.join(self.starts)}" if self.starts else "it starts from fresh noise"
            raise ValueError(f"a {self.type} model has no start {start.name!r}: {has} (or given states x_t)")

    # -- samplers (registered in diffusion_core/samplers for this process's type) ------------------------

    @property
    def samplers(self) -> tuple[str, ...]:
        """The samplers this process supports; the first is the default."""
        if not SAMPLERS:
            raise ValueError("no sampler is registered: import diffusion_core.samplers (diffusion_core.sampling "
                             "does)")
        return tuple(name for view in self.sampler_views or (self.type,) for name in samplers_of(view))

    @abstractmethod
    def preview_choice(self, seen: torch.Tensor, seed: int) -> SamplerChoice:
        """The trainer's preview run, given the clean training images seen so far."""

    def quick_choice(self) -> SamplerChoice:
        """What one-click generation runs (default: the first sampler with its default steps)."""
        return SamplerChoice(self.samplers[0])

    def sampler(self, name: str):
        """The registered sampler `name`; ValueError naming the ones this process has."""
        if name not in self.samplers:
            raise ValueError(f"{self.sampler_noun} must be one of {', '.join(self.samplers)}; got {name!r}")
        return sampler_spec(name)

    def timesteps(self, spacing: str, t_start: int, steps: int, rho: float = 7.0) -> list[int]:
        """`steps` integer timesteps from t_start placed by `spacing`; a process without noise levels has only
        "uniform"."""
        if spacing != "uniform":
            if spacing in SPACINGS:
                raise ValueError(f"a {self.type} process has no noise levels to place steps by: spacing "
                                 f"{spacing!r} needs a noise model; use uniform")
            spaced_by(spacing, [], t_start, steps, rho)  # the message naming the spacings
        return spaced_by("uniform", [], t_start, steps, rho)

    signal_symbol: ClassVar[str] = "α_t"  # α_t of z_t = α_t·x + σ_t·ε as the process writes it ("√ᾱ_t")

    def levels(self, t: int) -> tuple[float, float]:
        """(α_t, σ_t) of the state z_t = α_t·x + σ_t·ε at step t, for a process with noise levels."""
        raise ValueError(f"a {self.type} process has no noise levels")

    def frame_facts(self, t: int) -> dict[str, str]:
        """What a reverse-diffusion frame at step t shows beside t (a noise model: β_t and ᾱ_t), label → value."""
        return {}

    def frame_curve(self) -> tuple[str, list[float]] | None:
        """(name, value at t = 0..T) of the curve a frame marks its t on (a noise model: ᾱ_t); None: no curve."""
        return None

    def log_snrs(self) -> list[float]:
        """log SNR_t = 2·log(α_t/σ_t) for t = 1..T (a process with noise levels)."""
        return [2.0 * math.log(a / s) for a, s in map(self.levels, range(1, self.T + 1))]

    def log_snr_density(self, grid: torch.Tensor) -> torch.Tensor:
        """How often training draws each noise level: the density of log SNR at the points of `grid` (evenly
        spaced) when t is uniform on 1..T — a histogram of the T levels, in bins centred on the grid's points."""
        step = float(grid[1] - grid[0])
        edges = torch.cat([grid - step / 2, grid[-1:] + step / 2]).double()
        counts = torch.histogram(torch.tensor(self.log_snrs(), dtype=torch.float64), bins=edges).hist
        return counts / (self.T * step)

    def x0_weight(self, snr: torch.Tensor) -> torch.Tensor:
        """λ: the weight the training loss puts on ‖x̂0 − x0‖² at each SNR (a process with noise levels)."""
        raise NotImplementedError(f"a {self.model_noun} has no noise levels to weight")

    def emphasis(self, grid: torch.Tensor) -> torch.Tensor:
        """Where the objective spends its effort over log SNR (Kingma & Gao 2023): λ × the density of the levels
        training draws, normalised to unit area on `grid`."""
        w = self.x0_weight(grid.double().exp()) * self.log_snr_density(grid)
        return w / (w.sum() * float(grid[1] - grid[0]))

    def train_flags(self) -> list[str]:
        """The `python -m diffusion_core train` options that give this process (a card's recipe line)."""
        raise NotImplementedError

    def resolve(self, choice: SamplerChoice) -> SamplerChoice:
        """The choice with this process's defaults filled in (a cold mixture start: where it starts)."""
        return choice

    def network_calls(self, choice: SamplerChoice) -> int:
        """Network evaluations (NFE) of one run on its batch, before any guidance doubling."""
        spec = self.sampler(choice.sampler)
        return spec.nfe(len(spec.timesteps(self, self.resolve(choice))))

    def step_count(self, choice: SamplerChoice) -> int:
        """Network steps (frames with t > 0) of one run: a progress bar's total. Raises the sampler's
        ValueError for a step count it refuses."""
        return len(self.sampler(choice.sampler).timesteps(self, self.resolve(choice)))

    def frames(self, model: nn.Module, choice: SamplerChoice, n: int = 16,
               device: torch.device | str = "cpu", seeds: Sequence[int] | None = None) -> Iterator[SamplerStep]:
        """Frames (t, z_t, x̂0) of one seeded reverse run; the last has t = 0 and the samples. Sample k draws its
        randomness from seed + k alone (process.runs.SeedBatch); `seeds`: each sample's own seed instead (n of
        them: several runs in one batch, each image as its seed gives it alone)."""
        validate_seed(choice.seed)
        choice = self.resolve(choice)
        spec = self.sampler(choice.sampler)
        ts = spec.timesteps(self, choice)  # refuse a bad step count or knob before anything is drawn
        knobs = choice.knob_values()
        if seeds is not None and (len(seeds) != n or choice.start.count is not None):
            raise ValueError(f"per-sample seeds are for runs from a fresh start: {len(seeds)} seeds for {n} samples")
        generator = SeedBatch.of(seeds) if seeds is not None else SeedBatch(choice.seed, choice.start.count or n)
        x_T, extras = self.start(choice, n, generator, device)
        view = self.view(model.eval(), **extras)
        return in_inference_mode(spec.run(view, x_T, ts, generator, **knobs))


def process_from_config(diffusion: dict) -> DiffusionProcess:
    """The process a "diffusion" config describes; ValueError naming what is wrong."""
    if not isinstance(diffusion, dict):
        raise ValueError(f'"diffusion" must be an object; got {type(diffusion).__name__}')
    kind = diffusion.get("type")
    types = DiffusionProcess.PROCESS_TYPES
    if kind not in types:
        raise ValueError(f"diffusion type must be one of {', '.join(map(repr, types))}; got {kind!r}")
    return types[kind].from_config(diffusion)
