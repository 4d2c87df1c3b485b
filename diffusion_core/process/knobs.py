"""A sampler's knobs: the settings it takes besides its steps and spacing (DDIM's η, Heun's S_churn).

A sampler declares its knobs once, where it is registered; the sampler's run receives them as keyword
arguments, the CLI's flags and the pages' sliders are built from the declaration, and a choice's description
names them. Adding a knob is one line in the sampler's own file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Knob:
    """One number a sampler takes: its keyword `name`, where it may lie, what it opens at, how it is shown."""

    name: str  # the run's keyword argument, the CLI flag (--name) and the key in SamplerChoice.knobs
    label: str  # the page's slider: "DDIM η"
    lo: float
    hi: float
    default: float = 0.0
    step: float = 0.1  # the slider's step
    help: str = ""  # one line: what it does at lo and at hi
    symbol: str = ""  # in a run's description: "η = 0.5" (default: the name)
    what: str = ""  # in messages: "churn (Heun's S_churn) must be …" (default: the label)

    def check(self, value: object) -> float:
        """The value as a float; ValueError naming the knob and its range if it is not a number in it."""
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                or not self.lo <= value <= self.hi:
            raise ValueError(f"{self.name} ({self.what or self.label}) must be a number from {self.lo:g} to "
                             f"{self.hi:g}; got {value!r}")
        return float(value)

    def describe(self, value: float) -> str:
        return f"{self.symbol or self.name} = {value:g}"


def knob_values(sampler: str, knobs: tuple[Knob, ...], given: Mapping[str, object]) -> dict[str, float]:
    """Every knob of `sampler` at the value `given` sets (checked) or at its default; ValueError for a knob the
    sampler does not take (a setting that would do nothing is refused, not ignored)."""
    names = {k.name for k in knobs}
    unknown = sorted(set(given) - names)
    if unknown:
        takes = f"takes {', '.join(sorted(names))}" if names else "takes no knobs"
        raise ValueError(f"the {sampler} sampler has no {', '.join(unknown)} ({sampler} {takes})")
    return {k.name: k.check(given[k.name]) if k.name in given else k.default for k in knobs}
