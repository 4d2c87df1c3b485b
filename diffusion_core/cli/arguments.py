"""The command line's shared argument types and groups: every numeric argument is checked against the
library's own limits when argparse reads it; the sampler knobs' flags come from the samplers' declarations."""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from collections.abc import Callable, Iterator
from typing import NoReturn

from diffusion_core.models.guidance import MAX_GUIDANCE, NO_LABEL
from diffusion_core.process.degradations import MAX_T as DEGRADATION_MAX_T
from diffusion_core.process.knobs import Knob
from diffusion_core.process.schedules import MAX_T
from diffusion_core.process.spacing import SPACINGS
from diffusion_core.samplers import MAX_SAMPLES, SamplerStep, validate_seed
from diffusion_core.samplers.registry import SAMPLERS
from diffusion_core.training.options import parse_key_value
from diffusion_core.training.precision import PRECISIONS

DIGIT_RANGE = (NO_LABEL, 9)  # a digit, or -1: unconditional (guidance.sample_labels)


# the models check widths and kernels only from below; these keep a typo from allocating gigabytes
MAX_WIDTH, MAX_KERNEL = 1024, 27


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, "error: argument --n: …", like the commands' own."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _whole(lo: int, hi: int) -> Callable[[str], int]:
    """An argparse type: an integer in lo..hi."""
    def whole(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = lo - 1
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be an integer between {lo} and {hi}; got {text!r}")
        return value
    return whole


def _seed(text: str) -> int:
    """An argparse type: a seed, as samplers.validate_seed takes it."""
    try:
        value = int(text)
        validate_seed(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer below 2**63; got {text!r}") from None
    return value


def _number(lo: float, hi: float = math.inf, open_lo: bool = False, open_hi: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number between lo and hi (each end excluded when open)."""
    rule = " ".join([f"{lo:g}", "<" if open_lo else "≤", "value"] +
                    ([] if hi == math.inf else ["<" if open_hi else "≤", f"{hi:g}"]))

    def number(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and (lo < value if open_lo else lo <= value)
                and (value < hi if open_hi else value <= hi)):
            raise argparse.ArgumentTypeError(f"must be a number with {rule}; got {text!r}")
        return value
    return number


def _int_list(lo: int, hi: int) -> Callable[[str], list[int]]:
    """An argparse type: comma-separated integers, each in lo..hi."""
    def int_list(text: str) -> list[int]:
        try:
            values = [int(v) for v in text.split(",") if v.strip()]
        except ValueError:
            values = []
        if not values or not lo <= min(values) <= max(values) <= hi:
            raise argparse.ArgumentTypeError(f"must be comma-separated integers between {lo} and {hi}; got {text!r}")
        return values
    return int_list


def _key_value(text: str) -> tuple[str, object]:
    """KEY=VALUE with VALUE read as an integer, a number, none, or text (training.options.parse_key_value)."""
    try:
        return parse_key_value(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


N_SAMPLES = _whole(1, MAX_SAMPLES)  # samplers.validate_sample_count


STEPS = _whole(1, max(MAX_T, DEGRADATION_MAX_T))  # at most the checkpoint's own T: checked once it is loaded


RHO = _number(0, 100, open_lo=True)


def _spacing_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("where the steps go (noise models; see process/spacing.py)")
    own: dict[str, list[str]] = {}
    for spec in sorted(SAMPLERS.values(), key=lambda s: (s.process, s.order)):
        if not (spec.all_steps or spec.one_step):  # a sampler that places its steps
            own.setdefault(spec.spacing, []).append(spec.name)
    g.add_argument("--spacing", choices=SPACINGS, help="uniform in t, log-snr, karras (ρ) or edm (default: the "
                   "sampler's own — " + "; ".join(f"{'/'.join(names)} {s}" for s, names in own.items()) + ")")
    g.add_argument("--rho", type=RHO, default=7.0, help="ρ of the Karras spacing, > 0 (default 7)")
    _knob_arguments(parser)


def _knob_arguments(parser: argparse.ArgumentParser) -> None:
    """A flag for every registered sampler knob (samplers/*.py declare them: process/knobs.py), e.g. --eta."""
    g = parser.add_argument_group("sampler knobs (each applies to the samplers named; others refuse it)")
    for name, (knob, samplers) in _registered_knobs().items():
        g.add_argument(f"--{name.replace('_', '-')}", dest=name, type=_number(knob.lo, knob.hi),
                       metavar=name.upper(), help=f"{', '.join(samplers)}: {knob.label} — {knob.help} "
                       f"({knob.lo:g}..{knob.hi:g}; default {knob.default:g})")


def _registered_knobs() -> dict[str, tuple[Knob, list[str]]]:
    """Every registered knob by name, with the samplers that take it."""
    knobs: dict[str, tuple[Knob, list[str]]] = {}
    for spec in sorted(SAMPLERS.values(), key=lambda s: (s.process, s.order)):
        for knob in spec.knobs:
            knobs.setdefault(knob.name, (knob, []))[1].append(spec.name)
    return knobs


def _given_knobs(args: argparse.Namespace) -> dict[str, float]:
    """The sampler knobs given on the command line (the others stay at the sampler's defaults)."""
    return {name: getattr(args, name) for name in _registered_knobs() if getattr(args, name, None) is not None}


def _precision_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup, default: str = "auto") -> None:
    parser.add_argument("--precision", default=default, choices=PRECISIONS, help="auto: bf16 autocast where the "
                        "CPU/GPU runs it natively, else fp32 (default); fp32 opts out; bf16 forces it")


def _class_arguments(parser: argparse.ArgumentParser, ship: bool = False) -> None:
    g = parser.add_argument_group("class-conditional models (trained with --conditional)")
    g.add_argument("--digit", type=_whole(*DIGIT_RANGE), help="generate this digit 0–9 (-1: unconditional; "
                   "default: 0–9 in turn)")
    g.add_argument("--guidance", type=_number(0, MAX_GUIDANCE), help=f"classifier-free guidance scale "
                   f"0 ≤ w ≤ {MAX_GUIDANCE:g}: ε̃ = (1+w)·ε(z,t,y) − w·ε(z,t,∅) ("
                   + ("stored as the model's default" if ship else "default: the model's own") + ")")


def _data_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--data-root", help="dataset cache folder (default ./data or $DIFFUSION_LAB_DATA)")
    parser.add_argument("--no-download", action="store_true", help="never try to download")


def _device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda", "mps"])


def _quiet_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bar (on stderr) while sampling")


@contextlib.contextmanager
def _progress(total: int, desc: str, quiet: bool) -> Iterator[Callable[[SamplerStep], None] | None]:
    """An on_step callback driving a tqdm bar on stderr over a run's `total` network steps (None if quiet)."""
    if quiet:
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, unit="step", file=sys.stderr) as bar:
        def on_step(frame: SamplerStep) -> None:
            if frame.t > 0:  # the last frame (t = 0) is the result, not a step
                bar.update(1)
        yield on_step
