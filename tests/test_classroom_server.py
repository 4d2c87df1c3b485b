"""A class on one server (issue #18): Streamlit watches no file (training runs write into runs/ under the app's
folder; the default watcher logged 41,137 "Inotify queue overflowed" lines), and no page fetches anything from
the internet (a `:material/…:` page_icon made every tab fetch its icon from fonts.gstatic.com).

The server tests start the real `streamlit run` from the project folder, so .streamlit/config.toml applies; a
student's session is the app's own websocket protocol (benchmarks/load_test.py), or Chromium for the icons."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest
import torch

from benchmarks.load_test import StreamlitSession, running_server
from diffusion_core.io.checkpoints import save_checkpoint
from diffusion_core.models import build_model
from pages.lab_ui.common import PAGES

from . import browser_harness as bh

ROOT = Path(__file__).resolve().parent.parent
TINY = {"arch": "cnn", "params": {"hidden": [8, 8], "kernel_size": 3, "time_embed_dim": 8}}
WATCHER_WORDS = ("inotify", "watchdog", "watcher", "file changed")


def effective_option(name: str) -> str:
    """An option as `streamlit run` from the project folder resolves it (config files, then defaults)."""
    code = ("from streamlit import config\nconfig.get_config_options(force_reparse=True)\n"
            f"print(config.get_option({name!r}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_the_file_watcher_is_off_in_the_config_streamlit_reads():
    assert effective_option("server.fileWatcherType") == "none"


def test_no_full_garbage_collection_after_each_rerun_in_the_config_streamlit_reads():
    """#30: Streamlit's gc.collect() after every script run held the GIL a class's reruns queued behind."""
    assert effective_option("runner.postScriptGC") == "False"


def inotify_watches(pid: int) -> int:
    """Inotify watches held by a process (one `inotify wd:` line per watch in /proc/PID/fdinfo)."""
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd) == "anon_inode:inotify":
                count += Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text().count("inotify wd:")
        except OSError:
            continue  # closed meanwhile
    return count


@pytest.fixture
def shipped(tmp_path):
    """A tiny untrained default model, so pages have something to sample."""
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    torch.manual_seed(0)
    save_checkpoint(folder / "default", build_model(TINY), {
        "model": TINY, "diffusion": {"type": "noise", "schedule": {"kind": "linear", "beta1": 1e-4, "beta2": 0.02,
                                                                     "T": 50}}, "epochs": 1})
    return folder


def write_like_training_runs(folder: Path, runs: int = 20, files: int = 100) -> None:
    """Run folders filling up with metrics, status and checkpoints, as a class's training runs write them."""
    for r in range(runs):
        run = folder / f"run-{r:03d}"
        run.mkdir(parents=True)
        for i in range(files):
            (run / f"step-{i:04d}.json").write_text("{}")
            (run / "status.json.tmp").write_text(f'{{"epoch": {i}}}')
            os.replace(run / "status.json.tmp", run / "status.json")


async def open_home(url: str) -> None:
    session = StreamlitSession(url)
    try:
        await session.connect()
        result = await session.open_page("")
        assert result.ok and result.kinds.get("button"), result
    finally:
        await session.close()


def test_a_running_server_watches_nothing_while_runs_are_written(tmp_path, shipped):
    """A student's session is open (its script imported every module) and runs/ under the app's folder (the
    default place) fills: the server holds no inotify watch and logs nothing about watching files. With
    Streamlit's default watcher the same server holds thousands of watches (the whole project tree)."""
    runs = ROOT / "runs" / f"watch-test-{uuid.uuid4().hex[:8]}"
    log_path = tmp_path / "streamlit.log"
    env = {"DIFFUSION_LAB_CHECKPOINTS": str(shipped), "DIFFUSION_LAB_RUNS": str(runs.parent),
           "DIFFUSION_LAB_DATA": str(tmp_path / "data"), "OMP_NUM_THREADS": "1"}
    try:
        with running_server(env, log_path) as (url, proc):
            asyncio.run(open_home(url))
            write_like_training_runs(runs)
            time.sleep(1.0)  # give a watcher, if there were one, time to react (it can only add failures)
            assert inotify_watches(proc.pid) == 0
            assert proc.poll() is None
        log = log_path.read_text().lower()
        assert not [line for line in log.splitlines() if any(w in line for w in WATCHER_WORDS)], log
    finally:
        subprocess.run(["rm", "-rf", str(runs)], check=False)


def _external(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in ("http", "https", "ws", "wss") and parsed.hostname not in ("127.0.0.1", "localhost")


# What each page shows when it works (tests/browser_harness.assert_page_works): its chart or table.
HEADINGS = {"Home": "Diffusion Lab"}  # a page's heading where it is not its title in the sidebar
MAIN_CONTENT = {"Schedules": bh.CHART, "Degradations": bh.CHART, "Explore": bh.CHART, "Evaluate": bh.TABLE}


@pytest.mark.browser
@pytest.mark.slow
def test_no_page_asks_the_internet_for_anything(tmp_path, shipped):
    """Every page in Chromium with the network cut off at the browser: every request to anything but this
    server is recorded and refused. None may happen, and no icon or image on the page may point elsewhere
    (headless Chromium may not fetch a tab icon at all, so the icon's address is checked too). Each page shows
    its content without an error box or a traceback."""
    bh.require_browser()
    from playwright.sync_api import sync_playwright

    external: list[str] = []

    def guard(route):
        if _external(route.request.url):
            external.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    env = {"DIFFUSION_LAB_CHECKPOINTS": str(shipped), "DIFFUSION_LAB_RUNS": str(tmp_path / "runs"),
           "DIFFUSION_LAB_DATA": str(tmp_path / "data")}
    with running_server(env, tmp_path / "streamlit.log") as (url, proc), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=bh.CHROMIUM, headless=True, args=bh.CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 1600})
            context.route("**/*", guard)
            page = context.new_page()
            page.set_default_timeout(90_000)
            page.goto(url)  # a first visit loads the app itself; the sidebar's links then open each page
            for path, title, *_ in [p for p in PAGES if (ROOT / p[0]).is_file()]:
                if path != "streamlit_app.py":
                    page.locator('[data-testid="stSidebarNav"] a').filter(has_text=title).first.click()
                page.get_by_role("heading", name=HEADINGS.get(title, title)).first.wait_for()
                bh.wait_idle(page)
                bh.assert_page_works(page, MAIN_CONTENT.get(title, "h1"))
                # the page's config has set the tab icon (Streamlit's own /favicon.png until then)
                page.wait_for_function("() => !((document.querySelector(\"link[rel='shortcut icon']\") || {})"
                                       ".href || '/favicon.png').endsWith('/favicon.png')")
                page.wait_for_load_state("networkidle")
                links = page.eval_on_selector_all(
                    "link[href], img[src], script[src]", "els => els.map(e => e.href || e.src)")
                assert [u for u in links if _external(u)] == [], (title, links)
                assert inotify_watches(proc.pid) == 0  # a session watches no source file either
            assert external == []
        finally:
            browser.close()
