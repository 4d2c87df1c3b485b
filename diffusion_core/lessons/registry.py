"""Looking up a lesson's named function (a view, a computed answer) and checking its settings before it runs."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping


def resolve(kind: str, table: Mapping[str, Callable], name: str, params: Mapping[str, object]) -> Callable:
    """table[name], once `params` fit its keyword arguments; ValueError naming an unknown name or setting."""
    if name not in table:
        raise ValueError(f"unknown {kind} {name!r}: one of {', '.join(sorted(table))}")
    fn = table[name]
    try:
        inspect.signature(fn).bind(**params)
    except TypeError:
        takes = ", ".join(inspect.signature(fn).parameters) or "nothing"
        raise ValueError(f"{kind} {name} takes {takes}; got {', '.join(params) or 'nothing'}") from None
    return fn
