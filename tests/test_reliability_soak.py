"""Soak: 50 consecutive Generate requests on the home page (AppTest, one session, a tiny model) must not
make the process grow: resident memory after them is within GROWTH_BOUND_MB of what it was after a
warm-up, and the session keeps exactly one grid."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
import streamlit as st

from tests.app_support import app, errors, no_exceptions, write_checkpoint

WARM_UP = 5
CLICKS = 50
# Measured here: about 0 MB (−4 MB) after the warm-up. The bound leaves room for allocator noise and
# Streamlit's own caches, and fails any leak of more than ~1.3 MB per request (64 MB / 50). (With this tiny
# model a request's own data is ~50 KB, so smaller leaks need a bigger model or more requests to show.)
GROWTH_BOUND_MB = 64


def rss_mb() -> float:
    """This process's resident set size (VmRSS) in MB; AppTest runs the app in this process."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs /proc (Linux) to read VmRSS")
def test_fifty_generate_requests_do_not_grow_memory(tmp_path, monkeypatch):
    st.cache_resource.clear()
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    monkeypatch.setenv("DIFFUSION_LAB_CHECKPOINTS", str(shipped))
    monkeypatch.delenv("DIFFUSION_LAB_DEFAULT_MODEL", raising=False)
    write_checkpoint(shipped, "tiny", T=20)
    at = app().run()

    def generate(seed: int) -> None:
        at.number_input(key="home_seed").set_value(seed)
        at.button(key="home_generate").click().run()
        assert at.session_state["home_grid"]["seed"] == seed, errors(at)

    for seed in range(WARM_UP):
        generate(seed)
    gc.collect()
    before = rss_mb()
    for seed in range(WARM_UP, WARM_UP + CLICKS):
        generate(seed)
    gc.collect()
    growth = rss_mb() - before
    no_exceptions(at)
    assert errors(at) == []
    assert at.session_state["home_grid"]["images"].shape == (16, 28, 28)  # one grid kept, the latest
    assert len(at.image) == 1
    assert growth < GROWTH_BOUND_MB, f"resident memory grew by {growth:.0f} MB over {CLICKS} Generate requests"
