"""Who this browser is in the lab (the rules are diffusion_core.services.ownership's): a random token kept in a
cookie, so the runs it starts stay its own across reloads; the teacher's sign-in (a passphrase, remembered by
the browser as a keyed hash of its token); and the optional class passphrase that keeps the app closed to
anyone who was not given it."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import streamlit as st

from diffusion_core.services.ownership import (
    CLASS_ENV,
    TEACHER_ENV,
    Actor,
    owner_of,
    passphrase_matches,
    proof,
    proof_matches,
    valid_token,
)

TOKEN_COOKIE, TEACHER_COOKIE, CLASS_COOKIE = "diffusion_lab_browser", "diffusion_lab_teacher", "diffusion_lab_class"
YEAR_S = 365 * 24 * 3600
_TOKEN, _TEACHER, _CLASS = "_lab_browser_token", "_lab_teacher", "_lab_class_ok"
_PENDING = "_lab_cookies_to_set"  # cookies a callback decided on, set by the next run's output


def _secret(env: str, key: str) -> str | None:
    """$env, else st.secrets[key] (secrets.toml), else None."""
    value = os.environ.get(env)
    if value:
        return value
    if not any(p.is_file() for p in (Path.cwd() / ".streamlit" / "secrets.toml",
                                     Path.home() / ".streamlit" / "secrets.toml")):
        return None  # no secrets file: st.secrets would only look for one (and say so) on every run
    try:
        value = st.secrets.get(key)
    except Exception:  # noqa: BLE001 — no secrets.toml at all is the normal case
        return None
    return str(value) if value else None


def teacher_passphrase() -> str | None:
    return _secret(TEACHER_ENV, "teacher_passphrase")


def class_passphrase() -> str | None:
    return _secret(CLASS_ENV, "class_passphrase")


def _set_cookie(name: str, value: str, max_age: int = YEAR_S) -> None:
    """Have the browser keep a cookie (the page's own script: Streamlit can read cookies, not set them)."""
    cookie = f"{name}={value}; path=/; max-age={max_age}; SameSite=Strict"
    st.html(f"<script>document.cookie = {json.dumps(cookie)};</script>", unsafe_allow_javascript=True)


def _set_pending_cookies() -> None:
    for name, value, max_age in st.session_state.pop(_PENDING, []):
        _set_cookie(name, value, max_age)


def _later(name: str, value: str, max_age: int = YEAR_S) -> None:
    st.session_state.setdefault(_PENDING, []).append((name, value, max_age))


def browser_token() -> str:
    """This browser's token: from its cookie, else a new one that the browser is asked to keep."""
    token = st.session_state.get(_TOKEN)
    if token:
        return token
    token = st.context.cookies.get(TOKEN_COOKIE)
    if not valid_token(token):
        token = secrets.token_urlsafe(24)
        _set_cookie(TOKEN_COOKIE, token)
    st.session_state[_TOKEN] = token
    return token


def is_teacher() -> bool:
    if st.session_state.get(_TEACHER):
        return True
    ok = proof_matches(st.context.cookies.get(TEACHER_COOKIE), teacher_passphrase(), browser_token())
    if ok:
        st.session_state[_TEACHER] = True
    return ok


def current_actor() -> Actor:
    """Who this session is, for the run rules (ownership.may_manage)."""
    return Actor(owner_of(browser_token()), is_teacher())


def _accept(passphrase: str, field: str, flag: str, cookie: str, refused: str) -> None:
    """A callback's check of the passphrase typed into `field`: right — set `flag` and have the browser keep its
    proof in `cookie`; wrong — set `refused` for the page to say so."""
    if passphrase_matches(st.session_state.get(field, ""), passphrase):
        st.session_state[flag] = True
        _later(cookie, proof(passphrase, browser_token()))
    else:
        st.session_state[refused] = True


def _sign_in(passphrase: str) -> None:
    _accept(passphrase, "_teacher_passphrase", _TEACHER, TEACHER_COOKIE, "_teacher_refused")
    st.session_state["_teacher_passphrase"] = ""


def _sign_out() -> None:
    st.session_state[_TEACHER] = False
    _later(TEACHER_COOKIE, "", max_age=0)


def teacher_signin() -> None:
    """In the sidebar, where a teacher passphrase is configured: sign in as the teacher (manage every run) or
    out."""
    passphrase = teacher_passphrase()
    _set_pending_cookies()
    if not passphrase:
        return
    with st.sidebar.expander("Teacher", expanded=bool(st.session_state.get("_teacher_refused"))):
        if is_teacher():
            st.caption("Signed in as the teacher: you can stop, resume and delete every run.")
            st.button("Sign out", key="_teacher_signout", on_click=_sign_out)
            return
        st.text_input("Teacher passphrase", type="password", key="_teacher_passphrase")
        st.button("Sign in", key="_teacher_signin", on_click=_sign_in, args=(passphrase,))
        if st.session_state.pop("_teacher_refused", False):
            st.error("That is not the teacher passphrase.")


def _enter_class(passphrase: str) -> None:
    _accept(passphrase, "_class_passphrase", _CLASS, CLASS_COOKIE, "_class_refused")


def class_gate() -> None:
    """Where a class passphrase is configured: stop the page until this browser has given it (once; the
    browser remembers)."""
    _set_pending_cookies()
    passphrase = class_passphrase()
    if not passphrase or st.session_state.get(_CLASS):
        return
    if proof_matches(st.context.cookies.get(CLASS_COOKIE), passphrase, browser_token()):
        st.session_state[_CLASS] = True
        return
    st.info("This lab is open to a class: enter the passphrase your teacher gave out.")
    with st.form("_class_gate"):
        st.text_input("Class passphrase", type="password", key="_class_passphrase")
        st.form_submit_button("Enter", on_click=_enter_class, args=(passphrase,))
    if st.session_state.pop("_class_refused", False):
        st.error("That is not the class passphrase: ask your teacher for it.")
    st.stop()
