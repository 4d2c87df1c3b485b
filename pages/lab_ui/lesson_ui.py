"""The Lessons page's pieces: the list of lessons with this browser's progress, one step (text, live view, links,
question with its check and reveal), and the teacher's tools (printable summary, checking a lesson file)."""

from __future__ import annotations

import json

import streamlit as st

from diffusion_core.lessons import CheckedLesson, Step, check_lesson, is_correct, shipped_lessons
from diffusion_core.lessons.links import MODEL_KEYS
from diffusion_core.lessons.progress import load_progress, record_answer, record_step, save_progress
from diffusion_core.lessons.summary import summary_html
from diffusion_core.lessons.views import render

from .identity import current_actor

LESSON, STEP = "lesson", "lesson_step"  # the address's keys: ?lesson=1_forward_process&lesson_step=3 (from 1)
_PROGRESS = "_lesson_progress"


@st.cache_data(max_entries=16, show_spinner=False)
def checked_lesson(path: str, mtime_ns: int) -> CheckedLesson:
    """A lesson file checked (its answers computed), again only when the file changes."""
    return check_lesson(path)


def all_lessons() -> dict[str, CheckedLesson]:
    return {p.stem: checked_lesson(str(p), p.stat().st_mtime_ns) for p in shipped_lessons()}


@st.cache_data(max_entries=64, show_spinner=False)
def view_figure(name: str, params_json: str):
    return render(name, json.loads(params_json))


def progress() -> dict:
    """This browser's progress (read once per session from its file, kept in the session after)."""
    if _PROGRESS not in st.session_state:
        st.session_state[_PROGRESS] = load_progress(current_actor().owner)
    return st.session_state[_PROGRESS]


def _save() -> None:
    save_progress(current_actor().owner, progress())


def done_count(lesson_id: str, checked: CheckedLesson) -> tuple[int, int]:
    """(questions answered right, questions) of a lesson for this browser."""
    answers = progress().get(lesson_id, {}).get("answers", {})
    total = sum(step.question is not None for step in checked.lesson.steps)
    return sum(bool(a.get("correct")) for a in answers.values()), total


def lesson_list(lessons: dict[str, CheckedLesson]) -> None:
    """Every shipped lesson with its level, length and this browser's progress; a lesson file with a mistake is
    listed with its line-numbered message."""
    for lesson_id, checked in lessons.items():
        with st.container(border=True):
            if checked.needs_models:
                st.warning(f"**{checked.lesson.title}** needs models this lab does not have: "
                           f"{', '.join(checked.missing_models)} (ship them in checkpoints/ to offer it).")
                continue
            if checked.lesson is None or not checked.ok:
                st.error(f"**{lesson_id}** cannot be used:\n\n" + "\n\n".join(f"`{p}`" for p in checked.problems))
                continue
            lesson = checked.lesson
            right, total = done_count(lesson_id, checked)
            c1, c2 = st.columns([5, 1])
            c1.markdown(f"**{lesson.title}**  \n{lesson.summary}")
            c1.caption(f"{lesson.level} · about {lesson.minutes} min · {len(lesson.steps)} steps · "
                       f"{right} of {total} questions answered")
            started = lesson_id in progress()
            if c2.button("Continue" if started else "Start", key=f"lesson_open_{lesson_id}"):
                open_lesson(lesson_id, int(progress().get(lesson_id, {}).get("step", 0)) + 1)


def open_lesson(lesson_id: str | None, step: int = 1) -> None:
    st.session_state[LESSON], st.session_state[STEP] = lesson_id, step
    if lesson_id is None:
        st.session_state.pop(LESSON, None)
        st.session_state.pop(STEP, None)
        st.query_params.pop(LESSON, None)
        st.query_params.pop(STEP, None)
    st.rerun()


def show_view(step: Step) -> None:
    if step.view is None:
        return
    try:
        with st.spinner("Computing this view…"):
            shown = view_figure(step.view.name, json.dumps(step.view.params, sort_keys=True))
    except (ValueError, OSError) as exc:
        st.error(f"This view cannot be shown: {exc}")
        return
    # a figure that sets its own width (a square 2-D field, a strip of digits) keeps it; the rest fill the column
    st.plotly_chart(shown.figure, key="lesson_view_fig",
                    width="content" if shown.figure.layout.width else "stretch")
    if shown.caption:
        st.caption(shown.caption)


def show_links(step: Step) -> None:
    for link in step.links:
        query = {k: v if k in MODEL_KEYS else json.dumps(v, ensure_ascii=False) for k, v in link.settings.items()}
        st.page_link(link.page, label=link.label, icon=":material/open_in_new:", query_params=query)


def show_question(lesson_id: str, index: int, checked: CheckedLesson) -> None:
    """The step's question: an answer box, Check, whether it was right, and the explanation after a try."""
    question = checked.lesson.steps[index].question
    if question is None:
        return
    st.markdown(f"**Question.** {question.prompt}")
    key = f"lesson_{lesson_id}_{index}"
    if question.kind == "choice":
        given = st.radio("Your answer", range(len(question.options)), index=None, key=f"{key}_choice",
                         format_func=lambda i: question.options[i], label_visibility="collapsed")
    else:
        given = st.number_input("Your answer", value=None, format="%g", key=f"{key}_number",
                                placeholder="a number", label_visibility="collapsed")
    answer = checked.answers.get(index)
    if st.button("Check", key=f"{key}_check", disabled=given is None):
        record_answer(progress(), lesson_id, index, given, is_correct(question, given, answer))
        _save()
    kept = progress().get(lesson_id, {}).get("answers", {}).get(str(index))
    if kept is None:
        return
    if kept.get("correct"):
        st.success("Right.")
    else:
        st.error("Not quite — read why below, then try again.")
    if question.reveal:
        shown = f"{answer:.4g}" if answer is not None else "?"
        st.info(question.reveal.replace("{answer}", shown))


def teacher_tools(checked: CheckedLesson) -> None:
    lesson = checked.lesson
    st.download_button("Teacher's summary (printable page)", summary_html(checked), f"{lesson.id}-summary.html",
                       "text/html", key="lesson_summary_dl",
                       help="What the lesson covers, its questions with their answers (computed ones as computed "
                            "now) and explanations, and the pages it opens: print it from the browser.")


def check_uploaded() -> None:
    """A teacher's own lesson file, checked as `lessons check` would (line-numbered problems), before it goes
    into lessons/."""
    upload = st.file_uploader("Check a lesson file", type=["md"], key="lesson_upload",
                              help="The file is only read and checked here; put it in lessons/ to offer it.")
    if upload is None:
        return
    try:
        text = upload.getvalue().decode("utf-8")
    except UnicodeDecodeError:
        st.error(f"{upload.name}: not UTF-8 text")
        return
    checked = check_lesson(upload.name, text)
    if checked.ok:
        st.success(f"{upload.name}: ok — {checked.lesson.title!r}, {len(checked.lesson.steps)} steps.")
    for problem in checked.problems:
        st.error(f"`{problem}`")


def record_position(lesson_id: str, index: int) -> None:
    if progress().get(lesson_id, {}).get("step") != index:
        record_step(progress(), lesson_id, index)
        _save()
