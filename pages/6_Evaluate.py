"""Evaluate: compare training runs and shipped checkpoints — loss curves (report Figures 4 and 9), FID
curves (5 and 10), sample grids over epochs (2, 3, 7, 8) and a metrics table; a quality-vs-speed table
when the benchmark file exists."""

import pandas as pd
import streamlit as st

from diffusion_core.figures import (
    by_family,
    default_epochs,
    family_curves_figure,
    fid_curves_figure,
    final_fid_figure,
    loss_curves_figure,
    model_colours,
)
from diffusion_core.io.cards import card_protocol
from diffusion_core.views.evaluate import (
    benchmark_meta,
    benchmark_path,
    collect_records,
    fid_curve_missing,
    final_fids,
    has_fid,
    monitor_protocol,
    read_benchmark,
    sample_grids,
    summary_table,
)
from pages.lab_ui import setup_page, user_errors
from pages.lab_ui.evaluate_ui import guidance_section, loss_by_noise_level_tab, memorisation_tab, network_calls_tab
from pages.lab_ui.url_state import linked_tabs, url_state

MAX_DEFAULT = 8  # runs compared by default (the newest first)

setup_page("Evaluate", (
    "Compare models by how they trained and what they draw. The training loss shows optimisation "
    "(noise models predict ε, blur models restore x, so their losses are on different scales); the "
    "classifier-FID measures how close the samples are to real digits (lower is better) — when it was "
    "measured during training."
))
url_state("evaluate", ["ev_tab", "ev_models", "ev_log", "ev_samples_run", "ev_mem_model", "ev_mem_n",
                       "ev_mem_seed", "ev_g_model", "ev_g_kind", "ev_g_scales", "ev_g_n"])

records = collect_records()
if not records:
    st.info("Nothing to compare yet: no training run and no shipped checkpoint. Train a model and its run "
            "appears here with its loss curve and samples.")
    st.page_link("pages/1_Train.py", label="Go to Train", icon=":material/model_training:")
    st.stop()

by_key = {r.key: r for r in records}
chosen = st.multiselect("Runs and checkpoints", list(by_key), default=list(by_key)[:MAX_DEFAULT], key="ev_models",
                        format_func=lambda k: f"{'Run' if by_key[k].source == 'run' else 'Shipped'} · "
                                              f"{by_key[k].name} ({by_key[k].diffusion_type})")
selected = [by_key[k] for k in chosen]
if not selected:
    st.info("Choose at least one run or checkpoint.")
    st.stop()

st.subheader("Metrics")
st.dataframe(pd.DataFrame(summary_table(selected)), hide_index=True, key="ev_table", column_config={
    "final loss": st.column_config.NumberColumn(format="%.4f"),
    "FID (card)": st.column_config.NumberColumn(format="%.1f"),
    "FID (monitor, last)": st.column_config.NumberColumn(format="%.1f"),
    "wall time (s)": st.column_config.NumberColumn(format="%.0f")})
st.caption("Each FID beside how it was measured, all against the classifier features of the held-out MNIST test "
           "digits: **card** — measured once on the finished model (its card's samples and sampler); **monitor** "
           "— the last of the checks during training (fewer samples, a quicker sampler: higher, and comparable "
           "only with other monitor values at the same n).")

by_name = {r.name: r for r in selected}
colours = model_colours([r.name for r in selected])  # one colour per model in every chart below
tab_loss, tab_levels, tab_fid, tab_calls, tab_samples, tab_memory, tab_guidance = linked_tabs(
    ["Loss", "Loss by noise level", "FID", "FID vs network calls", "Samples over epochs", "Memorisation", "Guidance"],
    "ev_tab")


def curves_of(key: str) -> dict[str, list[dict]]:
    return {r.name: r.rows for r in selected if r.values(key)}


def by_process(curves: dict[str, list[dict]], key: str) -> None:
    """Figures 9–10: each process family's models in their own panel over the same epochs, when the chosen
    models are of more than one (noise and blur, as the report)."""
    families = by_family(curves, {n: by_name[n].diffusion_type for n in curves})
    if len(families) > 1:
        st.plotly_chart(family_curves_figure(families, key=key, colours=colours), key=f"ev_{key}_vs_fig")


with tab_loss:
    losses = curves_of("loss")
    if not losses:
        st.info("None of the chosen models has a loss curve: shipped checkpoints carry only their final numbers "
                "(in the table above).")
    else:
        log_y = st.toggle("Log scale", value=True, key="ev_log")
        st.plotly_chart(loss_curves_figure(losses, log_y=log_y, colours=colours), key="ev_loss_fig")
        by_process(losses, "loss")

with tab_levels:
    loss_by_noise_level_tab(selected, colours)

with tab_fid:
    if has_fid(selected):
        fids = curves_of("fid")
        protocols = sorted({p for r in selected if (p := monitor_protocol(r))})
        st.caption("FID measured by the training monitor (" + "; ".join(protocols) + "): compare these curves "
                   "with each other, not with the finished models' FIDs below.")
        st.plotly_chart(fid_curves_figure(fids, colours=colours), key="ev_fid_fig")
        by_process(fids, "fid")
    else:
        st.info("No FID curve: none of the chosen runs measured FID while it trained. To get one, tick **Measure FID "
                "during training** on the Train page (the CLI's `train --fid-every N --fid-samples M`).")
    finals = final_fids(selected)
    if finals:
        missing = fid_curve_missing(selected)
        note = (f" The shipped models' training histories ({', '.join(f'`{n}.metrics.jsonl`' for n in missing)}) "
                "hold no FID rows, so they have no curve; these are the FIDs measured once they had finished."
                if missing else "")
        st.caption("Measured classifier-FID of the finished models (" + "; ".join(
            f"{name}: {card_protocol(by_name[name].final)}" for name in finals) + "), against the real-data floor "
                   "at the same number of samples (held-out real digits: the best a model can score there)." + note)
        st.plotly_chart(final_fid_figure(finals, colours=colours), key="ev_final_fid_fig")

with tab_calls:
    network_calls_tab()

with tab_samples:
    grids = {r.name: sample_grids(r.run_dir) for r in selected if r.run_dir is not None}
    grids = {n: g for n, g in grids.items() if g}
    if not grids:
        st.info("None of the chosen runs has saved sample grids yet (the trainer writes samples/epoch_NNNN.png at "
                "its preview epochs).")
    else:
        st.caption("Latest samples of each run (report Figure 2). Cold models preview restorations.")
        latest = {n: g[max(g)] for n, g in grids.items()}
        st.image([str(p) for p in latest.values()], caption=[f"{n} · epoch {max(grids[n])}" for n in latest],
                 width=220)
        run_name = st.selectbox("Run", list(grids), key="ev_samples_run")
        available = list(grids[run_name])
        epochs = st.multiselect("Epochs", available, default=default_epochs(available), key=f"ev_epochs_{run_name}")
        if epochs:
            st.caption("Samples during training (report Figure 3; Figures 7–8 for a blur model).")
            st.image([str(grids[run_name][e]) for e in sorted(epochs)], caption=[f"epoch {e}" for e in sorted(epochs)],
                     width=220)

with tab_memory:
    memorisation_tab(selected)

with tab_guidance:
    guidance_section(records)

with user_errors("Cannot read the quality-vs-speed benchmark"):
    bench = read_benchmark()
    if bench is not None:
        st.subheader("Quality vs speed")
        about = benchmark_meta()
        measured = (f" of **{about['model']}**, against the {about.get('reference', 'MNIST test split')}; measured "
                    f"{about.get('measured', '?')} on {about.get('machine', '?')}") if about.get("model") else \
            " (the file does not say which model it measured)"
        st.caption(f"From {benchmark_path().name}: classifier-FID (n samples per row, as in the table) and seconds "
                   f"per sampler and number of steps{measured}. Rerun with `python benchmarks/run.py --model NAME`.")
        st.dataframe(pd.DataFrame(bench), hide_index=True, key="ev_benchmark")
