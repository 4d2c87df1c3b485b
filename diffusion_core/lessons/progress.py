"""A student's progress through the lessons, kept per browser (its owner hash, services.ownership) in a small JSON
file beside the runs, so a reload, a closed tab or a server restart loses nothing:

    <runs root>/.lessons/<owner>.json   {lesson id: {"step": i, "answers": {"<step>": {"given": …, "correct": …}}}}
"""

from __future__ import annotations

import re
from pathlib import Path

from diffusion_core.io.files import atomic_write_json
from diffusion_core.io.runs import read_json_or_empty
from diffusion_core.services.run_status import runs_root

_OWNER = re.compile(r"^[0-9a-f]{16,128}$")


def progress_path(owner: str, root: Path | None = None) -> Path:
    if not _OWNER.match(owner or ""):
        raise ValueError("progress is kept for a browser's owner hash only")
    return (root or runs_root()) / ".lessons" / f"{owner}.json"


def load_progress(owner: str | None, root: Path | None = None) -> dict:
    """Every lesson's progress for this browser ({} for a new one, or without an owner)."""
    return read_json_or_empty(progress_path(owner, root)) if owner else {}


def save_progress(owner: str | None, progress: dict, root: Path | None = None) -> None:
    """Write this browser's progress (atomically: a crash leaves the old or the new file, never half)."""
    if owner:
        path = progress_path(owner, root)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, progress)


def record_answer(progress: dict, lesson: str, step: int, given: object, correct: bool) -> dict:
    """Progress with this answer kept (a right answer is never replaced by a later wrong one)."""
    entry = progress.setdefault(lesson, {"step": step, "answers": {}})
    answers = entry.setdefault("answers", {})
    if not answers.get(str(step), {}).get("correct"):
        answers[str(step)] = {"given": given, "correct": bool(correct)}
    return progress


def record_step(progress: dict, lesson: str, step: int) -> dict:
    progress.setdefault(lesson, {"step": step, "answers": {}})["step"] = step
    return progress
