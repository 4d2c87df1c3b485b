"""Numeric inputs that never silently ignore what was typed.

`st.number_input(min_value=…, max_value=…)` only turns the box red when a value is out of range: the
browser never sends it, so the next action runs with the last valid value (a seed of −5 sampled with
seed 0; a batch of 0 trained with 128). `number_field` draws the box without those bounds, so whatever
is typed reaches the script, and checks it here instead:

- an out-of-range value is named at once under the box ("Seed must be a whole number from 0 to
  2,147,483,647; got -5"), and the box's help lists the allowed range;
- the action refuses it with the same message: `require(fields)` (or `int(field)` / `float(field)`)
  raises InputError, a ValueError, so inside `user_errors("Could not …")` it becomes one st.error and
  nothing runs.

    seed = number_field("Seed", 0, 2**31 - 1, value=0, key="home_seed", container=c1)
    if st.button("Generate"):
        with user_errors("Could not generate"):
            generate(int(seed))          # refused with the message while the seed is out of range
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import streamlit as st

from .url_state import declare_default


class InputError(ValueError):
    """A typed value outside its field's range; the message names the field and the range."""


def _fmt(x: float, integer: bool) -> str:
    return f"{int(x):,}" if integer else f"{x:g}"


@dataclass(frozen=True)
class NumberField:
    """What a numeric box holds now (as typed), its allowed range, and whether the value is in it."""

    label: str
    value: int | float | None
    lo: float
    hi: float
    integer: bool = True
    lo_open: bool = False  # True: the value must be greater than lo (not equal)
    hi_open: bool = False

    @property
    def allowed(self) -> str:
        """'a whole number from 1 to 4,096' / 'a number greater than 0 and less than 1'."""
        what = "a whole number" if self.integer else "a number"
        lo, hi = _fmt(self.lo, self.integer), _fmt(self.hi, self.integer)
        if not self.lo_open and not self.hi_open:
            return f"{what} from {lo} to {hi}"
        low = f"greater than {lo}" if self.lo_open else f"at least {lo}"
        high = f"less than {hi}" if self.hi_open else f"at most {hi}"
        return f"{what} {low} and {high}"

    @property
    def error(self) -> str | None:
        """None when the value is allowed, else 'Seed must be a whole number from 0 to 2,147,483,647; got -5'."""
        v = self.value
        ok = v is not None and not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
        if ok and self.integer:
            ok = float(v).is_integer()
        if ok:
            ok = (v > self.lo if self.lo_open else v >= self.lo) and (v < self.hi if self.hi_open else v <= self.hi)
        if ok:
            return None
        got = ("nothing" if v is None else f"{int(v)}" if isinstance(v, float) and v.is_integer()
               else f"{v:.10g}" if isinstance(v, float) else str(v))
        return f"{self.label} must be {self.allowed}; got {got}"

    @property
    def ok(self) -> bool:
        return self.error is None

    def get(self) -> int | float:
        """The value (an int for whole-number fields); InputError naming the field and range otherwise."""
        if self.error is not None:
            raise InputError(self.error)
        return int(self.value) if self.integer else float(self.value)

    def __int__(self) -> int:
        return int(self.get())

    def __index__(self) -> int:
        return int(self.get())

    def __float__(self) -> float:
        return float(self.get())


def number_field(label: str, lo: float, hi: float, value: int | float, key: str, *, container: Any = None,
                 step: int | float | None = None, format: str | None = None, help: str | None = None,
                 disabled: bool = False, lo_open: bool = False, hi_open: bool = False,
                 integer: bool | None = None) -> NumberField:
    """A number box whose out-of-range values reach the script, are named under the box at once, and
    are refused by `require` / `int()` / `float()` (see the module docstring). Whole numbers unless
    `value` is a float (or `integer=False`)."""
    container = st if container is None else container
    integer = isinstance(value, int) if integer is None else integer
    shown = NumberField(label, value, lo, hi, integer, lo_open, hi_open)
    range_help = f"Allowed: {shown.allowed}."
    # whole-number fields are float boxes too: an int box truncates a typed 2.5 to 2 in the browser, silently;
    # a float box sends 2.5, which is named and refused here ("%.10g" shows 2000 as 2000, not 2000.00)
    declare_default(key, value)  # the page's own default: a link leaves the box out while it holds this
    held = st.session_state.get(key)
    if isinstance(held, int | float) and not isinstance(held, bool):
        # a value the box already holds, or one set from a link ("7"): also the box's default, so a browser that
        # draws the new box from its default (it did in about a third of first visits) shows the link's value
        st.session_state[key] = value = float(held)
    raw = container.number_input(
        label, value=float(value), step=float(step) if step is not None else (1.0 if integer else None),
        format=format or ("%.10g" if integer else None), key=key, disabled=disabled,
        help=f"{help} {range_help}" if help else range_help,
    )
    if integer and isinstance(raw, float) and raw.is_integer():
        raw = int(raw)  # what the page's code reads as .value: 70, not 70.0
    field = NumberField(label, raw, lo, hi, integer, lo_open, hi_open)
    if field.error is not None and not disabled:
        container.error(field.error)
    return field


def require(fields: list[NumberField] | tuple[NumberField, ...]) -> None:
    """Raise InputError naming every field whose value is out of range (a disabled field: leave it out)."""
    problems = [f.error for f in fields if f.error is not None]
    if problems:
        raise InputError("; ".join(problems))
