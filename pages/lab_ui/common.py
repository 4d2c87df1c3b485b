"""Page setup, the page registry with links, and turning user-facing errors into st.error."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image
from streamlit.navigation.page import StreamlitPage
from streamlit.runtime.pages_manager import PagesManager

from diffusion_core.io.checkpoints import CheckpointError
from diffusion_core.io.data import DatasetUnavailableError
from diffusion_core.services.work_queue import QueueFull
from diffusion_core.training.config import TrainingError

from .url_state import FIRST_QUERY, PAGE_PATH

APP_ROOT = Path(__file__).resolve().parents[2]

# Every page of the lab, in sidebar order: (path relative to streamlit_app.py, title, Material icon, blurb).
# streamlit_app.py builds st.navigation from this list; pages whose file does not exist yet are left out,
# so a later page slots in by adding its file here (and in pages/).
PAGES: list[tuple[str, str, str, str]] = [
    ("streamlit_app.py", "Home", ":material/home:", "what the lab is; one-click samples from the default model"),
    ("pages/10_Lessons.py", "Lessons", ":material/school:",
     "guided walk-throughs with live figures and checked questions, one Markdown file each"),
    ("pages/1_Train.py", "Train", ":material/model_training:",
     "train a denoiser in the background, watch it learn, stop and resume"),
    ("pages/2_Schedules.py", "Schedules", ":material/show_chart:",
     "β_t, ᾱ_t and log-SNR of the report's presets and your own"),
    ("pages/3_Reverse_diffusion.py", "Reverse diffusion", ":material/fast_rewind:",
     "step through sampling: z_t and x̂0 side by side"),
    ("pages/4_Degradations.py", "Degradations", ":material/blur_on:",
     "cold diffusion: blur, masks, pixelation and their samplers"),
    ("pages/5_Explore.py", "Explore", ":material/scatter_plot:",
     "density plots and PCA clusters of real and generated digits"),
    ("pages/6_Evaluate.py", "Evaluate", ":material/leaderboard:",
     "compare runs and shipped models: loss, FID, sample grids"),
    ("pages/7_2D_lab.py", "2-D lab", ":material/grain:",
     "diffusion on points: the score field, exact and learned; ODE and SDE paths"),
    ("pages/8_Edit.py", "Edit", ":material/brush:",
     "SDEdit a drawn digit, invert real digits to noise and back, interpolate lerp vs slerp"),
    ("pages/9_Compare.py", "Compare", ":material/compare:",
     "two runs from the same noise, one setting apart, step by step"),
]

# Errors whose message is written for the user: shown with st.error, never as a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, CheckpointError, DatasetUnavailableError, TrainingError, OSError, QueueFull,
)


@functools.cache
def favicon() -> Image.Image:
    """The tab icon, drawn here: a soft ring (a digit dissolving into noise), RGBA 64×64. Streamlit serves
    an image page_icon from this server; a `:material/…:` page_icon makes the browser fetch an SVG from
    fonts.gstatic.com and an emoji needs an emoji font, so neither works in an offline classroom."""
    yy, xx = np.mgrid[0:64, 0:64]
    alpha = np.exp(-(((np.hypot(yy - 31.5, xx - 31.5) - 20.0) / 7.0) ** 2))
    icon = np.zeros((64, 64, 4), dtype=np.uint8)
    icon[..., :3] = (255, 75, 75)  # Streamlit's primary red
    icon[..., 3] = np.round(255 * alpha).astype(np.uint8)
    return Image.fromarray(icon, "RGBA")  # an image (st.set_page_config refuses a numpy array)


NAVIGATION_CHECKED = "_lab_navigation_checked"


def setup_page(title: str, intro: str | None = None) -> None:
    """Page config, title and a one-paragraph introduction."""
    if PagesManager.uses_pages_directory and not st.session_state.get(NAVIGATION_CHECKED):
        # A direct link (/Reverse_diffusion) as a fresh server's first visitor: no session has run
        # streamlit_app.py's st.navigation yet, so Streamlit ran this file in its old pages/-folder mode (a plain
        # file list in the sidebar). Switch that mode off for the server and run again through st.navigation,
        # which resolves the same page (its address is the same). Only on a session's first run, which carries no
        # click that the rerun could drop.
        st.session_state[NAVIGATION_CHECKED] = True
        st.session_state[FIRST_QUERY] = st.query_params.to_dict()  # the link's settings, whatever the rerun keeps
        PagesManager.uses_pages_directory = False
        st.rerun()
    st.set_page_config(page_title=f"{title} · Diffusion Lab", page_icon=favicon(), layout="wide")
    from .identity import class_gate  # (identity imports nothing of this module)

    st.title(title)
    class_gate()
    if intro:
        st.markdown(intro)


def existing_pages() -> list[tuple[str, str, str, str]]:
    return [p for p in PAGES if (APP_ROOT / p[0]).is_file()]


def navigation(home: Callable[[], None]) -> StreamlitPage:
    """The sidebar: Home (the `home` function of streamlit_app.py) and every page file that exists."""
    pages = []
    for path, title, icon, _ in existing_pages():
        if path == "streamlit_app.py":
            pages.append(st.Page(home, title=title, icon=icon, default=True))
        else:
            pages.append(st.Page(path, title=title, icon=icon))
    # The tab icon first: until a page config sets one, the browser takes the current page's Material icon
    # as the tab icon and fetches it from fonts.gstatic.com (the sidebar's icons come with Streamlit's font).
    st.set_page_config(page_icon=favicon())
    page = st.navigation(pages)
    st.session_state[PAGE_PATH] = page.url_path  # the view's link (url_state.view_link) names this page
    return page


def page_links(with_blurb: bool = True) -> None:
    """st.page_link to every page except Home, with its one-line description."""
    for path, label, icon, blurb in existing_pages():
        if path != "streamlit_app.py":
            st.page_link(path, label=f"{label} — {blurb}" if with_blurb else label, icon=icon)


@dataclass
class Outcome:
    """What happened inside a `user_errors` block."""

    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


@contextmanager
def user_errors(context: str | None = None) -> Iterator[Outcome]:
    """Run a block; a user-facing error becomes st.error with its message (no traceback).

    with user_errors("Could not load the model") as outcome:
        ...
    if outcome.failed: ...
    """
    outcome = Outcome()
    try:
        yield outcome
    except USER_ERRORS as exc:
        message = str(exc) or exc.__class__.__name__
        outcome.error = message
        st.error(f"{context}: {message}" if context else message)
