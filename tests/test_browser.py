"""End to end in a real browser: Debian's Chromium driven by Playwright against `streamlit run`. Every page
must show its main chart, image or table and no error box.

With DIFFUSION_LAB_SCREENSHOTS=docs the app runs on the shipped checkpoints and the screenshots (the README's
docs/*.png) show what a visitor gets; otherwise on a tiny untrained model, no screenshots.

Skipped with a clear message when Chromium/Playwright are missing; CI sets
DIFFUSION_LAB_REQUIRE_BROWSER=1 so that they fail there instead.
"""

from __future__ import annotations

import json
import os
import re
import time

import pytest
import torch

from diffusion_core.io.checkpoints import save_checkpoint
from diffusion_core.models import build_model

from . import browser_harness as bh

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREENSHOTS = os.environ.get("DIFFUSION_LAB_SCREENSHOTS")
DEFAULT_MODEL = "shipped:default-unet" if SCREENSHOTS else "shipped:default"  # the model of Home's Generate


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root, ckpts, runs, env = bh.lab(tmp_path_factory, "browser", bh.ROOT / "checkpoints" if SCREENSHOTS else None)
    if not SCREENSHOTS:
        torch.manual_seed(0)
        save_checkpoint(ckpts / "default", build_model(bh.TINY), bh.tiny_noise_config(50))
        bench = root / "samplers_nfe.json"  # what benchmarks/samplers_nfe.py writes, for the tiny default
        rows = [{"sampler": s, "spacing": sp, "nfe": nfe, "steps": nfe, "n": 500, "fid": 30.0 - nfe, "fid_se": 2.0,
                 "kid": 0.02, "kid_se": 0.004} for s in ("ddim", "euler") for sp in ("uniform", "karras")
                for nfe in (10, 20)]
        bench.write_text(json.dumps({"model": "default", "n": 500, "reference": "MNIST test split", "best": {},
                                     "rows": rows}))
        env["DIFFUSION_LAB_SAMPLER_BENCHMARK"] = str(bench)
    # #30: two students' clicks a moment apart share one batch (on one worker: with two, each would take one)
    env["DIFFUSION_LAB_BATCH_WAIT_MS"], env["DIFFUSION_LAB_WORKERS"] = "1500", "1"
    env["DIFFUSION_LAB_COMPUTE"] = "process"  # as a class's server samples: in its sampling child
    with bh.running_app(env, root / "streamlit.log") as url:
        yield {"url": url, "root": root, "runs": runs}


def main_images(page):
    return page.locator('[data-testid="stMain"] [data-testid="stImage"] img')


def test_generate_on_the_home_page_shows_a_grid(app):
    with bh.browser_page() as page:
        page.goto(app["url"])
        page.get_by_role("button", name="Generate").wait_for()
        assert main_images(page).count() == 0
        page.get_by_role("button", name="Generate").click()
        main_images(page).first.wait_for()
        bh.wait_idle(page)
        img = main_images(page).first
        box = img.bounding_box()
        assert box["width"] > 100 and box["height"] > 100  # a 4×4 grid of 28-pixel digits, scaled up
        assert page.get_by_text("seed 0").count() >= 1
        bh.assert_page_works(page, bh.IMAGE)
        bh.screenshot(page, "home")


def fid_off(page) -> None:
    """Untick "Measure FID during training" (the quick recipe's 256-sample FID at the last epoch would be most of a
    short run's time; these tests watch the run, not its FID)."""
    page.get_by_text("Measure FID during training", exact=True).click()
    bh.wait_idle(page)
    assert not page.get_by_role("checkbox", name="Measure FID during training").is_checked()


def test_train_then_sample_and_step_through(app):
    with bh.browser_page() as page:
        page.goto(app["url"])
        bh.open_train(page)

        def set_number(label: str, value: str) -> None:
            box = page.get_by_label(label, exact=True)
            box.fill(value)
            box.press("Enter")
            bh.wait_idle(page)

        page.get_by_text("Custom", exact=True).click()
        bh.wait_idle(page)
        set_number("T", "40")
        set_number("Training images (0 = all)", "64")
        set_number("Epochs", "2")
        set_number("Batch size", "32")
        fid_off(page)
        page.get_by_role("button", name="Start training").click()
        # live progress, then the finished state, without reloading the page
        page.get_by_text("epoch 2/2").first.wait_for(timeout=240_000)
        page.get_by_text("finished").first.wait_for(timeout=240_000)
        assert "run=" in page.url
        bh.wait_idle(page)
        bh.assert_page_works(page, bh.CHART)  # the loss curve
        page.locator(bh.CHART).filter(has_text="Training loss by noise level").first.wait_for()  # the heat strip
        bh.screenshot(page, "train")

        page.get_by_role("link", name="Sample from this run").click()
        slider = bh.run_reverse(page)
        # the first frame: pure noise at the sampler's first step — T = 40 itself, or just below it on the quick
        # recipe's cosine schedule, whose log-SNR spacing skips the steps where ᾱ_t is all but 0
        first = page.get_by_text(re.compile(r"^z_t at t = \d+$"))
        assert first.count() == 1 and 30 <= int(first.inner_text().rsplit(" ", 1)[1]) <= 40
        before = main_images(page).first.get_attribute("src")
        slider.focus()
        slider.press("End")  # the last frame: the samples
        page.get_by_text("z_t at t = 0", exact=True).wait_for()
        bh.wait_idle(page)
        after = main_images(page).first.get_attribute("src")
        assert before != after
        bh.assert_page_works(page, bh.IMAGE)


def test_reverse_diffusion_stops_midway_through_the_default_models_trajectory(app):
    with bh.browser_page() as page:
        page.goto(f"{app['url']}/Reverse_diffusion?model={DEFAULT_MODEL}")
        slider = bh.run_reverse(page, timeout=300_000)
        caption = page.get_by_text(re.compile(r"^z_t at t = \d+$"))

        def shown_t() -> int:
            return int(caption.inner_text().rsplit(" ", 1)[1])

        T = shown_t()  # the first frame: z_T
        frames = int(slider.get_attribute("max")) + 1  # an <input type="range">
        slider.focus()
        for _ in range(frames // 2):
            slider.press("ArrowRight")
        bh.wait_idle(page)
        assert 0 < shown_t() < T, f"stopped at t = {shown_t()} of {T}"
        assert main_images(page).count() == 2  # z_t and x̂0
        bh.assert_page_works(page, bh.IMAGE)
        page.wait_for_function(  # the frame's own images, not the previous frame's still on screen
            "() => [...document.querySelectorAll('[data-testid=\"stMain\"] img')]"
            ".every(i => i.complete && i.naturalWidth)")
        bh.screenshot(page, "reverse_diffusion")


def test_reverse_diffusion_shows_where_the_steps_go_and_quality_against_cost(app):
    with bh.browser_page() as page:
        page.goto(f"{app['url']}/Reverse_diffusion?model={DEFAULT_MODEL}")
        page.get_by_role("button", name="Run reverse diffusion").wait_for()
        bh.wait_idle(page)
        page.get_by_text("Where the steps go, and quality against cost").click()
        charts = page.locator(bh.CHART)
        charts.nth(1).wait_for()  # the steps on the log-SNR curve, and FID against NFE from the benchmark
        bh.wait_idle(page)
        assert page.get_by_text("best at").count() + page.get_by_text("n = 500 per point").count() >= 1
        bh.assert_page_works(page, bh.CHART)
        bh.screenshot(page, "sampler_costs")


@pytest.mark.skipif(not SCREENSHOTS, reason="only refreshes the README's screenshots (every page's content is "
                    "checked in test_classroom_server.py's walk)")
@pytest.mark.parametrize("name", ["Schedules", "Degradations", "Evaluate"])
def test_screenshots_of_the_other_pages(app, name):
    with bh.browser_page() as page:
        page.goto(app["url"])
        page.get_by_role("link", name=name).first.click()
        page.get_by_role("heading", name=name).first.wait_for()
        bh.wait_idle(page)
        bh.assert_page_works(page, bh.TABLE if name == "Evaluate" else bh.CHART)
        bh.screenshot(page, name.lower())


def test_explore_compares_the_default_models_digits_with_real_ones(app):
    with bh.browser_page() as page:
        page.goto(f"{app['url']}/Explore?model={DEFAULT_MODEL}")
        page.get_by_role("button", name="Generate samples").wait_for()
        bh.wait_idle(page)
        page.get_by_role("button", name="Generate samples").click()
        page.get_by_text("real test digits vs 200 generated").wait_for(timeout=300_000)
        bh.wait_idle(page)
        bh.assert_page_works(page, bh.CHART)  # the densities, real and generated
        page.get_by_role("tab", name="PCA clusters").click()
        bh.wait_idle(page)
        bh.assert_page_works(page, bh.CHART)  # the clusters
        bh.assert_page_works(page, bh.TABLE)  # their silhouette and agreement with the classes
        bh.screenshot(page, "explore")


@pytest.mark.extended  # (41 s; test_batching holds merged batches to each student's own images)
def test_two_browser_sessions_generate_and_train_without_cross_talk(app):
    """Two separate browsers on one server: each sees its own samples and its own training run."""
    with bh.browser_pages(2) as (a, b):
        for page, seed in ((a, "1"), (b, "2")):
            page.goto(app["url"])
            page.get_by_role("button", name="Generate").wait_for()
            box = page.get_by_label("Seed", exact=True)
            box.fill(seed)
            box.press("Enter")
            bh.wait_idle(page)
        a.get_by_role("button", name="Generate").click()  # both requests in flight together
        b.get_by_role("button", name="Generate").click()
        for page, mine, theirs in ((a, "seed 1", "seed 2"), (b, "seed 2", "seed 1")):
            page.get_by_text(mine).first.wait_for()
            bh.wait_idle(page)
            assert page.get_by_text(theirs).count() == 0
            # #30: one network batch of 2 × 16 images served both, each grid from its own seeds
            assert page.get_by_text("in one batch with another student's request (32 images)").count() == 1
        srcs = [p.locator('[data-testid="stMain"] [data-testid="stImage"] img').first.get_attribute("src")
                for p in (a, b)]
        assert srcs[0] != srcs[1]
        a.get_by_role("button", name="Generate").click()  # asked before: answered from the cache at once
        a.get_by_text("from the cache (asked before)").wait_for(timeout=10_000)

        run_ids = []
        for page in (a, b):
            bh.open_train(page)
            if page is b:  # #28: the second student trains a flow-matching model
                page.get_by_text("Flow matching", exact=True).click()
                bh.wait_idle(page)
            for label, value in (("Training images (0 = all)", "32"), ("Epochs", "1"), ("Batch size", "32")):
                box = page.get_by_label(label, exact=True)
                box.fill(value)
                box.press("Enter")
                bh.wait_idle(page)
            fid_off(page)
            page.get_by_role("button", name="Start training").click()
            page.wait_for_url("**run=*")
            run_ids.append(page.url.split("run=")[1].split("&")[0])
        assert run_ids[0] != run_ids[1]
        for page in (a, b):
            page.get_by_text("finished").first.wait_for(timeout=240_000)
        assert {p.name for p in app["runs"].iterdir() if p.is_dir()} >= set(run_ids)
        for run in run_ids:  # each page's own run (a page's "finished" may be the other's, listed below its own)
            status = app["runs"] / run / "status.json"
            deadline = time.monotonic() + 240
            while not (status.is_file() and json.loads(status.read_text()).get("state") == "finished"):
                assert time.monotonic() < deadline, f"{run} did not finish"
                time.sleep(0.5)
        configs = [json.loads((app["runs"] / run / "config.json").read_text())["diffusion"] for run in run_ids]
        assert [c["type"] for c in configs] == ["noise", "flow"]
