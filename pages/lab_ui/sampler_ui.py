"""Choosing a sampler on a page — sampler, steps, its knobs (η, churn: as each sampler declares them), where the
steps go, the start — and a panel of what the choice costs: its steps on the noise schedule and quality against
network evaluations (NFE)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import streamlit as st

from diffusion_core.figures import quality_vs_nfe_figure, steps_on_log_snr_figure
from diffusion_core.io.checkpoints import LoadedCheckpoint
from diffusion_core.process import SamplerChoice
from diffusion_core.process.knobs import Knob
from diffusion_core.process.spacing import SPACINGS
from diffusion_core.samplers.registry import SAMPLERS
from diffusion_core.services.run_status import runs_root
from diffusion_core.views import sampler_costs

from .common import user_errors
from .inputs import NumberField, number_field
from .queue_ui import run_queued

START_LABELS = {"mixture": "Gaussian mixture fitted to degraded digits (the paper)",
                "black": "a black image (the report)"}
GRID_N = 200  # samples per point of the background grid (the committed benchmark has 500)
SPACING_HELP = ("where the steps go on the noise schedule: uniform in t (DDIM's), log-snr (DPM-Solver's), karras "
                "(dense at low noise, ρ = 7) or edm (karras on EDM's σ range)")


@dataclass
class SamplerControls:
    choice: SamplerChoice  # seed 0 and the given start; the page adds seed and conditioning
    steps_field: NumberField | None


def sampler_controls(ckpt: LoadedCheckpoint, key: str, default: SamplerChoice, bad: dict[str, str],
                     columns: list, keep_on_switch: bool = False) -> SamplerControls:
    """Sampler, steps, the sampler's knobs, spacing (noise models) and start (cold models) in `columns`
    (at least 3); the page adds seed, images and conditioning. `keep_on_switch` (Compare): a sampler newly chosen
    here opens on the steps and spacing the previous one had, so switching the sampler changes only the sampler."""
    last = st.session_state.get(f"{key}_last_choice") if keep_on_switch else None
    process = ckpt.process
    c1, c2, c3 = columns[:3]
    options = process.samplers
    sampler = c1.selectbox("Sampler", options, index=options.index(default.sampler), key=f"{key}_sampler",
                           format_func=lambda s: f"{s} (fails on this model)" if s in bad else s)
    spec, steps_field = process.sampler(sampler), None
    if spec.all_steps:
        c2.number_input("Steps", value=process.T, disabled=True, key=f"{key}_steps_fixed",
                        help=f"{sampler} takes all T steps")
    elif spec.one_step:
        c2.number_input("Steps", value=1, disabled=True, key=f"{key}_steps_direct", help=f"{sampler}: one step")
    else:
        first = default.steps if sampler == default.sampler and default.steps else (spec.default_steps or process.T)
        if last is not None and last.sampler != sampler and last.steps:
            first = last.steps
        steps_field = number_field("Steps", 1, process.T, value=min(first, process.T), key=f"{key}_steps_{sampler}",
                                   container=c2)
    knobs = {k.name: knob_slider(k, f"{key}_{k.name}", c3) for k in spec.knobs}  # as the sampler declares them
    start = c3.selectbox("Start from", process.starts, format_func=START_LABELS.get, key=f"{key}_start") \
        if process.starts else None
    spacing = None
    if process.noise_levels and not (spec.all_steps or spec.one_step):
        opening = spec.spacing
        if last is not None and last.sampler != sampler and last.sampler in process.samplers:
            last_spec = process.sampler(last.sampler)
            if not (last_spec.all_steps or last_spec.one_step):
                opening = last.spacing or last_spec.spacing
        chosen = st.radio("Spacing", SPACINGS, index=SPACINGS.index(opening), horizontal=True,
                          key=f"{key}_spacing_{sampler}", help=SPACING_HELP)
        spacing = None if chosen == spec.spacing else chosen  # None: the sampler's own (not named in captions)
    steps = int(steps_field.value) if steps_field is not None and steps_field.ok else None
    choice = SamplerChoice(sampler, steps, start=start, spacing=spacing, knobs=knobs)
    if keep_on_switch:
        st.session_state[f"{key}_last_choice"] = choice
    return SamplerControls(choice, steps_field)


def knob_slider(knob: Knob, key: str, container: Any) -> float:
    """A knob's slider over its declared range; a value from a link outside it is named and dropped (a slider
    cannot show it), so the slider opens at the knob's default."""
    held = st.session_state.get(key)
    if held is not None:
        try:
            knob.check(held)
        except ValueError as exc:
            del st.session_state[key]
            container.warning(f"Ignored from the address: {exc}.")
    return container.slider(knob.label, knob.lo, knob.hi, knob.default, knob.step, key=key, help=knob.help)


def knob_keys(key: str) -> list[str]:
    """The widget keys of every registered sampler's knobs under `key` ("rd_eta"): a page's address holds them."""
    return sorted({f"{key}_{k.name}" for spec in SAMPLERS.values() for k in spec.knobs})


def cost_panel(ckpt: LoadedCheckpoint, choice: SamplerChoice, key: str) -> None:
    """The choice's steps on the log-SNR curve, and the benchmark's FID / KID against NFE for this model, with
    this choice measured live on request (a few samples, through the work queue)."""
    process = ckpt.process
    if not process.noise_levels:
        return
    # built only while open (a rerun of a collapsed panel draws nothing: a class's every click reruns this page)
    panel = st.expander("Where the steps go, and quality against cost", expanded=False, key=f"{key}_panel",
                        on_change="rerun")
    if not panel.open:
        return
    with panel:
        with user_errors("Cannot place these steps") as placed:
            steps = sampler_costs.steps_of(ckpt, choice)
        if placed.failed:
            return
        st.plotly_chart(steps_on_log_snr_figure(process.log_snrs(), {choice.describe(): steps}), key=f"{key}_steps")
        result = sampler_costs.benchmark_rows(ckpt.path.stem)
        live = [r for r in st.session_state.get(f"{key}_live", []) if r["model"] == str(ckpt.path)]
        job = sampler_costs.grid_job(ckpt.path, GRID_N, runs_root()) if ckpt.path.is_file() else None
        rows = (result["rows"] if result else []) + [{**r, "spacing": f"{r['spacing']} (live, n={r['n']})"}
                                                     for r in live]
        rows += [{**r, "spacing": f"{r['spacing']} (here, n={GRID_N})"} for r in (job or {}).get("rows", [])]
        if result:
            best = ", ".join(f"{nfe} NFE: {b['sampler']} · {b['spacing']} (FID {b['fid']:.1f} ± {b['fid_se']:.1f})"
                             for nfe, b in result.get("best", {}).items())
            st.caption(f"Benchmark on {result['model']}, n = {result['n']} per point ({result['reference']})"
                       + (f"; best at {best}" if best else "") + ". Recompute: `python benchmarks/samplers_nfe.py`.")
        else:
            st.caption("No benchmark for this model yet (`python benchmarks/samplers_nfe.py --model "
                       f"{ckpt.path.stem}`); measure choices live below.")
        c1, c2, c3 = st.columns([1, 2, 3])
        n = number_field("Samples", 20, sampler_costs.LIVE_MAX, 100, f"{key}_live_n", container=c1)
        if c2.button("Measure this choice", key=f"{key}_measure", help="FID and KID of this choice on a few "
                     "samples against the test digits (KID is fair at small n; FID is biased high)"):
            with user_errors("Could not measure"):
                row = run_queued(sampler_costs.measure_choice, ckpt, choice, int(n))
                st.session_state.setdefault(f"{key}_live", []).append({**row, "model": str(ckpt.path)})
                st.rerun()
        running = bool(job and job["running"])
        if c3.button(f"Measure every sampler × spacing here (n = {GRID_N}, in the background)", key=f"{key}_grid",
                     disabled=running or not ckpt.path.is_file(),
                     help="a background job at low priority, NFE 10 and 20; its points appear as they come"):
            with user_errors("Could not start the measurement"):
                sampler_costs.start_grid_job(ckpt.path, GRID_N, [10, 20], runs_root())
                st.rerun()
        if job and job.get("error"):
            st.error(f"The background measurement failed: {job['error']}")
        elif running:
            st.progress(len(job["rows"]) / (job.get("total") or 56),
                        text=f"Measuring here: {len(job['rows'])} of {job.get('total') or '…'} points "
                             "(reopen this panel to see the latest)")
        if rows:
            metric = st.radio("Quality", ["fid", "kid"], horizontal=True, key=f"{key}_metric",
                              format_func=str.upper)
            st.plotly_chart(quality_vs_nfe_figure(rows, metric), key=f"{key}_nfe_fig")
