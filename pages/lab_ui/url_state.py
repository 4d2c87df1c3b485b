"""A page's settings in its address, so a teacher can hand out a link that opens an exact view.

Each page names the widget keys that make up its view (`rd_seed`, or a prefix `rd_steps_*` for keys that depend
on a choice). `url_state(keys)` runs before the widgets: on the session's first run of the page it sets those
widgets from the address (values as JSON: `?rd_seed=7&rd_sampler="ddim"`), and on every run it writes the
values the widgets hold back into the address. The model stays in `?model=` (the model picker's own).
A value that is not a plain number, text or list is ignored with a notice; one a widget cannot take (a sampler
that does not exist) leaves the widget at its default, and a number out of range is named under its box.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import streamlit as st

LOADED = "_url_state_loaded"  # pages whose address this session has already read
NOT_SETTINGS = ("_run", "_button", "_canvas", "_out", "_fig", "_table")  # buttons, canvases, results, charts


def _wanted(key: str, keys: Iterable[str]) -> bool:
    if key.endswith(NOT_SETTINGS):
        return False
    return any(key == k or (k.endswith("*") and key.startswith(k[:-1])) for k in keys)


def _plain(value: object) -> bool:
    """JSON numbers, text, booleans and lists of them: what a widget holds (not a model or an upload)."""
    if isinstance(value, bool | int | float | str) or value is None:
        return True
    return isinstance(value, list | tuple) and all(isinstance(v, bool | int | float | str) for v in value)


def url_state(page: str, keys: list[str]) -> None:
    """Restore `keys` (names or `prefix*`) from the address on this session's first run of `page`, then write their
    current values into the address."""
    loaded = st.session_state.setdefault(LOADED, set())
    if page not in loaded:
        loaded.add(page)
        bad = []
        for name, raw in st.query_params.to_dict().items():
            if name == "model" or not _wanted(name, keys):
                continue
            try:
                value = json.loads(raw)
            except ValueError:
                value = raw  # a bare word: text
            if _plain(value):
                st.session_state[name] = value
            else:
                bad.append(name)
        if bad:
            st.info(f"Ignored settings in the address that are not plain values: {', '.join(bad)}.")
    for name, value in list(st.session_state.items()):
        if isinstance(name, str) and _wanted(name, keys) and _plain(value):
            text = json.dumps(list(value) if isinstance(value, tuple) else value, ensure_ascii=False)
            if st.query_params.get(name) != text:
                st.query_params[name] = text
