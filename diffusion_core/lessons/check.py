"""Checking a lesson against the lab: its views exist and take its settings, its links name pages and settings that
exist, the models it needs are shipped, and its computed answers compute — each problem a LessonError with the
line. `python -m diffusion_core lessons check FILE…` and the Lessons page both use it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from diffusion_core.io.files import PROJECT_ROOT

from . import answers, views
from .format import Lesson, LessonError, Question, parse_lesson
from .links import link_problem
from .registry import resolve

LESSONS_DIR = PROJECT_ROOT / "lessons"
LESSONS_ENV = "DIFFUSION_LAB_LESSONS"  # another folder of lessons (a course's own), instead of lessons/


@dataclass
class CheckedLesson:
    """A parsed lesson with its number answers computed (step index → value) and every problem found."""

    lesson: Lesson | None
    answers: dict[int, float] = field(default_factory=dict)
    problems: list[LessonError] = field(default_factory=list)
    missing_models: list[str] = field(default_factory=list)  # models it needs that this lab does not have

    @property
    def ok(self) -> bool:
        return self.lesson is not None and not self.problems

    @property
    def needs_models(self) -> bool:
        """The lesson cannot run here only because models it names are not shipped in this lab (a deployment
        with its own checkpoints folder): not the file's fault, and the page says so instead of an error."""
        return bool(self.missing_models)


def answer_of(question: Question) -> float:
    """A number question's answer: typed in the file, or computed now from the library."""
    assert question.answer is not None
    if question.answer.function is None:
        return float(question.answer.value)
    return float(answers.compute(question.answer.function, question.answer.args))


def _model_known(name: str) -> bool:
    from diffusion_core.io.checkpoints import shipped_dir
    from diffusion_core.process.schedules import PRESETS

    return name in PRESETS or (shipped_dir() / f"{name}.json").is_file()


def check_lesson(path: Path | str, text: str | None = None, render: bool = False) -> CheckedLesson:
    """Parse and check one lesson (`render`: also compute every view, which takes seconds each)."""
    try:
        lesson = parse_lesson(path, text)
    except LessonError as exc:
        return CheckedLesson(None, problems=[exc])
    checked = CheckedLesson(lesson)
    bad = checked.problems.append
    for model in lesson.models:
        if not _model_known(model):
            checked.missing_models.append(model)
            bad(LessonError(lesson.path, 1, f"models: {model!r} is neither a shipped checkpoint nor a report preset"))
    for index, step in enumerate(lesson.steps):
        if step.view is not None:
            try:
                resolve("view", views.VIEWS, step.view.name, step.view.params)
                if render:
                    views.render(step.view.name, step.view.params)
            except (ValueError, OSError) as exc:
                bad(LessonError(lesson.path, step.view.line, str(exc)))
        for link in step.links:
            if (problem := link_problem(link)) is not None:
                bad(LessonError(lesson.path, link.line, problem))
        question = step.question
        if question is not None and question.kind == "number":
            try:
                checked.answers[index] = answer_of(question)
            except (ValueError, OSError, KeyError) as exc:
                bad(LessonError(lesson.path, question.line, f"the answer {question.answer.describe()} cannot be "
                                                            f"computed: {exc}"))
    return checked


def shipped_lessons(folder: Path | None = None) -> list[Path]:
    """The lesson files in lessons/ (or $DIFFUSION_LAB_LESSONS), in their order (file names start with their
    number)."""
    folder = folder or Path(os.environ.get(LESSONS_ENV) or LESSONS_DIR)
    def order(path: Path) -> tuple[int, str]:
        number = path.stem.split("_", 1)[0]
        return (int(number) if number.isdigit() else 10**9, path.stem)

    return sorted(folder.glob("*.md"), key=order) if folder.is_dir() else []


def is_correct(question: Question, given: object, answer: float | None = None) -> bool:
    """Whether `given` answers the question: the marked option's index, or a number within the tolerance."""
    if question.kind == "choice":
        return given == question.correct
    try:
        value = float(given)
    except (TypeError, ValueError):
        return False
    assert answer is not None
    allowed = question.tolerance * abs(answer) if question.relative else question.tolerance
    return abs(value - answer) <= allowed + 1e-12 * max(1.0, abs(answer))
