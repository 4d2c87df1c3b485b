"""Runs belong to whoever started them, in a real browser (#26 "Also build"): two students' browsers and a
teacher's against one `streamlit run` with a class passphrase and a teacher passphrase. A student's browser keeps
its token across a reload; another student can watch a run but not resume or delete it; the teacher can; a
wrong passphrase is named and lets no one in."""

from __future__ import annotations

import json

import pytest
import torch

from diffusion_core.io.checkpoints import save_checkpoint
from diffusion_core.models import build_model
from diffusion_core.services.ownership import owner_of
from tests.app_support import dead_pid, fake_run

from . import browser_harness as bh

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CLASS_WORD, TEACHER_WORD = "violet-heron", "owl-at-noon"


@pytest.fixture(scope="module")
def classroom(tmp_path_factory):
    bh.require_browser()
    root = tmp_path_factory.mktemp("classroom_owners")
    ckpts, runs = root / "checkpoints", root / "runs"
    ckpts.mkdir()
    runs.mkdir()
    torch.manual_seed(0)
    save_checkpoint(ckpts / "default", build_model(bh.TINY), bh.tiny_noise_config(50))
    env = {"DIFFUSION_LAB_CHECKPOINTS": str(ckpts), "DIFFUSION_LAB_RUNS": str(runs), "OMP_NUM_THREADS": "1",
           "DIFFUSION_LAB_CLASS_PASSPHRASE": CLASS_WORD, "DIFFUSION_LAB_TEACHER_PASSPHRASE": TEACHER_WORD}
    with bh.running_app(env, root / "streamlit.log") as url:
        yield url, runs


def finished_run(runs, run_id: str, token: str | None, name: str | None = None) -> None:
    run_dir = fake_run(runs, run_id, dead_pid(), state="finished", epoch=2, epochs=2, losses=(0.3, 0.2))
    job = json.loads((run_dir / "job.json").read_text())
    job.update(owner=owner_of(token) if token else None, name=name)
    (run_dir / "job.json").write_text(json.dumps(job))


def enter_class(page, url: str, word: str = CLASS_WORD) -> None:
    page.goto(url)
    page.get_by_label("Class passphrase").fill(word)
    page.get_by_role("button", name="Enter").click()
    bh.wait_idle(page)


def token_of(page) -> str:
    return next(c["value"] for c in page.context.cookies() if c["name"] == "diffusion_lab_browser")


def buttons(page) -> dict[str, bool]:
    """The run panel's Resume and Delete buttons: name → enabled."""
    return {name: page.get_by_role("button", name=name, exact=True).is_enabled() for name in ("Resume", "Delete")}


@pytest.mark.extended  # (33 s; tests/test_ownership.py holds the rules, this the cookies across reloads)
def test_two_students_and_a_teacher(classroom):
    url, runs = classroom
    with bh.browser_pages(3) as (ada, ben, teacher):
        # the gate: a wrong word is named and opens nothing; the right one opens the lab
        enter_class(ada, url + "/Train", "wrong")
        ada.get_by_text("That is not the class passphrase: ask your teacher for it.").wait_for()
        assert ada.get_by_role("button", name="Start training").count() == 0
        ada.get_by_label("Class passphrase").fill(CLASS_WORD)
        ada.get_by_role("button", name="Enter").click()
        ada.get_by_role("button", name="Start training").wait_for()
        enter_class(ben, url + "/Train")
        ben.get_by_role("button", name="Start training").wait_for()
        assert token_of(ada) != token_of(ben)

        finished_run(runs, "run-ada-1", token_of(ada), "Ada · cosine")
        finished_run(runs, "run-ada-2", token_of(ada))
        finished_run(runs, "run-ben", token_of(ben))

        # Ada, after a reload (same cookie, no gate again), manages her run and deletes it
        ada.reload()
        ada.goto(url + "/Train?run=run-ada-1")
        ada.get_by_role("heading", name="Run Ada · cosine (run-ada-1)").wait_for()
        bh.wait_idle(ada)
        assert ada.get_by_text("yours").count() >= 1 and buttons(ada) == {"Resume": True, "Delete": True}
        ada.get_by_role("button", name="Delete", exact=True).click()
        ada.get_by_text("Deleted run Ada · cosine (run-ada-1)").wait_for()
        assert not (runs / "run-ada-1").exists() and len(list((runs / ".deleted").iterdir())) == 1
        # …but only watches Ben's
        ada.goto(url + "/Train?run=run-ben")
        ada.get_by_text("Started in another browser").wait_for()
        assert buttons(ada) == {"Resume": False, "Delete": False}

        # Ben cannot touch Ada's other run
        ben.goto(url + "/Train?run=run-ada-2")
        ben.get_by_text("Started in another browser").wait_for()
        assert buttons(ben) == {"Resume": False, "Delete": False}

        # the teacher: a wrong passphrase is refused, the right one manages every run
        enter_class(teacher, url + "/Train?run=run-ben")
        teacher.get_by_text("Started in another browser").wait_for()
        teacher.get_by_text("Teacher", exact=True).click()
        teacher.get_by_label("Teacher passphrase").fill("owl")
        teacher.get_by_role("button", name="Sign in").click()
        teacher.get_by_text("That is not the teacher passphrase.").wait_for()
        teacher.get_by_label("Teacher passphrase").fill(TEACHER_WORD)
        teacher.get_by_role("button", name="Sign in").click()
        teacher.get_by_text("Signed in as the teacher").wait_for()
        bh.wait_idle(teacher)
        assert buttons(teacher) == {"Resume": True, "Delete": True}
        teacher.reload()  # still the teacher after a reload
        teacher.get_by_role("heading", name="Run run-ben").wait_for()
        bh.wait_idle(teacher)
        assert buttons(teacher) == {"Resume": True, "Delete": True}
        teacher.get_by_role("button", name="Delete", exact=True).click()
        teacher.get_by_text("Deleted run run-ben").wait_for()
        assert not (runs / "run-ben").exists() and (runs / "run-ada-2").exists()
