"""#29: lessons as Markdown files — every shipped lesson parses and checks against the lab (views, links, computed
answers), computed answers follow the code that computes them, a malformed file is named by its line in the CLI
and on the page, answers are checked within their tolerance, progress is kept per browser, and the teacher's
summary carries every answer."""

from __future__ import annotations

import shutil

import pytest

from diffusion_core.cli import main
from diffusion_core.lessons import answers, check_lesson, is_correct, parse_lesson, shipped_lessons
from diffusion_core.lessons.check import LESSONS_DIR
from diffusion_core.lessons.format import LessonError
from diffusion_core.lessons.links import page_settings
from diffusion_core.lessons.progress import load_progress, record_answer, save_progress
from diffusion_core.lessons.summary import summary_html
from diffusion_core.process.schedules import preset_schedule
from tests.app_support import app, no_exceptions

SHIPPED = shipped_lessons(LESSONS_DIR)
FRONT = "---\ntitle: T\nlevel: beginner\nminutes: 5\nmodels: default\nsummary: S\n---\n"


def test_six_lessons_ship_in_order_each_with_questions_and_links():
    assert [p.stem.split("_")[0] for p in SHIPPED] == ["1", "2", "3", "4", "5", "6"]
    for path in SHIPPED:
        lesson = parse_lesson(path)
        questions = [s.question for s in lesson.steps if s.question is not None]
        assert len(questions) >= 3 and {q.kind for q in questions} == {"choice", "number"}, path.name
        assert sum(len(s.links) for s in lesson.steps) >= 2, path.name
        assert all(q.reveal for q in questions), f"{path.name}: every question explains itself"
        assert 10 <= lesson.minutes <= 20


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_lesson_checks_against_the_lab(path):
    """Views that exist and take their settings, links to pages and settings that exist, models that are shipped,
    computed answers that compute."""
    checked = check_lesson(path)
    assert checked.ok, [str(p) for p in checked.problems]
    numbers = [i for i, s in enumerate(checked.lesson.steps) if s.question and s.question.kind == "number"]
    assert sorted(checked.answers) == numbers
    for step in checked.lesson.steps:
        for link in step.links:
            keys = page_settings(link.page)
            assert keys is not None and link.page.startswith("pages/")


def test_computed_answers_are_computed_from_the_schedule_code(monkeypatch):
    """A test double of the schedule code (ᾱ_t squared, as if every β were about doubled) moves lesson 1's answers
    with it: they are computed when the lesson is checked, not typed into the file."""
    lesson1 = SHIPPED[0]
    before = check_lesson(lesson1).answers
    monkeypatch.setattr(answers, "preset_schedule", lambda name: _Squared(preset_schedule(name)))
    after = check_lesson(lesson1).answers
    assert set(after) == set(before) and all(after[i] != before[i] for i in before), (before, after)
    model1 = preset_schedule("model1").alpha_bars ** 2
    assert after[1] == float((model1 < 0.5).nonzero()[0])  # "at which t does ᾱ_t of model1 fall below ½"
    assert after[3] == pytest.approx(float(preset_schedule("model2").alpha_bars[-1]) ** 2)  # "ᾱ_T of model2"


class _Squared:
    """A schedule whose ᾱ_t is squared."""

    def __init__(self, schedule) -> None:
        self.alpha_bars, self.T = schedule.alpha_bars ** 2, schedule.T


@pytest.mark.parametrize("body, line, message", [
    ("---\ntitle: T\n", 2, "never closed"),
    ("---\ntitle: T\nlevel: expert\nminutes: 5\nmodels:\nsummary: S\n---\n## A\n", 3, "level 'expert'"),
    (FRONT + "Intro text\n## A\n", 8, "text before the first step"),
    (FRONT + "## A\ntext\n::: viewx schedules\n", 10, "unknown directive '::: viewx'"),
    (FRONT + "## A\n::: question choice\nWhy?\n- [ ] a\n- [ ] b\n:::\n", 9, "exactly one marked"),
    (FRONT + "## A\n::: question number\nHow many?\nanswer: lots\n:::\n", 11, "neither a number nor a computed"),
    (FRONT + "## A\n::: question number\nHow many?\nanswer: 3\n", 9, "never closed"),
    (FRONT + "## A\n::: link pages/2_Schedules.py sched_axis=t\n", 9, "| what the link says"),
    (FRONT + "## A\n::: view schedules presets\n", 9, "'presets' is not a setting"),
])
def test_a_malformed_lesson_is_named_by_its_line(tmp_path, body, line, message):
    with pytest.raises(LessonError) as caught:
        parse_lesson(tmp_path / "bad.md", body)
    assert caught.value.line == line and message in caught.value.message, str(caught.value)
    assert str(caught.value).startswith(f"bad.md:{line}: ")


@pytest.mark.parametrize("step, line, message", [
    ("::: view schedulez\n", 9, "unknown view 'schedulez'"),
    ("::: view schedules colour=red\n", 9, "view schedules takes presets, quantity, normalise; got colour"),
    ("::: link pages/99_Nowhere.py x=1 | Go\n", 9, "no page 'pages/99_Nowhere.py'"),
    ("::: link pages/2_Schedules.py rd_seed=7 | Go\n", 9, "keeps no setting 'rd_seed'"),
    ("::: link pages/3_Reverse_diffusion.py model=default | Go\n", 9, "write model=shipped:<name>"),
    ("::: question number\nHow?\nanswer: alpha_bar_crosses(preset=model9, level=0.5)\n:::\n", 9,
     "cannot be computed: preset 'model9'"),
    ("::: question number\nHow?\nanswer: steps_of(schedule=model1)\n:::\n", 9, "steps_of takes preset; got schedule"),
])
def test_a_lesson_that_does_not_fit_the_lab_is_named_by_its_line(tmp_path, step, line, message):
    checked = check_lesson(tmp_path / "bad.md", FRONT + "## A\n" + step)
    assert [p.line for p in checked.problems] == [line] and message in checked.problems[0].message, \
        [str(p) for p in checked.problems]


def test_the_cli_names_the_file_and_line_and_fails(tmp_path, capsys):
    bad = tmp_path / "bad.md"
    bad.write_text(FRONT + "## A\n::: view schedulez\n")
    assert main(["lessons", "check", str(bad)]) == 1
    assert f"{bad}:9: unknown view 'schedulez'" in capsys.readouterr().err
    assert main(["lessons", "check", str(SHIPPED[0])]) == 0
    out = capsys.readouterr().out
    assert "ok — 'The forward process and its schedules'" in out
    assert f"step 2: {check_lesson(SHIPPED[0]).answers[1]:.4g}" in out


def test_the_page_lists_a_broken_lesson_with_its_line(tmp_path, monkeypatch):
    shutil.copy(SHIPPED[0], tmp_path / SHIPPED[0].name)
    (tmp_path / "2_broken.md").write_text(FRONT + "## A\n::: question choice\nWhy?\n- [x] a\n- [x] b\n:::\n")
    monkeypatch.setenv("DIFFUSION_LAB_LESSONS", str(tmp_path))
    at = app("pages/10_Lessons.py").run(timeout=120)
    no_exceptions(at)
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "2_broken.md:9: a choice question needs" in errors[0], errors
    assert [b.key for b in at.button if b.key.startswith("lesson_open_")] == ["lesson_open_1_forward_process"]
    at = app("pages/10_Lessons.py", {"lesson": "2_broken"}).run(timeout=120)
    assert any("There is no usable lesson '2_broken'" in e.value and "2_broken.md:9" in e.value for e in at.error)


def test_answers_are_checked_within_their_tolerance(tmp_path):
    lesson = parse_lesson(tmp_path / "q.md", FRONT + "## A\n::: question number\nN?\nanswer: 100\ntolerance: 5%\n"
                                                     ":::\n## B\n::: question number\nM?\nanswer: 2\ntolerance: 0.5\n"
                                                     ":::\n## C\n::: question choice\nW?\n- [ ] a\n- [x] b\n:::\n")
    rel, absolute, choice = (s.question for s in lesson.steps)
    assert is_correct(rel, 104.9, 100.0) and not is_correct(rel, 105.1, 100.0) and not is_correct(rel, "x", 100.0)
    assert is_correct(absolute, 2.5, 2.0) and not is_correct(absolute, 2.6, 2.0)
    assert is_correct(choice, 1) and not is_correct(choice, 0) and not is_correct(choice, None)


def test_progress_is_kept_per_browser_and_a_right_answer_stays(tmp_path):
    alice, bob = "a" * 64, "b" * 64
    progress = record_answer({}, "1_forward_process", 1, 503, True)
    record_answer(progress, "1_forward_process", 1, 7, False)  # a later wrong try does not undo it
    save_progress(alice, progress, tmp_path)
    assert load_progress(alice, tmp_path)["1_forward_process"]["answers"]["1"] == {"given": 503, "correct": True}
    assert load_progress(bob, tmp_path) == {}
    with pytest.raises(ValueError):
        load_progress("../../etc/passwd", tmp_path)


def test_the_teachers_summary_has_every_question_with_its_answer():
    checked = check_lesson(SHIPPED[0])
    page = summary_html(checked)
    for index, step in enumerate(checked.lesson.steps):
        q = step.question
        if q is None:
            continue
        assert q.prompt.split("$")[0][:30] in page.replace("&#x27;", "'")
        if q.kind == "number":
            assert f"Answer: {checked.answers[index]:.4g}" in page
        else:
            assert q.options[q.correct][:40].replace("'", "&#x27;") in page
    assert page.count("<li>") >= len(checked.lesson.steps)


def test_the_cli_lists_the_lessons_writes_a_summary_and_names_the_computed_answers(tmp_path, capsys):
    assert main(["lessons", "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in listed] == [p.stem for p in SHIPPED]
    out = tmp_path / "sheet.html"
    assert main(["lessons", "summary", str(SHIPPED[0]), "--out", str(out)]) == 0
    assert "<h1>The forward process and its schedules</h1>" in out.read_text()
    assert main(["lessons", "answers"]) == 0
    assert "alpha_bar_crosses(preset, level): The first t at which" in capsys.readouterr().out
    broken = tmp_path / "broken.md"
    broken.write_text("no front matter\n")
    assert main(["lessons", "summary", str(broken)]) == 1
    assert "broken.md:1: a lesson starts with front matter" in capsys.readouterr().err


def test_every_view_of_every_shipped_lesson_draws_a_figure_with_data():
    """What a student sees at each step is computed: every view renders on the shipped models and has traces."""
    from diffusion_core.lessons.views import render

    for path in SHIPPED:
        for step in parse_lesson(path).steps:
            if step.view is not None:
                shown = render(step.view.name, step.view.params)
                assert shown.figure.data, (path.name, step.title)
