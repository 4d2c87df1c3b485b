"""The Evaluate page's loss-by-noise-level tab: each run's training loss by t/T over its epochs, and every chosen
model's loss at fixed t on held-out digits (computed on request, through the work queue)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from diffusion_core.evaluation.likelihood import variational_bound
from diffusion_core.evaluation.noise_levels import heldout_loss_by_t
from diffusion_core.figures import bound_by_t_figure, heldout_loss_figure, loss_by_t_strip_figure
from diffusion_core.lab.comparison import ModelRecord
from diffusion_core.process import GaussianProcess

from .common import user_errors
from .data import load_test_digits
from .models import load_checkpoint_cached
from .queue_ui import run_queued

HELDOUT_DIGITS = 256  # held-out test digits per model
HELDOUT_POINTS = 20  # timesteps from 1 to T
BOUND_DIGITS, BOUND_T_SAMPLES = 64, 50  # held-out digits and timesteps per digit of the likelihood bound


def _heldout(record: ModelRecord) -> dict:
    ckpt = load_checkpoint_cached(record.weights)
    data = load_test_digits(ckpt.config.get("dataset", "mnist"))
    return heldout_loss_by_t(ckpt.process, ckpt.model, data.images[:HELDOUT_DIGITS], data.labels[:HELDOUT_DIGITS],
                             HELDOUT_POINTS)


def _bound(record: ModelRecord) -> dict:
    ckpt = load_checkpoint_cached(record.weights)
    data = load_test_digits(ckpt.config.get("dataset", "mnist"))
    return variational_bound(ckpt.process, ckpt.model, data.images[:BOUND_DIGITS],
                             min(BOUND_T_SAMPLES, ckpt.process.T - 1))


def likelihood_section(selected: list[ModelRecord], colours: dict[str, str]) -> None:
    """The DDPM variational bound in bits per dimension of each chosen noise model on held-out digits."""
    models = [r for r in selected if r.weights is not None and r.diffusion_type == GaussianProcess.type]
    st.caption(f"The variational bound on −log p(x) in bits per dimension (lower is better) on {BOUND_DIGITS} test "
               f"digits, its diffusion terms estimated from {BOUND_T_SAMPLES} timesteps per digit (± standard "
               "error). Noise models only: a cold model has no likelihood; a class-conditional model's is its "
               "unconditional one (no label).")
    if st.button("Compute the likelihood bound", key="ev_bound", disabled=not models):
        with user_errors("Could not compute the bound"):
            st.session_state["ev_bounds"] = {r.name: run_queued(_bound, r) for r in models}
    bounds = {n: b for n, b in st.session_state.get("ev_bounds", {}).items() if n in {r.name for r in selected}}
    if bounds:
        st.dataframe(pd.DataFrame([{"model": n, "bits/dim": b["bpd"], "± SE": b["se"], **b["terms"]}
                                   for n, b in bounds.items()]), hide_index=True, key="ev_bound_table")
        st.plotly_chart(bound_by_t_figure(bounds, colours), key="ev_bound_fig")


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
    likelihood_section(selected, colours)
