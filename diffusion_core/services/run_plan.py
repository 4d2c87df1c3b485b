"""Planning a reverse run before it starts: which sampler a checkpoint opens on, which samplers are
known to fail on it, how many network calls a run makes and how long it should take on this machine.

Time estimate: one network call on the chosen batch is timed on this machine (`seconds_per_call`,
which a page caches per model and batch), then multiplied by the number of network calls the run
will make (`network_calls`): one per step with t > 0 (all T for the ancestral sampler, one for
cold `direct`), doubled under classifier-free guidance w > 0 (the conditional and unconditional
predictions; ClassGuided makes them as one call on twice the batch).

Known failures: a checkpoint's card metrics (its config's "metrics") may carry
`"known_bad_samplers": {sampler: why}`, written from measurements (the shipped report CNNs carry the
dpm++2m / DDIM η = 0 failures measured for issue #18).
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from dataclasses import dataclass

import torch

from diffusion_core.io.checkpoints import LoadedCheckpoint
from diffusion_core.models.guidance import NO_LABEL, ClassGuided, is_conditional, sample_labels
from diffusion_core.process import SamplerChoice
from diffusion_core.samplers.base import model_call
from diffusion_core.training.precision import with_precision

CONFIRM_ABOVE_S = 20.0  # runs expected to take longer than this ask for confirmation first
KNOWN_BAD_KEY = "known_bad_samplers"  # in a config's "metrics": {sampler: why}


def known_bad_samplers(config: dict) -> dict[str, str]:
    """{sampler: why it fails on this checkpoint} from its card metrics; {} when nothing is known."""
    own = (config.get("metrics") or {}).get(KNOWN_BAD_KEY)
    return {str(k): str(v) for k, v in own.items()} if isinstance(own, dict) else {}


def default_sampler(checkpoint: LoadedCheckpoint) -> SamplerChoice:
    """What a page opens on: the app's quick sampler (Home's Generate) — in the number of steps a distilled model
    was made for (flow-one-step: 1) — unless it is known to fail on this model; then the first sampler not known
    to fail (with its default steps)."""
    choice = checkpoint.process.quick_choice()
    coupling = (checkpoint.config.get("training") or {}).get("coupling") or {}
    if isinstance(coupling.get("distil_steps"), int) and coupling["distil_steps"] >= 1 and choice.steps:
        choice = dataclasses.replace(choice, steps=min(coupling["distil_steps"], choice.steps))
    bad = known_bad_samplers(checkpoint.config)
    if choice.sampler not in bad:
        return choice
    for sampler in checkpoint.process.samplers:
        if sampler not in bad:
            return SamplerChoice(sampler)
    return choice


def guided(config: dict, digit: int | None = None, guidance: float | None = None) -> bool:
    """Whether classifier-free guidance doubles each call (w > 0 and a digit other than 'none')."""
    params = config.get("model", {}).get("params") or {}
    if not params.get("num_classes") or digit == NO_LABEL:
        return False
    w = config.get("guidance", 0.0) if guidance is None else guidance
    return bool(w)


def network_calls(checkpoint: LoadedCheckpoint, choice: SamplerChoice) -> int:
    """Network calls on the batch of one run: its network evaluations (process.network_calls: one a step, two
    for Heun), twice over under guidance w > 0. Raises the sampler's ValueError for a choice it refuses."""
    calls = checkpoint.process.network_calls(choice)
    return calls * (2 if guided(checkpoint.config, choice.digit, choice.guidance) else 1)


def seconds_per_call(checkpoint: LoadedCheckpoint, n: int, repeats: int = 3, precision: str = "auto",
                     image_shape: tuple[int, int, int] = (1, 28, 28)) -> float:
    """Median wall time of one network call on a batch of n images here (after one warm-up call), run the
    way the samplers run it (inference mode, the same precision, unguided labels for a conditional model)."""
    if not 1 <= repeats <= 20:
        raise ValueError(f"repeats must be between 1 and 20; got {repeats}")
    model = checkpoint.model.to("cpu").eval()
    if is_conditional(model):
        model = ClassGuided(model, sample_labels(n, None, model.num_classes), 0.0)
    model = with_precision(model, precision, "cpu")
    T = checkpoint.process.T
    z = torch.randn((n, *image_shape), generator=torch.Generator().manual_seed(0))
    times = []
    with torch.inference_mode():
        for i in range(repeats + 1):
            start = time.perf_counter()
            model_call(model, z, max(1, T // 2), T)
            if i:  # the first call warms up (allocations, kernel choice)
                times.append(time.perf_counter() - start)
    return statistics.median(times)


@dataclass(frozen=True)
class RunEstimate:
    calls: int
    seconds_per_call: float

    @property
    def seconds(self) -> float:
        return self.calls * self.seconds_per_call

    @property
    def needs_confirmation(self) -> bool:
        return self.seconds > CONFIRM_ABOVE_S

    def describe(self) -> str:
        """E.g. 'about 3 s (20 network calls × 0.15 s measured here)'."""
        return (f"about {format_seconds(self.seconds)} ({self.calls:,} network call{'s' if self.calls != 1 else ''}"
                f" × {format_ms(self.seconds_per_call)} measured here)")


def format_ms(seconds: float) -> str:
    """'0.4 ms', '12 ms', '846 ms'."""
    ms = seconds * 1000
    return f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"


def format_seconds(seconds: float) -> str:
    """'under 0.1 s', '0.4 s', '12 s', '1 min 35 s', '2 h 05 min'."""
    if seconds < 0.05:
        return "under 0.1 s"
    if seconds < 10:
        return f"{seconds:.1f} s"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"
