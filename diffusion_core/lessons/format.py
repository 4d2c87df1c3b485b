"""A lesson is one Markdown file (lessons/*.md): front matter, then steps under `## ` headings. Each step is
Markdown (LaTeX between $…$) with at most one live view, any number of links into the lab's pages, and at most
one question:

    ---
    title: The forward process and its schedules
    level: beginner                  (beginner / intermediate / advanced)
    minutes: 15
    models: default, model1          (shipped checkpoints or report presets it needs; may be empty)
    summary: One sentence for the list of lessons and the teacher's sheet.
    ---

    ## Noise, a little at a time
    Text: $z_t = \\sqrt{\\bar\\alpha_t}\\,x + \\sqrt{1-\\bar\\alpha_t}\\,\\varepsilon$.

    ::: view forward_strip preset=default digit=3
    ::: link pages/2_Schedules.py sched_presets=["model1","model2"] | Compare the two schedules yourself

    ::: question number
    At which t does ᾱ_t first fall below ½ for model1?
    answer: alpha_bar_crosses(preset=model1, level=0.5)
    tolerance: 2%
    reveal: It crosses ½ at t = {answer}: …
    :::

    ::: question choice
    Why does model2 need T = 18,300?
    - [ ] A wrong option
    - [x] The right one
    reveal: Why (may run over several lines, up to the closing `:::`).
    :::

`view` and `link` take `name=value` settings (a value is JSON when it parses, and may then hold spaces; else the
text up to the next space). A number
answer is a number or a computed answer — `name(key=value, …)` from lessons.answers, computed from the library
when the lesson is checked, never typed in by hand; `tolerance` is absolute or a percentage. `{answer}` in the
reveal is replaced by the answer. Every mistake is a LessonError naming the file and line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

LEVELS = ("beginner", "intermediate", "advanced")
FRONT_KEYS = ("title", "level", "minutes", "models", "summary")
_NAME = re.compile(r"([A-Za-z_][\w*+\-]*)=")  # (sampler names hold + and -: rd_steps_dpm++2m)
_CALL = re.compile(r"^([a-z_][a-z0-9_]*)\((.*)\)$")
_OPTION = re.compile(r"^- \[( |x|X)\] (.+)$")


class LessonError(ValueError):
    """A lesson file that cannot be used; str() is 'FILE:LINE: what is wrong'."""

    def __init__(self, path: Path | str, line: int, message: str) -> None:
        self.path, self.line, self.message = Path(path), line, message
        super().__init__(f"{Path(path).name}:{line}: {message}")

    def __reduce__(self) -> tuple:  # (a checked lesson is cached, and so pickled, by the page)
        return LessonError, (self.path, self.line, self.message)


@dataclass(frozen=True)
class View:
    name: str
    params: dict[str, object]
    line: int


@dataclass(frozen=True)
class Link:
    page: str  # pages/…py, as in st.page_link
    settings: dict[str, object]  # widget key → value, as the page's address holds them
    label: str
    line: int


@dataclass(frozen=True)
class Answer:
    """A number answer: `value` typed in the file, or `function(**args)` from lessons.answers."""

    value: float | None = None
    function: str | None = None
    args: dict[str, object] = field(default_factory=dict)

    def describe(self) -> str:
        if self.function is None:
            return f"{self.value:g}"
        return f"{self.function}({', '.join(f'{k}={v}' for k, v in self.args.items())})"


@dataclass(frozen=True)
class Question:
    kind: str  # "choice" or "number"
    prompt: str
    line: int
    options: tuple[str, ...] = ()
    correct: int | None = None  # the right option's index (choice)
    answer: Answer | None = None  # (number)
    tolerance: float = 0.0
    relative: bool = False  # tolerance is a fraction of the answer
    reveal: str = ""


@dataclass(frozen=True)
class Step:
    title: str
    text: str
    line: int
    view: View | None = None
    links: tuple[Link, ...] = ()
    question: Question | None = None


@dataclass(frozen=True)
class Lesson:
    id: str  # the file's stem: what ?lesson= names
    path: Path
    title: str
    level: str
    minutes: int
    models: tuple[str, ...]
    summary: str
    steps: tuple[Step, ...]


def value_of(text: str) -> object:
    """A setting's value: JSON when it parses (7, 0.5, "ddim", [1,2], true), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _settings(path: Path, line: int, text: str) -> dict[str, object]:
    """`name=value name=value …`: a value is JSON when it parses (it may then hold spaces: ["a b", "c"]), else
    the text up to the next space."""
    out: dict[str, object] = {}
    decoder, i = json.JSONDecoder(), 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        m = _NAME.match(text, i)
        if not m:
            raise LessonError(path, line, f"{text[i:].split()[0]!r} is not a setting: write name=value")
        start = end = m.end()
        try:
            value, end = decoder.raw_decode(text, start)
            if end < len(text) and not text[end].isspace():
                raise ValueError("more text follows")
        except ValueError:
            end = start
            while end < len(text) and not text[end].isspace():
                end += 1
            value = text[start:end]
            if not value:
                raise LessonError(path, line, f"setting {m.group(1)!r} has no value") from None
        out[m.group(1)] = value
        i = end
    return out


def _front_matter(path: Path, lines: list[str]) -> tuple[dict[str, str], int]:
    if not lines or lines[0].strip() != "---":
        raise LessonError(path, 1, "a lesson starts with front matter: a line '---', then title:, level:, minutes:, "
                                   "models:, summary:, then '---'")
    meta: dict[str, str] = {}
    for i, raw in enumerate(lines[1:], start=2):
        line = raw.strip()
        if line == "---":
            missing = [k for k in FRONT_KEYS if k not in meta]
            if missing:
                raise LessonError(path, i, f"front matter lacks {', '.join(missing)}")
            return meta, i
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep or key.strip() not in FRONT_KEYS:
            raise LessonError(path, i, f"front matter line {line!r}: expected one of {', '.join(FRONT_KEYS)} "
                                       "followed by ':' and its value")
        meta[key.strip()] = value.strip()
    raise LessonError(path, len(lines), "the front matter is never closed by a line '---'")


def _answer(path: Path, line: int, text: str) -> Answer:
    try:
        return Answer(value=float(text))
    except ValueError:
        pass
    m = _CALL.match(text.strip())
    if not m:
        raise LessonError(path, line, f"answer {text!r} is neither a number nor a computed answer like "
                                      "alpha_bar_crosses(preset=model1, level=0.5)")
    args: dict[str, object] = {}
    for part in (a.strip() for a in m.group(2).split(",") if a.strip()):  # scalar arguments: no commas inside
        args.update(_settings(path, line, part))
    return Answer(function=m.group(1), args=args)


def _question(path: Path, start: int, kind: str, body: list[tuple[int, str]]) -> Question:
    if kind not in ("choice", "number"):
        raise LessonError(path, start, f"question kind {kind!r}: write '::: question choice' or "
                                       "'::: question number'")
    prompt: list[str] = []
    options: list[str] = []
    correct: list[int] = []
    fields: dict[str, tuple[int, str]] = {}
    reveal: list[str] = []
    for number, raw in body:
        line = raw.strip()
        if reveal:
            reveal.append(raw.rstrip())
        elif (m := _OPTION.match(line)) and kind == "choice":
            if m.group(1) != " ":
                correct.append(len(options))
            options.append(m.group(2).strip())
        elif (key := line.partition(":")[0]) in ("answer", "tolerance", "reveal") and ":" in line:
            value = line.partition(":")[2].strip()
            if key == "reveal":
                reveal.append(value or " ")
            else:
                fields[key] = (number, value)
        elif line and not options and not fields:
            prompt.append(line)
        elif line:
            raise LessonError(path, number, f"unexpected line in a {kind} question: {line!r} (options are "
                                            "'- [ ] text' / '- [x] text'; then answer:, tolerance:, reveal:)")
    if not prompt:
        raise LessonError(path, start, "the question has no prompt (its first lines are the question)")
    text = " ".join(prompt)
    reveal_text = "\n".join(reveal).strip()
    if kind == "choice":
        if len(options) < 2 or len(correct) != 1:
            raise LessonError(path, start, f"a choice question needs two or more options '- [ ] …' with exactly one "
                                           f"marked '- [x] …' (found {len(options)} options, {len(correct)} marked)")
        if fields:
            raise LessonError(path, min(n for n, _ in fields.values()), "answer: and tolerance: belong to number "
                                                                         "questions; mark the right option [x]")
        return Question("choice", text, start, tuple(options), correct[0], reveal=reveal_text)
    if "answer" not in fields:
        raise LessonError(path, start, "a number question needs 'answer: <number or computed answer>'")
    answer = _answer(path, *fields["answer"])
    tol_line, tol = fields.get("tolerance", (start, "0"))
    relative = tol.endswith("%")
    try:
        tolerance = float(tol.rstrip("%")) / (100 if relative else 1)
    except ValueError:
        raise LessonError(path, tol_line, f"tolerance {tol!r}: write a number (absolute) or a percentage") from None
    if tolerance < 0:
        raise LessonError(path, tol_line, "tolerance must be ≥ 0")
    return Question("number", text, start, answer=answer, tolerance=tolerance, relative=relative,
                    reveal=reveal_text)


def _step(path: Path, title: str, line: int, body: list[tuple[int, str]]) -> Step:
    text: list[str] = []
    view, links, question = None, [], None
    i = 0
    while i < len(body):
        number, raw = body[i]
        stripped = raw.strip()
        if not stripped.startswith(":::"):
            text.append(raw.rstrip())
            i += 1
            continue
        what, _, rest = stripped[3:].strip().partition(" ")
        if not what:
            raise LessonError(path, number, "a lone ':::' closes a question; no question is open here")
        if what == "view":
            if view is not None:
                raise LessonError(path, number, f"step {title!r} already has a view (line {view.line}): one per step")
            name, _, settings = rest.strip().partition(" ")
            if not name:
                raise LessonError(path, number, "'::: view' needs a view name, e.g. '::: view schedules'")
            view = View(name, _settings(path, number, settings), number)
        elif what == "link":
            target, bar, label = rest.rpartition("|")
            page, _, settings = target.strip().partition(" ")
            if not bar or not page or not label.strip():
                raise LessonError(path, number, "write '::: link pages/<page>.py name=value … | what the link says'")
            links.append(Link(page, _settings(path, number, settings), label.strip(), number))
        elif what == "question":
            words = rest.split()
            if question is not None:
                raise LessonError(path, number, f"step {title!r} already has a question: one per step")
            end = next((j for j in range(i + 1, len(body)) if body[j][1].strip() == ":::"), None)
            if end is None:
                raise LessonError(path, number, "this question is never closed by a line ':::'")
            question = _question(path, number, words[0] if words else "", body[i + 1:end])
            i = end
        else:
            raise LessonError(path, number, f"unknown directive '::: {what}' (view, link or question)")
        i += 1
    return Step(title, "\n".join(text).strip(), line, view, tuple(links), question)


def parse_lesson(path: Path | str, text: str | None = None) -> Lesson:
    """The lesson in `path` (or `text`, named by `path`); LessonError naming the line of the first mistake.
    Views, links and computed answers are checked against the lab by lessons.check."""
    path = Path(path)
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise LessonError(path, 1, f"cannot read the file: {exc}") from None
    lines = text.splitlines()
    meta, end = _front_matter(path, lines)
    if meta["level"] not in LEVELS:
        raise LessonError(path, _meta_line(lines, "level"), f"level {meta['level']!r}: one of {', '.join(LEVELS)}")
    try:
        minutes = int(meta["minutes"])
    except ValueError:
        raise LessonError(path, _meta_line(lines, "minutes"), f"minutes {meta['minutes']!r}: a whole number") from None
    steps: list[Step] = []
    heading: tuple[str, int] | None = None
    body: list[tuple[int, str]] = []
    for number, raw in enumerate(lines[end:], start=end + 1):
        if raw.startswith("## "):
            if heading is not None:
                steps.append(_step(path, heading[0], heading[1], body))
            heading, body = (raw[3:].strip(), number), []
        elif heading is None:
            if raw.strip():
                raise LessonError(path, number, "text before the first step: each step starts with a '## ' heading")
        else:
            body.append((number, raw))
    if heading is None:
        raise LessonError(path, len(lines), "the lesson has no steps: start each with a '## ' heading")
    steps.append(_step(path, heading[0], heading[1], body))
    models = tuple(m.strip() for m in meta["models"].split(",") if m.strip())
    return Lesson(path.stem, path, meta["title"], meta["level"], minutes, models, meta["summary"], tuple(steps))


def _meta_line(lines: list[str], key: str) -> int:
    return next((i for i, line in enumerate(lines, start=1) if line.strip().startswith(f"{key}:")), 1)
