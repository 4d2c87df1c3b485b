"""Issue #18 in a real browser (Debian's Chromium through Playwright against `streamlit run`): a number
typed out of range is named and refused — type it, press the button, nothing runs — and the Train page's
runs table follows a run as it starts, with what it is doing.

Skipped with a clear message when Chromium/Playwright are missing (see tests/browser_harness.py)."""

from __future__ import annotations

import json
import time

import pytest
import torch

from diffusion_core.io.checkpoints import save_checkpoint
from diffusion_core.models import build_model

from . import browser_harness as bh
from .app_support import fake_run, stand_in_job

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ERROR = '[data-testid="stAlertContentError"]'


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root, ckpts, runs, env = bh.lab(tmp_path_factory, "browser_inputs")
    torch.manual_seed(0)
    save_checkpoint(ckpts / "default", build_model(bh.TINY), bh.tiny_noise_config(50))
    with bh.running_app(env, root / "streamlit.log") as url:
        yield {"url": url, "root": root, "runs": runs}


def errors(page) -> list[str]:
    return [t.strip() for t in page.locator(ERROR).all_inner_texts()]


def test_home_refuses_a_negative_seed(app):
    """Before: the box turned red and Generate sampled with seed 0."""
    with bh.browser_page() as page:
        page.goto(app["url"])
        page.get_by_role("button", name="Generate").wait_for()
        bh.wait_idle(page)
        page.get_by_label("Seed", exact=True).fill("-5")  # typed, not confirmed with Enter
        page.get_by_role("button", name="Generate").click()
        message = "Seed must be a whole number from 0 to 2,147,483,647; got -5"
        page.get_by_text(f"Could not generate: {message}").wait_for(timeout=60_000)
        bh.wait_idle(page)
        assert errors(page) == [message, f"Could not generate: {message}"]
        assert page.locator('[data-testid="stMain"] [data-testid="stImage"] img').count() == 0  # nothing sampled
        bh.screenshot(page, "home_seed")


def test_train_refuses_a_batch_of_zero(app):
    """Before: the box turned red and Start trained with batch 128."""
    with bh.browser_page() as page:
        page.goto(app["url"])
        bh.open_train(page)
        page.get_by_label("Batch size", exact=True).fill("0")
        page.get_by_role("button", name="Start training").click()
        message = "Batch size must be a whole number from 1 to 4,096; got 0"
        page.get_by_text(f"Could not start training: {message}").wait_for(timeout=60_000)
        bh.wait_idle(page)
        assert errors(page) == [message, f"Could not start training: {message}"]
        assert "run=" not in page.url and not [p for p in app["runs"].iterdir() if p.is_dir()]  # nothing ran
        page.get_by_text("Fix Batch size to see how long this run would take.").wait_for()
        bh.screenshot(page, "train_batch")


def test_a_fraction_in_a_whole_number_box_is_refused_not_truncated(app):
    """#26: Training steps 2.5 on the 2-D lab became 2 in the browser (an int box truncates what is typed), and
    training ran for 2 steps. Now the box keeps 2.5, names it, Train refuses it, and the link keeps whole numbers
    whole (2000, not 2000.0)."""
    with bh.browser_page() as page:
        page.goto(app["url"] + "/2D_lab")
        page.get_by_role("heading", name="2-D lab").first.wait_for()
        bh.wait_idle(page)
        box = page.get_by_role("spinbutton", name="Training steps")
        box.fill("2.5")
        box.press("Enter")
        message = "Training steps must be a whole number from 1 to 20,000; got 2.5"
        page.get_by_text(message).first.wait_for()
        assert box.input_value() == "2.5"
        assert "pts_steps=2.5" in page.url and "pts_n" not in page.url  # the points are at their default: left out
        page.get_by_role("button", name="Train", exact=True).click()
        page.get_by_text(f"Could not train: {message}").wait_for()
        assert page.locator('[data-testid="stMain"] .js-plotly-plot').count() == 0  # nothing trained


def grid_cells(page) -> list[str]:
    """The runs table's cells (st.dataframe draws on a canvas; its accessible table holds the text)."""
    return page.locator('[data-testid="stDataFrame"] [role="gridcell"]').all_inner_texts()


def wait_cells(page, wanted: list[str], timeout: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        cells = grid_cells(page)
        if all(w in cells for w in wanted):
            return cells
        assert time.monotonic() < deadline, f"the runs table still shows {cells}, not {wanted}"
        page.wait_for_timeout(500)


def test_the_runs_table_follows_a_starting_run(app):
    """Before: the table stayed at 'starting 0/3' while the panel above showed epoch 1/3, the caption read
    '?, ?, ?' and nothing said what a starting run was doing."""
    live = stand_in_job()
    try:
        run_dir = fake_run(app["runs"], "run-live", live.pid, state=None, epochs=3)
        (run_dir / "config.json").unlink()  # the trainer is still importing PyTorch
        with bh.browser_page() as page:
            page.goto(f"{app['url']}/Train?run=run-live")
            page.locator('[data-testid="stDataFrame"]').wait_for(timeout=120_000)
            cells = wait_cells(page, ["run-live", "starting", "0/3"])
            assert any(c.startswith("starting Python and importing PyTorch (") for c in cells)
            page.get_by_text("cnn, noise default T=1000, mnist").first.wait_for()
            page.get_by_text("starting · starting Python and importing PyTorch").wait_for()
            (run_dir / "config.json").write_text(json.dumps({
                "epochs": 3, "dataset": "mnist", "model": {"arch": "cnn"},
                "diffusion": {"type": "noise", "preset": "default", "schedule": {"T": 1000}}}))
            page.get_by_text("starting · loading the training data and building the model").wait_for()
            (run_dir / "status.json").write_text(json.dumps({"state": "running", "pid": live.pid, "epoch": 1,
                                                             "epochs": 3}))
            page.get_by_text("running · epoch 1/3").wait_for(timeout=30_000)  # the panel
            cells = wait_cells(page, ["running", "1/3"])  # and the table, without a reload
            assert "starting" not in cells and any(c.startswith("training epoch 2 of 3 (") for c in cells)
            bh.screenshot(page, "train_runs")
    finally:
        live.kill()
        live.wait()
