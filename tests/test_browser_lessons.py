"""#29 in Chromium: a first visitor of a fresh server opens a teacher's link into lesson 1 and gets the lab's
sidebar; a student answers a question wrong (and sees why), then right, reloads and keeps their progress, and
finishes the lesson; every link of every shipped lesson opens its page with the lesson's settings and no error."""

from __future__ import annotations

import json
import re
from urllib.parse import urlencode

import pytest

from diffusion_core.lessons import check_lesson, shipped_lessons
from diffusion_core.lessons.links import MODEL_KEYS
from tests import browser_harness as bh

pytestmark = [pytest.mark.browser, pytest.mark.slow]
LESSON1 = shipped_lessons()[0]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The app on the shipped checkpoints (the lessons' views and links use them), started fresh."""
    root, _, _, env = bh.lab(tmp_path_factory, "lessons", checkpoints=bh.ROOT / "checkpoints")
    with bh.running_app(env, root / "streamlit.log") as url:
        yield url


def answer(page, step_index: int, question, value) -> None:
    """Give `value` (an option's index, or a number) and press Check."""
    if question.kind == "choice":
        page.get_by_text(question.options[value], exact=True).click()
    else:
        box = page.get_by_placeholder("a number")
        box.fill(f"{value:.6g}")
        box.press("Enter")
    bh.wait_idle(page)
    page.get_by_role("button", name="Check").click()
    bh.wait_idle(page)


def test_a_student_completes_lesson_1_from_a_teachers_link(app):
    checked = check_lesson(LESSON1)
    steps = checked.lesson.steps
    with bh.browser_page() as page:
        # the first visitor of this server opens the link directly
        page.goto(f"{app}/Lessons?lesson=1_forward_process&lesson_step=1")
        page.get_by_text(f"Step 1 of {len(steps)}").wait_for()
        bh.wait_idle(page)
        links = [t.strip().splitlines()[-1].strip() for t in page.locator('[data-testid="stSidebarNav"] a')
                 .all_inner_texts()]
        assert "Lessons" in links and "2-D lab" in links and "streamlit app" not in links, links
        bh.assert_page_works(page, bh.CHART)  # the live view: a real digit noised at the snapshot steps

        first = steps[0].question
        wrong = next(i for i in range(len(first.options)) if i != first.correct)
        answer(page, 0, first, wrong)
        page.get_by_text("Not quite — read why below, then try again.").wait_for()
        page.get_by_text(first.reveal.split("$")[-1].strip()[:40], exact=False).first.wait_for()  # the reveal
        answer(page, 0, first, first.correct)
        page.get_by_text("Right.", exact=True).wait_for()

        page.get_by_role("button", name="Next →").click()
        page.get_by_text(f"Step 2 of {len(steps)}").wait_for()
        bh.wait_idle(page)
        answer(page, 1, steps[1].question, checked.answers[1])
        page.get_by_text("Right.", exact=True).wait_for()
        bh.screenshot(page, "lessons")

        page.reload()  # progress survives: the step from the address, the answer from this browser's file
        page.get_by_text(f"Step 2 of {len(steps)}").wait_for()
        bh.wait_idle(page)
        page.get_by_text("Right.", exact=True).wait_for()

        for index in range(2, len(steps)):
            page.get_by_role("button", name="Next →").click()
            page.get_by_text(f"Step {index + 1} of {len(steps)}").wait_for()
            bh.wait_idle(page)
            question = steps[index].question
            if question is not None:
                answer(page, index, question, question.correct if question.kind == "choice" else
                       checked.answers[index])
                page.get_by_text("Right.", exact=True).wait_for()
            assert page.locator(bh.TRACEBACK).count() == 0
        questions = sum(s.question is not None for s in steps)
        page.get_by_role("button", name="All lessons").click()
        page.get_by_text(f"{questions} of {questions} questions answered").wait_for()


def page_address(page_file: str) -> str:
    """The address path Streamlit gives a page file (pages/3_Reverse_diffusion.py → Reverse_diffusion)."""
    return re.sub(r"^\d+_", "", page_file.rsplit("/", 1)[-1].removesuffix(".py"))


ALL_LINKS = [(path.stem, link) for path in shipped_lessons() for step in check_lesson(path).lesson.steps
             for link in step.links]


def test_every_link_of_every_lesson_opens_its_page_with_its_settings(app):
    assert len(ALL_LINKS) >= 12
    with bh.browser_page() as page:
        for lesson, link in ALL_LINKS:
            query = {k: v if k in MODEL_KEYS else json.dumps(v, ensure_ascii=False) for k, v in link.settings.items()}
            page.goto(f"{app}/{page_address(link.page)}?{urlencode(query)}")
            page.locator('[data-testid="stSidebarNav"]').wait_for()
            bh.wait_idle(page)
            where = f"{lesson}: {link.label}"
            assert page.locator(bh.ERROR_BOX).count() == 0, (where, page.locator(bh.ERROR_BOX).all_inner_texts())
            assert page.locator(bh.TRACEBACK).count() == 0, where
            assert page.get_by_text("Ignored settings in the address").count() == 0, where
            kept = dict(re.findall(r"[?&]([^=&]+)=([^&]*)", page.url))
            assert set(query) <= set(kept), (where, query, page.url)  # the page kept every setting it was given
            for name, value in link.settings.items():
                if name.endswith("_tab"):  # the link opens a tab: that tab is the one shown
                    tab = page.get_by_role("tab", name=str(value), exact=True)
                    assert tab.get_attribute("aria-selected") == "true", (where, value)
