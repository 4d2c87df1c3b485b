"""Start the real app with `streamlit run` and drive Debian's Chromium through Playwright.

Browser tests skip with a clear message when Chromium or Playwright is missing, unless
DIFFUSION_LAB_REQUIRE_BROWSER=1 (set by .ci/run), in which case they fail instead.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusion_core.io.data import load_dataset, to_unit
from tests.idx_files import write_idx_split

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


# A page is broken if it shows an error box (st.error) or a traceback (an uncaught exception).
ERROR_BOX = '[data-testid="stAlertContentError"]'
TRACEBACK = '[data-testid="stException"]'
# A page's main content: a Plotly chart, an image, a table.
CHART = '[data-testid="stMain"] .js-plotly-plot'
IMAGE = '[data-testid="stMain"] [data-testid="stImage"] img'
TABLE = '[data-testid="stMain"] [data-testid="stDataFrame"]'


def assert_page_works(page, main: str) -> None:
    """No error box and no traceback on the page, and its main chart, image or table (`main`) is shown (a chart on
    a tab that is not open is drawn but hidden)."""
    assert page.locator(ERROR_BOX).count() == 0, f"error box: {page.locator(ERROR_BOX).all_inner_texts()}"
    assert page.locator(TRACEBACK).count() == 0, f"traceback: {page.locator(TRACEBACK).all_inner_texts()}"
    page.locator(main).filter(visible=True).first.wait_for(timeout=10_000)


try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:  # require_browser() says what is missing
    PlaywrightTimeout = TimeoutError


def require_browser() -> None:
    """Skip (or fail under CI) when no browser can be driven here."""
    problem = None
    if not Path(CHROMIUM).is_file():
        problem = "Debian's Chromium is not installed (apt-get install -y chromium)"
    else:
        try:
            import playwright  # noqa: F401
        except ImportError:
            problem = "playwright is not installed (pip install playwright)"
    if problem:
        if os.environ.get("DIFFUSION_LAB_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests are required here but {problem}")
        pytest.skip(f"browser test skipped: {problem}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(env_extra: dict[str, str], log_path: Path):
    """`streamlit run streamlit_app.py` on a free loopback port; yields the base URL."""
    port = free_port()
    env = os.environ | {"PYTHONPATH": str(ROOT)} | env_extra
    cmd = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.address", "127.0.0.1",
           "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + 90
            while time.time() < deadline:
                try:
                    if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                        break
                except OSError:
                    time.sleep(0.5)
                if proc.poll() is not None:
                    raise RuntimeError(f"streamlit exited early:\n{log_path.read_text()}")
            else:
                raise RuntimeError(f"streamlit did not become healthy:\n{log_path.read_text()}")
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


_shared: dict = {}  # this process's Playwright and Chromium, while a browser module runs


def _chromium():
    """One headless Chromium per test module (tests/conftest.py closes it after each module)."""
    if "browser" not in _shared:
        from playwright.sync_api import sync_playwright

        _shared["playwright"] = sync_playwright().start()
        _shared["browser"] = _shared["playwright"].chromium.launch(executable_path=CHROMIUM, headless=True,
                                                                   args=CHROMIUM_ARGS)
    return _shared["browser"]


def close_chromium() -> None:
    """Close this process's Chromium, if a test started one."""
    browser, playwright = _shared.pop("browser", None), _shared.pop("playwright", None)
    if browser is not None:
        browser.close()
    if playwright is not None:
        playwright.stop()


@contextmanager
def browser_pages(count: int):
    """`count` fresh browser contexts of the module's Chromium (separate cookies, storage and sessions, as
    separate browsers would have), one page each; closed afterwards."""
    contexts = []
    try:
        for _ in range(count):
            contexts.append(_chromium().new_context(viewport={"width": 1280, "height": 1600}))
        pages = []
        for ctx in contexts:
            page = ctx.new_page()
            page.set_default_timeout(60_000)
            pages.append(page)
        yield pages
    finally:
        for ctx in contexts:
            ctx.close()


@contextmanager
def browser_page():
    with browser_pages(1) as (page,):
        yield page


# The tiny denoiser the browser tests serve (fast enough to sample in a page on a shared CPU).
TINY = {"arch": "cnn", "params": {"hidden": [8, 8], "kernel_size": 3, "time_embed_dim": 8}}


def tiny_noise_config(T: int = 50) -> dict:
    return {"model": TINY, "diffusion": {"type": "noise", "schedule": {"kind": "linear", "beta1": 1e-4,
                                                                        "beta2": 0.02, "T": T}}, "epochs": 1}


@functools.cache
def offline_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    """The bundled offline digits of a split as uint8 pixels and labels (read once per test process)."""
    with tempfile.TemporaryDirectory() as empty:
        ds = load_dataset("mnist", split, root=empty, download=False)
    return (to_unit(ds.images[:, 0]) * 255).round().to(torch.uint8).numpy(), ds.labels.numpy()


def lab_folders(root: Path, checkpoints: Path | None = None) -> tuple[Path, Path, dict[str, str]]:
    """Fresh checkpoints/, runs/ and data/ under root (or an existing checkpoints folder) and the environment
    that points the app at them: (checkpoints, runs, env). data/ holds MNIST IDX files made from the bundled
    offline digits, so training in the app reads them and never tries a download."""
    ckpts, runs, data = root / "checkpoints", root / "runs", root / "data"
    for d in (ckpts, runs, data):
        d.mkdir()
    for split in ("train", "test"):
        write_idx_split(data / "MNIST" / "raw", split, *offline_digits(split))
    ckpts = checkpoints or ckpts
    env = {"DIFFUSION_LAB_CHECKPOINTS": str(ckpts), "DIFFUSION_LAB_RUNS": str(runs), "DIFFUSION_LAB_DATA": str(data),
           "OMP_NUM_THREADS": "1"}
    return ckpts, runs, env


APP_STATE = '[data-testid="stApp"]'  # carries data-test-script-state: "running", "notRunning", …
STARTS_WITHIN_MS = 300  # a rerun the last action asked for has started by then


def wait_idle(page) -> None:
    """Wait until Streamlit has finished running the script: a rerun the last action asked for starts (the app's
    script state leaves "notRunning"; returns as soon as it does, or after STARTS_WITHIN_MS when none comes),
    then the state is back at "notRunning" and the status widget is gone."""
    try:
        page.wait_for_function(
            "s => { const a = document.querySelector(s); return !a || a.getAttribute('data-test-script-state') "
            "!== 'notRunning'; }", arg=APP_STATE, timeout=STARTS_WITHIN_MS)
    except PlaywrightTimeout:
        pass  # nothing was rerun
    page.locator(f'{APP_STATE}[data-test-script-state="notRunning"]').wait_for(timeout=120_000)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=120_000)


def screenshot(page, name: str) -> None:
    """Save a full-page screenshot to $DIFFUSION_LAB_SCREENSHOTS/<name>.png (e.g. docs, to refresh the README's);
    without that variable nothing is taken (a screenshot costs Chromium a full render and asserts nothing)."""
    folder = os.environ.get("DIFFUSION_LAB_SCREENSHOTS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        page.screenshot(path=os.path.join(folder, f"{name}.png"), full_page=True)


def run_reverse(page, timeout: float = 120_000):
    """Press Run reverse diffusion once the page is idle, wait for the trajectory's step-through slider and the page
    to settle; returns the slider."""
    button = page.get_by_role("button", name="Run reverse diffusion")
    button.wait_for()
    wait_idle(page)
    button.click()
    slider = page.get_by_role("slider", name="Step through the trajectory")
    slider.wait_for(timeout=timeout)
    wait_idle(page)
    return slider


def open_train(page) -> None:
    """From the page shown, the sidebar's Train link, waiting until Start training is there and the page idle."""
    page.get_by_role("link", name="Train").first.click()
    page.get_by_role("button", name="Start training").wait_for()
    wait_idle(page)


def lab(tmp_path_factory, name: str, checkpoints: Path | None = None) -> tuple[Path, Path, Path, dict[str, str]]:
    """A module's lab, after require_browser: (root, checkpoints folder, runs folder, the app's environment) in a
    fresh temporary folder `name` (lab_folders)."""
    require_browser()
    root = tmp_path_factory.mktemp(name)
    return (root, *lab_folders(root, checkpoints))
