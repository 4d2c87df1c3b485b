"""The teaching views in a real browser (Debian's Chromium driven by Playwright against `streamlit run`): the 2-D
lab driven through its drawing canvas, the loss weighting on Schedules, the spectra on Reverse diffusion, and
Evaluate's loss by noise level, likelihood bound and memorisation — each must show its chart and no error box.

With DIFFUSION_LAB_SCREENSHOTS=docs the app runs on the shipped checkpoints and the screenshots refresh the
README's; otherwise on a tiny untrained model (and the shipped classifier), no screenshots.
"""

from __future__ import annotations

import os
import re
import shutil

import pytest
import torch

from diffusion_core.io.checkpoints import save_checkpoint
from diffusion_core.models import build_model

from .browser_harness import (
    CHART,
    ROOT,
    TINY,
    assert_page_works,
    browser_page,
    lab_folders,
    require_browser,
    running_app,
    screenshot,
    tiny_noise_config,
    wait_idle,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREENSHOTS = os.environ.get("DIFFUSION_LAB_SCREENSHOTS")


def serve(tmp_path_factory, name: str, tiny_models, shipped: tuple[str, ...]):
    """The app on tiny models (`tiny_models(checkpoints folder)` writes them) and copies of the shipped
    `shipped` checkpoints; on the shipped checkpoints themselves with DIFFUSION_LAB_SCREENSHOTS. Yields its URL."""
    require_browser()
    root = tmp_path_factory.mktemp(name)
    ckpts, _, env = lab_folders(root, ROOT / "checkpoints" if SCREENSHOTS else None)
    if not SCREENSHOTS:
        torch.manual_seed(0)
        tiny_models(ckpts)
        for stem in shipped:
            for suffix in (".safetensors", ".json", ".metrics.jsonl"):
                if (ROOT / "checkpoints" / f"{stem}{suffix}").is_file():
                    shutil.copy(ROOT / "checkpoints" / f"{stem}{suffix}", ckpts)
    with running_app(env, root / "streamlit.log") as url:
        yield url


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    def tiny(ckpts):
        save_checkpoint(ckpts / "default", build_model(TINY), tiny_noise_config(50))

    yield from serve(tmp_path_factory, "browser_teaching", tiny, ("classifier",))


@pytest.fixture(scope="module")
def edit_app(tmp_path_factory):
    """A tiny model of the report's default schedule (T = 1000, the noise-aware classifier's) and a tiny cold
    mask model, with the shipped classifiers."""
    def tiny(ckpts):
        save_checkpoint(ckpts / "default", build_model(TINY), tiny_noise_config(1000))
        mask = {"model": TINY, "diffusion": {"type": "cold", "degradation": {"kind": "mask", "T": 20}, "loss": "l2"},
                "epochs": 1}
        save_checkpoint(ckpts / "mask", build_model(TINY), mask)

    yield from serve(tmp_path_factory, "browser_edit", tiny, ("classifier", "noisy-classifier", "default-unet",
                                                                "quick-unet"))


def open_page(page, url: str, name: str) -> None:
    page.goto(url)
    page.get_by_role("link", name=name).first.click()
    page.get_by_role("heading", name=name).first.wait_for()
    wait_idle(page)


def open_drawn_points(page, url: str) -> None:
    """The 2-D lab with "drawn points" chosen: its canvas shown."""
    open_page(page, url, "2-D lab")
    page.get_by_role("combobox", name="Data").click()
    page.get_by_role("option", name="drawn points", exact=True).click()
    wait_idle(page)


def image_widths(page) -> list[int]:
    """Rendered widths (CSS pixels) of the images shown in the open tab of the page's main area."""
    return page.locator('[data-testid="stMain"] [data-testid="stImage"] img').filter(visible=True).evaluate_all(
        "els => els.map(e => Math.round(e.getBoundingClientRect().width))")


def chart_titled(page, title: str):
    return page.locator(CHART).filter(has_text=title).first


def test_2d_lab_points_drawn_on_the_canvas_train_and_play(app):
    with browser_page() as page:
        open_drawn_points(page, app)
        canvas = page.locator("canvas.upper-canvas")
        canvas.wait_for()
        box = canvas.bounding_box()
        spots = [(0.3, 0.3), (0.7, 0.28), (0.5, 0.75), (0.25, 0.6), (0.75, 0.62)]
        for fx, fy in spots:
            page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
            page.wait_for_timeout(250)
        wait_idle(page)
        page.get_by_text(f"{len(spots)} point(s) so far.").wait_for()
        page.get_by_role("button", name="Train", exact=True).click()
        chart_titled(page, "Score ∇ log p_t at t = 100").wait_for(timeout=180_000)
        wait_idle(page)
        assert_page_works(page, CHART)
        for title in ("Particles from the same z_T", "Final samples against the data"):
            chart_titled(page, title).wait_for()
        chart_titled(page, "Particles from the same z_T").locator(".updatemenu-button").first.click()  # ▶ play
        page.wait_for_timeout(1500)
        assert_page_works(page, CHART)
        screenshot(page, "2d_lab")


def test_2d_lab_defaults_show_the_rings_eight_clusters(app):
    """#26 item 4: Train at the page's defaults (8 Gaussians on a ring) gives samples on 8 clusters, and the page
    says how many sit inside a component (before: 1,500 steps left a smeared ring, ~55 % inside, and no word)."""
    with browser_page() as page:
        open_page(page, app, "2-D lab")
        assert page.get_by_role("combobox", name="Data").input_value() == "8 Gaussians on a ring"
        page.get_by_role("button", name="Train", exact=True).click()
        line = page.get_by_text("Samples inside a component's 99 % ellipse").first
        line.wait_for(timeout=120_000)
        wait_idle(page)
        text = line.inner_text()
        shares = [int(x) for x in re.findall(r"(?:ODE|SDE) (\d+)%", text)]
        assert len(shares) == 2 and min(shares) >= 80, text
        assert text.count("8 of 8 components reached") == 2, text
        assert page.get_by_text("Train for more steps").count() == 0
        assert_page_works(page, CHART)


def test_2d_lab_refuses_an_empty_drawing_with_a_message(app):
    with browser_page() as page:
        open_drawn_points(page, app)
        page.get_by_role("button", name="Train", exact=True).click()
        page.get_by_text("nothing is drawn yet").first.wait_for()
        assert page.locator('[data-testid="stException"]').count() == 0


def test_schedules_plots_the_loss_weighting(app):
    with browser_page() as page:
        open_page(page, app, "Schedules")
        chart_titled(page, "Loss weight over noise levels").wait_for()
        assert_page_works(page, CHART)


def test_reverse_diffusion_shows_the_spectra(app):
    with browser_page() as page:
        open_page(page, app, "Reverse diffusion")
        page.get_by_role("button", name="Run reverse diffusion").click()
        page.get_by_text("Spectra across t").wait_for(timeout=180_000)
        wait_idle(page)
        page.get_by_text("Spectra across t").click()
        chart_titled(page, "Radially averaged power spectrum").wait_for()
        assert_page_works(page, CHART)


def test_evaluate_loss_by_noise_level_likelihood_and_memorisation(app):
    with browser_page() as page:
        open_page(page, app, "Evaluate")
        page.get_by_role("tab", name="Loss by noise level").click()
        page.get_by_role("button", name="Compute the held-out loss by noise level").click()
        chart_titled(page, "Held-out loss by noise level").wait_for(timeout=180_000)
        page.get_by_role("button", name="Compute the likelihood bound").click()
        chart_titled(page, "The bound's diffusion terms by noise level").wait_for(timeout=300_000)
        wait_idle(page)
        assert_page_works(page, CHART)
        page.get_by_role("tab", name="Memorisation").click()
        page.get_by_role("button", name="Find the nearest training digits").click()
        chart_titled(page, "Generated digits and their nearest training digits").wait_for(timeout=180_000)
        chart_titled(page, "How far from the training set").wait_for()
        wait_idle(page)
        assert page.get_by_text("Novelty · pixels").count() == 1
        assert_page_works(page, CHART)
        screenshot(page, "memorisation")


def test_edit_sdedit_of_a_digit_drawn_on_the_canvas(app):
    with browser_page() as page:
        open_page(page, app, "Edit")
        canvas = page.locator("canvas.upper-canvas").first
        canvas.wait_for()
        box = canvas.bounding_box()
        x, y, w, h = box["x"], box["y"], box["width"], box["height"]
        page.mouse.move(x + 0.35 * w, y + 0.2 * h)  # a stroke like a 7
        page.mouse.down()
        for fx, fy in [(0.65, 0.2), (0.6, 0.45), (0.5, 0.8)]:
            page.mouse.move(x + fx * w, y + fy * h, steps=8)
        page.mouse.up()
        wait_idle(page)
        page.get_by_text("as the model sees it (28×28)").wait_for()
        page.get_by_role("button", name="Run SDEdit").click()
        page.get_by_text("s = 1", exact=False).first.wait_for(timeout=180_000)
        wait_idle(page)
        assert page.locator('[data-testid="stMain"] [data-testid="stImage"] img').count() >= 8
        assert page.locator('[data-testid="stAlertContentError"]').count() == 0
        screenshot(page, "edit")
        page.get_by_role("tab", name="Interpolation").click()
        page.get_by_role("button", name="Interpolate").click()
        chart_titled(page, "‖z‖ / √d along the path").wait_for(timeout=180_000)
        assert_page_works(page, CHART)


def test_compare_runs_a_and_b_from_the_same_noise_one_setting_apart_at_the_same_t(app):
    """Compare opens one setting apart and says which; switching B's sampler changes only the sampler; the runs are
    stepped through at the same t (B, with fewer steps, at its frame nearest that t)."""
    with browser_page() as page:
        open_page(page, app, "Compare")
        page.get_by_text("One setting apart — steps: 20 → 5.").wait_for()
        page.get_by_role("combobox", name="Sampler").nth(1).click()  # B's
        page.get_by_role("option", name="ddim", exact=True).click()
        wait_idle(page)
        page.get_by_text("2 settings apart — sampler: dpm++2m-sde → ddim; steps: 20 → 5.").wait_for()
        page.get_by_role("button", name="Run A and B").click()
        chart_titled(page, "How far apart A and B are, step by step").wait_for(timeout=180_000)
        wait_idle(page)
        assert page.get_by_text("both started from the same z_T").count() == 1
        assert_page_works(page, CHART)
        slider = page.locator('input[type="range"][aria-valuetext^="t = "]').first
        assert slider.get_attribute("aria-valuetext") == "t = 50"
        for _ in range(6):  # six points on
            slider.press("ArrowRight")
            wait_idle(page)
        t = int(slider.get_attribute("aria-valuetext").split("= ")[1])
        captions = page.locator('[data-testid="stMain"] [data-testid="stImage"]').all_inner_texts()
        a_t, b_t = (int(next(c for c in captions if c.strip().startswith(f"{x} · x̂0 at t = ")).rsplit("= ", 1)[1])
                    for x in "AB")
        # one run is at t itself, the other at its own frame nearest t (before: the same share of each run's frames)
        assert t in (a_t, b_t) and abs(a_t - b_t) < 50 / 2, (t, a_t, b_t)
        screenshot(page, "compare")


def test_edit_inpainting_and_a_link_that_opens_an_exact_view(app):
    with browser_page() as page:
        page.goto(app)
        page.get_by_role("link", name="Edit").first.click()
        page.get_by_role("heading", name="Edit").first.wait_for()
        wait_idle(page)
        page.get_by_role("tab", name="Inpainting").click()
        page.get_by_role("button", name="Inpaint").click()
        page.locator('[data-testid="stMain"] [data-testid="stDataFrame"]').first.wait_for(timeout=300_000)
        wait_idle(page)
        assert page.locator('[data-testid="stAlertContentError"]').count() == 0
        # the address now holds the page's settings: a fresh browser opening it sees the same strength
        page.get_by_role("tab", name="SDEdit").click()
        url = page.url
        assert "ed_paint_steps" in url or "ed_strength" in url, url
    with browser_page() as other:
        other.goto(url.replace("ed_strength=0.5", "ed_strength=0.75") if "ed_strength=" in url
                   else url + "&ed_strength=0.75")
        other.get_by_role("heading", name="Edit").first.wait_for()
        wait_idle(other)
        other.get_by_text("0.75").first.wait_for()  # the slider opened at the linked strength


def test_edit_round_trips_guidance_and_inpainting_three_ways(edit_app):
    with browser_page() as page:
        page.goto(edit_app + "/Edit?model=shipped:default")  # the tiny model (Edit would open on quick-unet)
        page.get_by_role("heading", name="Edit").first.wait_for()
        wait_idle(page)
        page.get_by_role("tab", name="Inversion and round trips").click()
        page.get_by_role("button", name="Encode and decode").click()
        chart_titled(page, "Round trip x → z_T → x̂").wait_for(timeout=180_000)
        wait_idle(page)
        assert page.get_by_text("steps · RMSE").count() >= 4  # one reconstruction per step count
        assert_page_works(page, CHART)
        assert len(set(image_widths(page))) == 1, image_widths(page)  # the input as large as its reconstructions
        page.get_by_role("tab", name="Guidance").click()
        page.get_by_role("button", name="Generate with guidance").click()
        page.get_by_text("classifier w = 4").first.wait_for(timeout=180_000)
        wait_idle(page)
        assert page.get_by_text("classifier w = 4").count() == 8 and page.get_by_text("w = 0 · ").count() == 8
        assert_page_works(page, '[data-testid="stMain"] [data-testid="stImage"] img')
        assert len(set(image_widths(page))) == 1, image_widths(page)  # the w = 0 row as large as the w = 4 row
        page.get_by_role("tab", name="Inpainting").click()
        page.get_by_text("Disc step t").first.wait_for()  # the cold model's disc is the mask on offer
        page.get_by_role("button", name="Inpaint").click()
        page.get_by_text("cold mask model · seed 0").first.wait_for(timeout=300_000)
        wait_idle(page)
        for method in ("replacement", "RePaint", "cold mask model"):
            assert page.get_by_text(f"{method} · seed 2").count() == 1
        assert len(set(image_widths(page))) == 1, image_widths(page)  # inputs as large as the fillings
        assert_page_works(page, '[data-testid="stMain"] [data-testid="stDataFrame"]')


@pytest.mark.parametrize(("kind", "target", "tolerance"), [("thickness", 1.5, 0.15), ("ink", 0.08, 0.02)])
def test_edit_loss_guidance_at_its_defaults_reaches_its_target_with_digits(edit_app, kind, target, tolerance):
    """#26 item 5, on the shipped default-unet: Guide by thickness (or ink) at the page's w = 4 and default target.
    Before: the thickness row was pure noise (mean thickness 1.00, ink 0.68, every image "'8' (100 %)"), ink
    overshot (0.23) with broken strokes."""
    with browser_page() as page:
        page.goto(edit_app + "/Edit?model=shipped:default-unet")
        page.get_by_role("heading", name="Edit").first.wait_for()
        wait_idle(page)
        page.get_by_role("tab", name="Guidance").click()
        page.get_by_role("combobox", name="Guide by").click()
        page.get_by_role("option", name=kind, exact=True).click()
        wait_idle(page)
        page.get_by_role("button", name="Generate with guidance").click()
        line = page.get_by_text(f"Mean {kind}:").first
        line.wait_for(timeout=180_000)
        wait_idle(page)
        found = re.search(rf"at w = 0, ([\d.]+) at w = 4 \(target {target:g}", line.inner_text())
        assert found and abs(float(found.group(1)) - target) < tolerance, line.inner_text()
        captions = page.get_by_text(f"{kind} w = 4 · {kind} ").all_inner_texts()
        assert len(captions) == 8, captions
        digits = {re.search(r"'(\d)' \((\d+)%\)", c).group(1) for c in captions}
        assert len(digits) >= 4, captions  # digits of several kinds, not one '8' painted over noise
        assert_page_works(page, '[data-testid="stMain"] [data-testid="stImage"] img')


def test_evaluate_guidance_opens_on_a_model_that_shows_the_trade_off_and_says_what_it_found(edit_app):
    """#26 item 6, by clicking: the Guidance tab opens on classifier-free guidance of default-unet (before: the
    first chosen model, e.g. the newest student run, with classifier guidance — an error for a cosine run, a
    weak null-label mode at w = 0 for a conditional one); the figure says what w = 0 is, and the caption's
    numbers are the figure's."""
    with browser_page() as page:
        open_page(page, edit_app, "Evaluate")
        page.get_by_role("tab", name="Guidance").click()
        kind = page.get_by_role("combobox", name="Guidance")
        kind.wait_for()
        assert kind.input_value() == "classifier-free"
        assert page.get_by_role("combobox", name="Model").last.input_value() == "default-unet"
        scales = page.get_by_role("textbox", name="Scales w")
        scales.fill("0, 2")
        scales.press("Enter")
        samples = page.get_by_role("spinbutton", name="Samples per w")
        samples.fill("20")
        samples.press("Enter")
        wait_idle(page)
        page.get_by_role("button", name="Compute the guidance curve").click()
        chart = chart_titled(page, "Guidance: fidelity against diversity")
        chart.wait_for(timeout=180_000)
        wait_idle(page)
        assert "w = 0 is the conditional model ε(z_t, t, y) without guidance" in chart.inner_text()
        data = chart.evaluate("el => el.data.map(t => ({x: t.x, y: t.y}))")
        confident, variety, fid = data
        assert confident["x"] == [0, 2]
        caption = page.locator('[data-testid="stCaptionContainer"]').filter(has_text="From w = 0 to w = 2").first
        text = caption.inner_text()
        assert text.startswith("default-unet · classifier-free."), text
        a, b = (round(100 * v) for v in confident["y"])
        assert f"{a}% to {b}%" in text or f"stays near {a}%" in text, (text, confident)
        assert f"{fid['y'][0]:.1f} to {fid['y'][1]:.1f}" in text or "stays near" in text, (text, fid)
        best = min(range(2), key=lambda i: fid["y"][i])
        assert f"(w = {[0, 2][best]}, {fid['y'][best]:.1f}; n = 20 per point" in text, (text, fid)
        assert_page_works(page, CHART)


def test_evaluate_gives_one_fid_per_model_and_protocol(edit_app):
    """#26 item 8: quick-unet's card FID (50.8, n = 1,000, dpm++2m-sde 50 steps) and its training monitor's last
    FID (113.9) sit in separate columns, each beside its protocol (before: one "final FID" column showed 113.86
    for it, the FID tab 50.8, the README 51); Quality vs speed names the model it measured."""
    with browser_page() as page:
        open_page(page, edit_app, "Evaluate")
        table = page.locator('[data-testid="stMain"] [data-testid="stDataFrame"]').first
        table.locator('[role="columnheader"]').first.wait_for(state="attached")
        headers = table.locator('[role="columnheader"]').all_inner_texts()
        assert "FID (card)" in headers and "card protocol" in headers and "FID (monitor, last)" in headers, headers
        assert not {"best FID", "final FID"} & set(headers)
        rows = [table.locator('[role="row"]').nth(i).locator('[role="gridcell"]').all_inner_texts()
                for i in range(table.locator('[role="row"]').count())]
        quick = next(r for r in rows if r and r[0] == "quick-unet")
        cells = dict(zip(headers, quick, strict=False))
        assert round(float(cells["FID (card)"]), 1) == 50.8 and cells["card protocol"] == \
            "n = 1,000 · dpm++2m-sde, 50 steps", cells
        assert round(float(cells["FID (monitor, last)"]), 1) == 113.9, cells
        page.get_by_text("the last of the checks during training").first.wait_for()
        page.get_by_text("of default-unet (unet, linear T=1000), against the MNIST test split").first.wait_for()


def test_train_estimate_says_its_load_and_the_quality_its_chart_will_show(edit_app):
    """#26 item 7, on the shipped quick-unet's curve: the quick recipe's estimate says the load it assumes and
    the FID the run's own chart will show (its training checks: 114) beside the card's 51; with Cold chosen, the
    time comes from the same network and no noise or mask model's quality is promised (before: "~10 minutes"
    beside an estimate of 77–83 min from mask-unet's contended curve, and mask-unet's "80 % confidently a
    digit")."""
    with browser_page() as page:
        open_page(page, edit_app, "Train")
        page.get_by_text("Quick: a noise model drawing recognisable digits").wait_for()
        box = page.locator('[data-testid="stAlertContentInfo"]').filter(has_text="What to expect").first
        box.wait_for()
        text = box.inner_text()
        # the load it assumes: the cores to itself, or (under the suite's own load) this machine's share
        assert "holds while the run has the cores to itself" in text or "this machine is busy now" in text, text
        assert "quick-unet" in text and "ended at FID 114, so expect about that on the chart" in text, text
        assert "n = 1,000 · dpm++2m-sde, 50 steps" in text, text
        page.get_by_text("Cold (degradation)", exact=True).click()
        wait_idle(page)
        text = page.locator('[data-testid="stAlertContentInfo"]').filter(has_text="What to expect").first.inner_text()
        assert "a cold run's step also degrades its batch" in text, text
        assert "the shipped quick-unet trained at a median 533 images/s (unet, patch 2" in text, text
        assert "No shipped model of this architecture and process to compare with" in text, text
