"""Lessons: guided walk-throughs of the lab, one Markdown file each in lessons/ (diffusion_core.lessons) — text,
a live view computed on the shipped models, links that open a page with exact settings, and checked questions.
Progress is kept per browser; ?lesson=<id>&lesson_step=<n> opens a lesson at a step."""

import streamlit as st

from pages.lab_ui import setup_page
from pages.lab_ui.lesson_ui import (
    LESSON,
    STEP,
    all_lessons,
    check_uploaded,
    lesson_list,
    open_lesson,
    record_position,
    show_links,
    show_question,
    show_view,
    teacher_tools,
)
from pages.lab_ui.url_state import url_state

setup_page("Lessons", (
    "Guided walk-throughs of diffusion, step by step, on the lab's own models: read, look at the live figure, "
    "answer the question, and open the page it links to with the settings already set. Your progress stays with "
    "this browser."
))
url_state("lessons", ["lesson", "lesson_step"])  # (LESSON, STEP: literal, so `lessons check` reads them)
lessons = all_lessons()
lesson_id = st.session_state.get(LESSON)

if not lesson_id:
    if not lessons:
        st.info("No lessons in `lessons/` yet: a lesson is one Markdown file there (see the README's format).")
    lesson_list(lessons)
    with st.expander("For teachers: write a lesson"):
        st.markdown("A lesson is one Markdown file in `lessons/`: front matter (title, level, minutes, models, "
                    "summary), then one `## ` heading per step, with `::: view …`, `::: link …` and "
                    "`::: question …` blocks. The README shows the format; `python -m diffusion_core lessons "
                    "check FILE` names the line of any mistake, as does this box.")
        check_uploaded()
    st.stop()

checked = lessons.get(str(lesson_id))
if checked is not None and checked.needs_models:
    st.warning(f"This lesson needs models this lab does not have: {', '.join(checked.missing_models)}.")
    if st.button("All lessons", key="lesson_back_models"):
        open_lesson(None)
    st.stop()
if checked is None or not checked.ok:
    st.error(f"There is no usable lesson {lesson_id!r}." + ("" if checked is None else "\n\n" + "\n\n".join(
        f"`{p}`" for p in checked.problems)))
    if st.button("All lessons", key="lesson_back_missing"):
        open_lesson(None)
    st.stop()

lesson = checked.lesson
try:
    index = min(max(int(st.session_state.get(STEP, 1)), 1), len(lesson.steps)) - 1
except (TypeError, ValueError):
    index = 0
st.session_state[STEP] = index + 1
record_position(str(lesson_id), index)
step = lesson.steps[index]

st.subheader(lesson.title)
st.progress((index + 1) / len(lesson.steps), text=f"Step {index + 1} of {len(lesson.steps)}: {step.title}")
st.markdown(f"### {step.title}")
st.markdown(step.text)
show_view(step)
show_links(step)
show_question(str(lesson_id), index, checked)

st.divider()
b1, b2, b3, b4 = st.columns([1, 1, 1, 2])
if b1.button("← Previous", key="lesson_prev", disabled=index == 0):
    open_lesson(str(lesson_id), index)
if b2.button("Next →", key="lesson_next", disabled=index == len(lesson.steps) - 1, type="primary"):
    open_lesson(str(lesson_id), index + 2)
if b3.button("All lessons", key="lesson_back"):
    open_lesson(None)
with b4:
    teacher_tools(checked)
