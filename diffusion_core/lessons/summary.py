"""The teacher's one-page summary of a lesson, from the same file: what it covers, its steps, its questions with
their answers (computed ones computed now) and explanations, and the pages it opens — as a printable HTML page
(`python -m diffusion_core lessons summary FILE`, or the Lessons page's download button)."""

from __future__ import annotations

import html

from .check import CheckedLesson

_STYLE = """
body { font: 11pt/1.35 system-ui, sans-serif; max-width: 46em; margin: 1.5em auto; color: #111; }
h1 { font-size: 16pt; margin: 0 0 .2em; } h2 { font-size: 12pt; margin: 1em 0 .3em; }
.meta { color: #555; margin-bottom: .6em; } ol { padding-left: 1.4em; } li { margin: .25em 0; }
.q { margin: .2em 0 .1em; } .a { color: #0a5; font-weight: 600; } .why { color: #333; font-size: 10pt; }
@media print { body { margin: 0; font-size: 10pt; } a { color: inherit; text-decoration: none; } }
"""


def _answer_text(checked: CheckedLesson, index: int) -> str:
    q = checked.lesson.steps[index].question
    if q.kind == "choice":
        return html.escape(q.options[q.correct])
    value = checked.answers.get(index)
    if value is None:
        return "(cannot be computed: see `lessons check`)"
    tol = f" (± {q.tolerance:.0%})" if q.relative and q.tolerance else (f" (± {q.tolerance:g})" if q.tolerance else "")
    return f"{value:.4g}{tol}" + ("" if q.answer.function is None else
                                  f" <small>= {html.escape(q.answer.describe())}</small>")


def summary_html(checked: CheckedLesson) -> str:
    """The printable summary of a checked lesson (its computed answers as checked)."""
    lesson = checked.lesson
    if lesson is None:
        raise ValueError(str(checked.problems[0]))
    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(lesson.title)}</title><style>{_STYLE}</style>",
             f"<h1>{html.escape(lesson.title)}</h1>",
             f"<div class='meta'>{html.escape(lesson.level)} · about {lesson.minutes} minutes · models: "
             f"{html.escape(', '.join(lesson.models) or 'none')}</div>",
             f"<p>{html.escape(lesson.summary)}</p>", "<h2>Steps</h2><ol>"]
    parts += [f"<li>{html.escape(step.title)}</li>" for step in lesson.steps]
    parts.append("</ol><h2>Questions and answers</h2><ol>")
    for index, step in enumerate(lesson.steps):
        q = step.question
        if q is None:
            continue
        options = "" if q.kind == "number" else " / ".join(html.escape(o) for o in q.options)
        reveal = html.escape(q.reveal.replace("{answer}", f"{checked.answers.get(index, float('nan')):.4g}"))
        parts.append(f"<li><div class='q'>{html.escape(q.prompt)} <small>(step {index + 1})</small></div>"
                     + (f"<div class='why'>Options: {options}</div>" if options else "")
                     + f"<div class='a'>Answer: {_answer_text(checked, index)}</div>"
                     + (f"<div class='why'>{reveal}</div>" if reveal else "") + "</li>")
    parts.append("</ol><h2>Pages it opens</h2><ul>")
    for step in lesson.steps:
        parts += [f"<li>{html.escape(link.label)} — <code>{html.escape(link.page)}</code></li>" for link in step.links]
    parts.append("</ul>")
    return "\n".join(parts)
