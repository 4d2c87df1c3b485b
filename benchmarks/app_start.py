"""App cold start: seconds from `streamlit run streamlit_app.py` to /_stcore/health answering and, when
Playwright and Debian's Chromium are available, to the home page's "Generate" button being rendered
(the browser is launched before the clock starts, so its own start-up is not counted)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.measure import process_peak_rss_mib

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
NO_MODEL_TEXT = "No model is shipped"  # what the home page shows instead of the button when nothing is shipped


def browser_problem() -> str | None:
    """Why the first-page measurement cannot run here, or None when it can."""
    if not Path(CHROMIUM).is_file():
        return "Chromium not found (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        return urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok"
    except OSError:
        return False


def cold_start(timeout: float = 180.0) -> dict:
    """{"health_s", "first_page_s", "first_page": what rendered or why skipped, "server_peak_mib": the
    streamlit server's peak RSS once the first page is served}."""
    problem = browser_problem()
    with contextlib.ExitStack() as stack:
        page = None
        if problem is None:
            from playwright.sync_api import sync_playwright

            pw = stack.enter_context(sync_playwright())
            profile = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-browser-"))
            ctx = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True,
                                                        args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 1600})
            stack.callback(ctx.close)
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.address", "127.0.0.1",
               "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"]
        log = stack.enter_context(tempfile.TemporaryFile())
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=os.environ | {"PYTHONPATH": str(ROOT)}, stdout=log,
                                stderr=subprocess.STDOUT)
        stack.callback(stop_server, proc)
        while not _healthy(url):
            if proc.poll() is not None or time.perf_counter() - t0 > timeout:
                log.seek(0)
                raise RuntimeError(f"streamlit did not become healthy:\n{log.read().decode(errors='replace')[-2000:]}")
            time.sleep(0.05)
        health_s = time.perf_counter() - t0
        if page is None:
            return {"health_s": health_s, "first_page_s": None, "first_page": f"skipped: {problem}",
                    "server_peak_mib": process_peak_rss_mib(proc.pid)}
        page.set_default_timeout(timeout * 1000)
        page.goto(url)
        button = page.get_by_role("button", name="Generate")
        button.or_(page.get_by_text(NO_MODEL_TEXT)).first.wait_for()
        first_page_s = time.perf_counter() - t0
        what = ('"Generate" button rendered' if button.count() else
                'home page rendered (no model shipped, so no "Generate" button)')
        return {"health_s": health_s, "first_page_s": first_page_s, "first_page": what,
                "server_peak_mib": process_peak_rss_mib(proc.pid)}


def stop_server(proc: subprocess.Popen) -> None:
    """Terminate a server process, killing it after 15 s."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
