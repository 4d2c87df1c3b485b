"""Compute through the server's one line (diffusion_core.services.work_queue), with the user's place in it shown,
and the default model warmed in the background when the server process serves its first page.

    with user_errors("Could not sample"):
        result = run_queued(sample_checkpoint, ckpt, SamplerChoice("ddim", seed=seed), n=16)

A full line raises work_queue.QueueFull, a user error (common.USER_ERRORS): user_errors shows its message.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import streamlit as st
import torch

from diffusion_core.io.checkpoints import LoadedCheckpoint, load_checkpoint
from diffusion_core.sampling import SamplerChoice, sample_checkpoint
from diffusion_core.services import batching, compute_process, ray_serve
from diffusion_core.services.catalog import default_checkpoint
from diffusion_core.services.work_queue import Ticket, default_queue

POLL_SECONDS = 0.3  # how often a waiting page updates its place in line (and notices a rerun or a closed tab)
WARM_STEPS = 2  # network steps of the warm-up sample: enough to run every kernel Generate runs

R = TypeVar("R")


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, …, 11th, 12th, 13th, 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def place_message(position: int) -> str:
    """What a waiting page shows for its place in line (1 = next to start)."""
    ahead = position - 1
    who = "you are next" if ahead == 0 else f"{ahead} request{'s' if ahead != 1 else ''} ahead of yours"
    return (f":material/hourglass_top: The CPU is busy with other students' work: you are **{ordinal(position)} "
            f"in line** ({who}). It starts by itself; keep this page open.")


def time_left(began: float | None, done: int, total: int, now: float | None = None) -> str:
    """' · about 40 s left' from the pace so far (nothing before the first step or once done)."""
    if began is None or not 0 < done < total:
        return ""
    elapsed = (time.monotonic() if now is None else now) - began
    left = elapsed / done * (total - done)
    return f" · about {left:.0f} s left" if left < 90 else f" · about {left / 60:.0f} min left"


def run_queued(fn: Callable[..., R], /, *args: Any, label: str | None = None, progress: str | None = None,
               **kwargs: Any) -> R:
    """fn(*args, **kwargs) run by the server's work queue; returns its result or raises its exception.

    While the job waits, the page shows its place in line (updated every POLL_SECONDS); `label`, if given,
    is a spinner shown until the result is back. With `progress` (e.g. "Held-out loss"), fn is also given
    on_progress=(done, total) and the page shows a progress bar under that name while it runs. A rerun or a
    closed tab while waiting gives the place up."""
    done: list[tuple[int, int]] = []
    if progress is not None:
        kwargs["on_progress"] = lambda i, total: done.append((i, total))
    return wait_in_line(default_queue().submit(fn, *args, **kwargs), label, progress, done)


def sample_batched(ckpt: LoadedCheckpoint, choice: SamplerChoice, n: int, label: str | None = None
                   ) -> tuple[torch.Tensor, str]:
    """(n images of one seeded run, how they were computed): in one batch with whatever other students ask of the
    same model and settings meanwhile (services/batching.py), or at once from the cache when asked before; the
    place in line shown while it waits."""
    hit = batching.sample_cache().get(batching.sample_key(ckpt, choice, n))
    if hit is not None:
        return hit, "from the cache (asked before)"
    ticket = batching.submit_samples(default_queue(), ckpt, choice, n)
    images = wait_in_line(ticket, label)
    others, size = ticket.batched_with[0] - 1, ticket.batched_with[1]
    who = "another student's request" if others == 1 else f"{others} other students' requests"
    how = f"in one batch with {who} ({size} images)" if others else "computed alone"
    where = ticket.note or (f"on this server (its Ray cluster is not used now: {why})"
                            if (why := ray_serve.unavailable()) else None)
    return images, f"{how}, {where}" if where else how


def wait_in_line(ticket: Ticket, label: str | None = None, progress: str | None = None,
                 done: list[tuple[int, int]] | None = None) -> Any:
    """The ticket's result, the page showing its place in line (and `progress`'s bar from `done`) meanwhile."""
    done = [] if done is None else done
    status = st.empty()
    began: float | None = None  # when the job left the line and started computing
    try:
        with st.spinner(label) if label else contextlib.nullcontext():
            while not ticket.wait(POLL_SECONDS):
                # redrawn every tick: each st call is where Streamlit stops this run for a rerun or a closed tab
                position = ticket.position()
                if not position and began is None:
                    began = time.monotonic()
                if position:
                    status.info(place_message(position))
                elif done:
                    i, total = done[-1]
                    status.progress(i / total, text=f"{progress}: {i} of {total}{time_left(began, i, total)}")
                else:
                    status.empty()
        status.empty()
    finally:
        ticket.cancel()  # still waiting (a rerun or a closed tab stopped this run): leave the line
    return ticket.result()


def _warm(path: Path) -> str:
    """Load the model (torch's one-time set-up costs seconds: later loads take ~0.1 s) and, for a noise
    model, draw one tiny sample so the kernels Generate uses are warm. Never raises: the outcome as text."""
    try:
        ckpt = load_checkpoint(path)
        if not ckpt.process.starts:  # noise models (a cold model's mixture start is fitted on first use)
            choice = ckpt.process.quick_choice()
            steps = None if choice.steps is None else min(choice.steps, WARM_STEPS)
            choice = dataclasses.replace(choice, steps=steps)
            sample_checkpoint(ckpt, choice, n=1)
            compute_process.prestart(default_queue().workers, ckpt, choice)  # the workers' sampling processes
        return f"warm: {path.stem}"
    except Exception as exc:  # a broken model is reported by the page that uses it, not here
        return f"not warmed: {path.stem}: {exc}"


@st.cache_resource(show_spinner=False)
def warm_up_default_model() -> Ticket | None:
    """Once per server process: queue the default model's warm-up (background; never blocks a page)."""
    path = default_checkpoint()
    return None if path is None else default_queue().submit(_warm, path)
