"""A page's settings in its address, so a teacher can hand out a link that opens an exact view.

Each page names the widget keys that make up its view (`rd_seed`, or a prefix `rd_steps_*` for keys that depend
on a choice). `url_state(keys)` runs before the widgets: on the session's first run of the page it sets those
widgets from the address (values as JSON: `?rd_seed=7&rd_sampler="ddim"`), and on every run it writes the
values the widgets hold back into the address, leaving out those still at the value the page opens with (the
link opens there anyway: it stays short). The model stays in `?model=` (the model picker's own).
A value that is not a plain number, text or list is ignored with a notice; one a widget cannot take (a sampler
that does not exist) leaves the widget at its default, and a number out of range is named under its box.

The sidebar of every page shows the link to the view as it is now (with a copy button) and a "Reset to defaults"
button, which forgets the page's settings and results and clears the address.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from urllib.parse import urlencode, urlsplit

import streamlit as st

LOADED = "_url_state_loaded"  # pages whose address this session has already read
PAGE_PATH = "_lab_page_path"  # the current page's address path ("" for Home), set by lab_ui.navigation
FIRST_QUERY = "_lab_first_query"  # the address's settings as a session's first run saw them (setup_page)
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
        first = st.session_state.pop(FIRST_QUERY, {})  # read once, by the page the first run was for
        address = st.query_params.to_dict() or first
        for name, raw in address.items():
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
            if name not in st.query_params and _is_default(name, value):  # the link opens there anyway: keep
                continue  # it short (a setting the address already holds stays: it may be what restored the view)
            if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
                value = int(value)  # a whole-number box holds 2000.0: the link says 2000
            text = json.dumps(list(value) if isinstance(value, tuple) else value, ensure_ascii=False)
            if st.query_params.get(name) != text:
                st.query_params[name] = text
    view_tools(page, keys)


DEFAULTS = "_lab_widget_defaults"  # key → the value a page's own box opens with (lab_ui.inputs declares it)


def declare_default(key: str, value: object) -> None:
    """The value the widget `key` opens with, given the page's other settings (a number box's `value`)."""
    st.session_state.setdefault(DEFAULTS, {})[key] = value


def _is_default(key: str, value: object) -> bool:
    """Whether a widget holds the value it would open with, given the page's other settings, as its last run drew
    it: a number box's declared default, else Streamlit's widget metadata (deserialising "no value from the
    browser" gives the default). Where neither is to be had, False: the value goes into the link."""
    declared = st.session_state.get(DEFAULTS, {})
    if key in declared:
        default = declared[key]
    else:
        try:
            from streamlit.runtime.state.session_state_proxy import get_session_state

            state = get_session_state()._state
            widget = state._key_id_mapper.get_id_from_key(key, None)
            meta = state._new_widget_state.widget_metadata.get(widget) if widget else None
            default = meta.deserializer(None) if meta is not None else _NO_DEFAULT
        except Exception:  # noqa: BLE001 — Streamlit internals: a newer version may move them
            return False
    if isinstance(default, tuple):
        default = list(default)
    return default is not _NO_DEFAULT and default == (list(value) if isinstance(value, tuple) else value)


_NO_DEFAULT = object()


def _prefixes(keys: list[str]) -> tuple[str, ...]:
    """The page's key prefixes ("rd_" from "rd_seed"): its widgets, model picker and results all start so."""
    return tuple(sorted({k.split("_", 1)[0] + "_" for k in keys}))


def _reset(prefixes: tuple[str, ...]) -> None:
    """Forget every setting and result of the page and clear the address: the page opens as a first visitor's."""
    for name in [n for n in st.session_state if isinstance(n, str) and n.startswith(prefixes)]:
        del st.session_state[name]
    st.query_params.clear()


def view_link() -> str:
    """The address of the view as it is now: this server, the page's path and its settings."""
    base = st.context.url or ""
    parts = urlsplit(base)
    root = f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""
    query = urlencode(st.query_params.to_dict())
    return f"{root}/{st.session_state.get(PAGE_PATH, '')}" + (f"?{query}" if query else "")


LINK_SLOT = "_lab_link_slot"  # this run's sidebar slot of the link (a widget drawn later may add to the address)


def refresh_view_link() -> None:
    """Draw the link again with the address as it is now (the model picker adds ?model= after url_state ran)."""
    slot = st.session_state.get(LINK_SLOT)
    if slot is not None:
        slot.code(view_link(), language=None, wrap_lines=True)


def view_tools(page: str, keys: list[str]) -> None:
    """In the sidebar: the link to this view (copy it to hand out) and Reset to defaults."""
    with st.sidebar:
        st.caption("Link to this view (copy it to hand out; it opens these settings)")
        st.session_state[LINK_SLOT] = st.empty()
        refresh_view_link()
        st.button("Reset to defaults", key=f"_reset_{page}", on_click=_reset, args=(_prefixes(keys),),
                  help="forget this page's settings and results, as a first visit shows it")


def linked_tabs(labels: list[str], key: str) -> Sequence:
    """st.tabs whose open tab is one of the page's settings (`key` goes in its url_state list), so a link can open
    a tab (`?ed_tab="Inpainting"`). Switching tabs reruns the page; every tab's content still runs, so the
    widgets of the tabs not shown keep their values."""
    return st.tabs(labels, key=key, on_change="rerun")

