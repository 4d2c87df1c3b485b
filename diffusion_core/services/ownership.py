"""Who may manage a training run: the browser that started it, or the teacher.

A browser carries a random token (the pages keep it in a cookie); a run records the SHA-256 of its starter's
token in job.json (never the token itself), so reading the runs folder reveals no one's key. Anyone may see
and sample every run; stopping, resuming and deleting one needs its owner's token or the teacher's standing.
The teacher is whoever gives the teacher passphrase ($DIFFUSION_LAB_TEACHER_PASSPHRASE, or
`teacher_passphrase` in Streamlit's secrets); a class passphrase ($DIFFUSION_LAB_CLASS_PASSPHRASE or
`class_passphrase`) optionally keeps the whole app behind a word given out in class. Runs started outside the
app (the CLI) or before runs had owners belong to no one: anyone may manage them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

TEACHER_ENV = "DIFFUSION_LAB_TEACHER_PASSPHRASE"
CLASS_ENV = "DIFFUSION_LAB_CLASS_PASSPHRASE"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
MAX_NAME = 60


@dataclass(frozen=True)
class Actor:
    """Who asks: the SHA-256 of a browser's token, and whether the teacher signed in on it."""

    owner: str
    teacher: bool = False


def valid_token(token: object) -> bool:
    return isinstance(token, str) and bool(_TOKEN.match(token))


def owner_of(token: str) -> str:
    """What a run records of the browser that started it: the token's SHA-256 (hex)."""
    if not valid_token(token):
        raise ValueError("a browser token is 16–128 letters, digits, '-' or '_'")
    return hashlib.sha256(token.encode()).hexdigest()


def proof(passphrase: str, token: str) -> str:
    """What a browser keeps to stay signed in across reloads: HMAC-SHA256(passphrase, token). Changing the
    passphrase signs everyone out."""
    return hmac.new(passphrase.encode(), token.encode(), hashlib.sha256).hexdigest()


def passphrase_matches(given: str, passphrase: str | None) -> bool:
    """Whether `given` is the configured passphrase (constant-time); False when none is configured."""
    return bool(passphrase) and hmac.compare_digest(given.encode(), passphrase.encode())


def proof_matches(kept: str | None, passphrase: str | None, token: str) -> bool:
    return bool(passphrase and kept) and hmac.compare_digest(kept.encode(), proof(passphrase, token).encode())


def run_name(name: object) -> str | None:
    """A student's name for a run, trimmed; None when blank. ValueError for one too long or with control
    characters."""
    if name is None:
        return None
    if not isinstance(name, str):
        raise ValueError(f"a run name must be text; got {name!r}")
    name = " ".join(name.split())
    if len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
        raise ValueError(f"a run name is at most {MAX_NAME} printable characters; got {len(name)}")
    return name or None


def may_manage(run_owner: str | None, actor: Actor | None) -> bool:
    """Whether `actor` may stop, resume or delete a run owned by `run_owner` (None: a trusted caller such as
    the CLI, or a run that belongs to no one)."""
    return actor is None or actor.teacher or run_owner is None or hmac.compare_digest(run_owner, actor.owner)
