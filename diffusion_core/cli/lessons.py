"""`lessons`: check lesson files (line-numbered problems; exit 1 when any), list the shipped ones, write a
teacher's printable summary, and list the computed answers a lesson may use."""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Callable
from pathlib import Path


def _lessons_parser(add: Callable[..., argparse.ArgumentParser]) -> None:
    """The `lessons` command's actions."""
    p = add("lessons", help="check, list and summarise lessons (lessons/*.md)",
            description="Lessons are Markdown files in lessons/ (the format: diffusion_core/lessons/format.py and "
                        "the README). `check` names the line of every problem.")
    sub = p.add_subparsers(dest="action", required=True)
    c = sub.add_parser("check", help="check lesson files: format, views, links, computed answers")
    c.add_argument("files", nargs="*", type=Path, help="lesson files (default: every shipped lesson)")
    c.add_argument("--render", action="store_true", help="also compute every view (seconds each)")
    sub.add_parser("list", help="the shipped lessons")
    s = sub.add_parser("summary", help="a teacher's printable one-page summary (HTML) of a lesson")
    s.add_argument("file", type=Path)
    s.add_argument("--out", type=Path, help="write it here (default: print it)")
    sub.add_parser("answers", help="the computed answers a number question may name")


def cmd_lessons(args: argparse.Namespace) -> int:
    from diffusion_core.lessons.answers import ANSWERS
    from diffusion_core.lessons.check import check_lesson, shipped_lessons
    from diffusion_core.lessons.summary import summary_html

    if args.action == "answers":
        for name, fn in sorted(ANSWERS.items()):
            params = ", ".join(p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default}"
                               for p in inspect.signature(fn).parameters.values())
            print(f"{name}({params}): {inspect.getdoc(fn)}")
        return 0
    if args.action == "list":
        for path in shipped_lessons():
            checked = check_lesson(path)
            lesson = checked.lesson
            title = lesson.title if lesson else "(does not parse)"
            print(f"{path.stem}: {title}" + (f" · {lesson.level} · {lesson.minutes} min · {len(lesson.steps)} steps"
                                             if lesson else ""))
        return 0
    if args.action == "summary":
        checked = check_lesson(args.file)
        if checked.lesson is None:
            print(f"error: {checked.problems[0]}", file=sys.stderr)
            return 1
        text = summary_html(checked)
        if args.out:
            args.out.write_text(text, encoding="utf-8")
            print(f"wrote {args.out}")
        else:
            print(text)
        return 0
    files = args.files or shipped_lessons()
    failed = 0
    for path in files:
        checked = check_lesson(path, render=args.render)
        for problem in checked.problems:
            print(f"{path}:{problem.line}: {problem.message}", file=sys.stderr)
        if checked.ok:
            lesson = checked.lesson
            computed = ", ".join(f"step {i + 1}: {v:.4g}" for i, v in checked.answers.items())
            print(f"{path}: ok — {lesson.title!r}, {len(lesson.steps)} steps"
                  + (f"; computed answers {computed}" if computed else ""))
        else:
            failed += 1
    return 1 if failed else 0
