"""End to end in a real browser: Debian's Chromium driven by Playwright against `streamlit run`.

Skipped with a clear message when Chromium/Playwright are missing; CI sets
DIFFUSION_LAB_REQUIRE_BROWSER=1 so that they fail there instead.
"""

from __future__ import annotations

import os

import pytest
import torch

from diffusion_core.checkpoints import save_checkpoint
from diffusion_core.models import build_model

from .browser_harness import browser_page, browser_pages, require_browser, running_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TINY = {"arch": "cnn", "params": {"hidden": [8, 8], "kernel_size": 3, "time_embed_dim": 8}}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    require_browser()
    root = tmp_path_factory.mktemp("browser")
    ckpts, runs, data = root / "checkpoints", root / "runs", root / "data"
    for d in (ckpts, runs, data):
        d.mkdir()
    torch.manual_seed(0)
    save_checkpoint(ckpts / "default", build_model(TINY), {
        "model": TINY, "diffusion": {"type": "noise", "schedule": {"kind": "linear", "beta1": 1e-4, "beta2": 0.02,
                                                                     "T": 50}}, "epochs": 1})
    env = {"DIFFUSION_LAB_CHECKPOINTS": str(ckpts), "DIFFUSION_LAB_RUNS": str(runs), "DIFFUSION_LAB_DATA": str(data),
           "OMP_NUM_THREADS": "1"}
    with running_app(env, root / "streamlit.log") as url:
        yield {"url": url, "root": root, "runs": runs}


def shot(tmp_path, name: str) -> str:
    """Where a page screenshot goes: $DIFFUSION_LAB_SCREENSHOTS (e.g. docs, to refresh the README's) or tmp."""
    folder = os.environ.get("DIFFUSION_LAB_SCREENSHOTS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        return os.path.join(folder, f"{name}.png")
    return str(tmp_path / f"{name}.png")


def wait_idle(page) -> None:
    """Wait until Streamlit has finished running the script (the status widget disappears)."""
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=120_000)


def main_images(page):
    return page.locator('[data-testid="stMain"] [data-testid="stImage"] img')


def test_generate_on_the_home_page_shows_a_grid(app, tmp_path):
    with browser_page(tmp_path / "profile") as page:
        page.goto(app["url"])
        page.get_by_role("button", name="Generate").wait_for()
        assert main_images(page).count() == 0
        page.get_by_role("button", name="Generate").click()
        main_images(page).first.wait_for()
        wait_idle(page)
        img = main_images(page).first
        box = img.bounding_box()
        assert box["width"] > 100 and box["height"] > 100  # a 4×4 grid of 28-pixel digits, scaled up
        assert page.get_by_text("seed 0").count() >= 1
        page.screenshot(path=shot(tmp_path, "home"), full_page=True)


def test_train_then_sample_and_step_through(app, tmp_path):
    with browser_page(tmp_path / "profile") as page:
        page.goto(app["url"])
        page.get_by_role("link", name="Train").first.click()
        page.get_by_role("button", name="Start training").wait_for()
        wait_idle(page)

        def set_number(label: str, value: str) -> None:
            box = page.get_by_label(label, exact=True)
            box.fill(value)
            box.press("Enter")
            wait_idle(page)

        page.get_by_text("Custom", exact=True).click()
        wait_idle(page)
        set_number("T", "40")
        set_number("Training images (0 = all)", "64")
        set_number("Epochs", "2")
        set_number("Batch size", "32")
        page.get_by_role("button", name="Start training").click()
        # live progress, then the finished state, without reloading the page
        page.get_by_text("epoch 2/2").first.wait_for(timeout=240_000)
        page.get_by_text("finished").first.wait_for(timeout=240_000)
        assert "run=" in page.url
        page.screenshot(path=shot(tmp_path, "train"), full_page=True)

        page.get_by_role("link", name="Sample from this run").click()
        page.get_by_role("button", name="Run reverse diffusion").wait_for()
        wait_idle(page)
        page.get_by_role("button", name="Run reverse diffusion").click()
        slider = page.get_by_role("slider").first
        slider.wait_for(timeout=120_000)
        wait_idle(page)
        assert page.get_by_text("z_t at t = 40", exact=True).count() == 1  # the first frame: z_T
        before = main_images(page).first.get_attribute("src")
        slider.focus()
        slider.press("End")  # the last frame: the samples
        page.get_by_text("z_t at t = 0", exact=True).wait_for()
        wait_idle(page)
        after = main_images(page).first.get_attribute("src")
        assert before != after
        page.screenshot(path=shot(tmp_path, "reverse_diffusion"), full_page=True)


@pytest.mark.parametrize("name", ["Schedules", "Degradations", "Explore", "Evaluate"])
def test_other_pages_render_without_errors(app, tmp_path, name):
    with browser_page(tmp_path / "profile") as page:
        page.goto(app["url"])
        page.get_by_role("link", name=name).first.click()
        page.get_by_role("heading", name=name).first.wait_for()
        wait_idle(page)
        if name in ("Schedules", "Degradations"):
            page.locator('[data-testid="stPlotlyChart"]').first.wait_for()
        assert page.locator('[data-testid="stException"]').count() == 0  # no traceback on the page
        page.screenshot(path=shot(tmp_path, name.lower()), full_page=True)


def test_two_browser_sessions_generate_and_train_without_cross_talk(app, tmp_path):
    """Two separate browsers on one server: each sees its own samples and its own training run."""
    with browser_pages(tmp_path / "a", tmp_path / "b") as (a, b):
        for page, seed in ((a, "1"), (b, "2")):
            page.goto(app["url"])
            page.get_by_role("button", name="Generate").wait_for()
            box = page.get_by_label("Seed", exact=True)
            box.fill(seed)
            box.press("Enter")
            wait_idle(page)
        a.get_by_role("button", name="Generate").click()  # both requests in flight together
        b.get_by_role("button", name="Generate").click()
        for page, mine, theirs in ((a, "seed 1", "seed 2"), (b, "seed 2", "seed 1")):
            page.get_by_text(mine).first.wait_for()
            wait_idle(page)
            assert page.get_by_text(theirs).count() == 0
        srcs = [p.locator('[data-testid="stMain"] [data-testid="stImage"] img').first.get_attribute("src")
                for p in (a, b)]
        assert srcs[0] != srcs[1]

        run_ids = []
        for page in (a, b):
            page.get_by_role("link", name="Train").first.click()
            page.get_by_role("button", name="Start training").wait_for()
            wait_idle(page)
            for label, value in (("Training images (0 = all)", "32"), ("Epochs", "1"), ("Batch size", "32")):
                box = page.get_by_label(label, exact=True)
                box.fill(value)
                box.press("Enter")
                wait_idle(page)
            page.get_by_role("button", name="Start training").click()
            page.wait_for_url("**run=*")
            run_ids.append(page.url.split("run=")[1].split("&")[0])
        assert run_ids[0] != run_ids[1]
        for page in (a, b):
            page.get_by_text("finished").first.wait_for(timeout=240_000)
        assert {p.name for p in app["runs"].iterdir() if p.is_dir()} >= set(run_ids)
