"""Lessons: guided walk-throughs written as one Markdown file each (lessons/*.md) — the format (format.py), the
live views a step shows (views.py), the answers computed from the library (answers.py), the links into the
lab's pages (links.py), checking a lesson against the lab (check.py) and the teacher's summary (summary.py)."""

from diffusion_core.lessons.check import CheckedLesson, answer_of, check_lesson, is_correct, shipped_lessons
from diffusion_core.lessons.format import Lesson, LessonError, Question, Step, parse_lesson

__all__ = ["CheckedLesson", "Lesson", "LessonError", "Question", "Step", "answer_of", "check_lesson", "is_correct",
           "parse_lesson", "shipped_lessons"]
