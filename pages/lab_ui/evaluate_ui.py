"""The Evaluate page's loss-by-noise-level tab: each run's training loss by t/T over its epochs, and every chosen
model's loss at fixed t on held-out digits (computed on request, through the work queue)."""

from __future__ import annotations

import streamlit as st

from diffusion_core.evaluation.noise_levels import heldout_loss_by_t
from diffusion_core.figures import heldout_loss_figure, loss_by_t_strip_figure
from diffusion_core.lab.comparison import ModelRecord

from .common import user_errors
from .data import load_test_digits
from .models import load_checkpoint_cached
from .queue_ui import run_queued

HELDOUT_DIGITS = 256  # held-out test digits per model
HELDOUT_POINTS = 20  # timesteps from 1 to T


def _heldout(record: ModelRecord) -> dict:
    ckpt = load_checkpoint_cached(record.weights)
    data = load_test_digits(ckpt.config.get("dataset", "mnist"))
    return heldout_loss_by_t(ckpt.process, ckpt.model, data.images[:HELDOUT_DIGITS], data.labels[:HELDOUT_DIGITS],
                             HELDOUT_POINTS)


def loss_by_noise_level_tab(selected: list[ModelRecord], colours: dict[str, str]) -> None:
    strips = [r for r in selected if any(row.get("loss_by_t") for row in r.rows)]
    if strips:
        name = st.selectbox("Run", [r.name for r in strips], key="ev_strip_run")
        record = next(r for r in strips if r.name == name)
        st.plotly_chart(loss_by_t_strip_figure(record.rows, f"Training loss by noise level · {name}"),
                        key="ev_strip_fig")
    else:
        st.caption("No chosen run recorded its loss by noise level (runs trained since it was added do).")
    models = [r for r in selected if r.weights is not None]
    st.caption(f"Held-out loss at {HELDOUT_POINTS} timesteps on {HELDOUT_DIGITS} test digits, ±1 standard error. "
               "Noise models' and cold models' losses are on different scales (ε against x).")
    if st.button("Compute the held-out loss by noise level", key="ev_heldout", disabled=not models):
        with user_errors("Could not compute the held-out loss"):
            st.session_state["ev_heldout_curves"] = {r.name: run_queued(_heldout, r) for r in models}
    curves = {n: c for n, c in st.session_state.get("ev_heldout_curves", {}).items()
              if n in {r.name for r in selected}}
    if curves:
        st.plotly_chart(heldout_loss_figure(curves, colours), key="ev_heldout_fig")
