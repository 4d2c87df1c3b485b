"""Atomic file writes and tolerant JSON-lines reading."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout: diffusion_core/, checkpoints/, pages/


def atomic_write_files(files: dict[Path, bytes]) -> None:
    """Write every file to a temporary sibling and fsync them all, then rename each over its target.

    A crash or a full disk while writing leaves all the previous files intact; only the renames,
    which need no space, remain between the old set and the new."""
    temps: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            path = Path(path)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            temps.append((tmp, path))
            os.fchmod(fd, 0o644)  # mkstemp makes 0600 files; results are meant to be shared like any other file
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        for tmp, path in temps:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in temps:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`.

    A crash or a full disk leaves the previous file intact."""
    atomic_write_files({Path(path): data})


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def append_jsonl(path: str | Path, obj: Any) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(obj, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | Path) -> list[dict]:
    """Every complete JSON line; a torn last line (killed writer) is skipped."""
    rows: list[dict] = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return rows
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def env_int(name: str, default: int, minimum: int = 1) -> int:
    """A whole number ≥ minimum from environment variable `name`, or `default` when it is unset or empty;
    ValueError naming the variable otherwise."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number ≥ {minimum}; got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be a whole number ≥ {minimum}; got {raw!r}")
    return value
