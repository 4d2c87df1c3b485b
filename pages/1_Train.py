"""Train: choose data, process, schedule and optimiser; Start runs `python -m diffusion_core train` in the
background (diffusion_core.jobs). Live progress reattaches from the URL (?run=<id>) after a reload."""

import math

import plotly.graph_objects as go
import streamlit as st

from diffusion_core import jobs
from diffusion_core.cold import COLD_LOSSES
from diffusion_core.data import DATASETS
from diffusion_core.degradations import DEFAULT_T, DEGRADATION_KINDS, STRENGTH_SCHEDULES, make_degradation
from diffusion_core.degradations import MAX_T as DEGRADATION_MAX_T
from diffusion_core.schedules import MAX_T, PRESETS, SCHEDULE_KINDS, make_schedule
from diffusion_core.training import MAX_BATCH, MAX_EPOCHS
from pages.lab_ui import setup_page, user_errors

ARCH_LABELS = {"cnn": "Report CNN (hidden 16, 32, 32, 16; 7×7 convs)", "unet": "U-Net (learns faster per FLOP)"}
DATA_LABELS = {"mnist": "MNIST (full set when present or downloadable, else the bundled 5,000 digits)",
               "fashion-mnist": "Fashion-MNIST"}

setup_page("Train", (
    "Train a denoiser in the background. The job keeps running if you reload or close the tab: its "
    "address (`?run=…`) brings you back to it. **Stop** ends it cleanly after the current batch and keeps "
    "the last complete epoch; **Resume** continues from there. Finished runs appear as models on every page."
))


def preset_label(name: str) -> str:
    p = PRESETS[name]
    return f"{name}: {p['kind']} β {p['beta1']:g} → {p['beta2']:g}, T = {p['T']}"


# ---------------------------------------------------------------- cold diffusion (degradations)


def parse_params(text: str) -> list[str]:
    """'sigma_max=3, kernel_size=27' → ['sigma_max=3', 'kernel_size=27'] (for --degradation-param)."""
    items = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
    bad = [p for p in items if "=" not in p or not p.split("=", 1)[0].strip()]
    if bad:
        raise ValueError(f"degradation parameters must be KEY=VALUE pairs separated by commas; got {bad[0]!r}")
    return items


def degradation_widgets() -> dict[str, object]:
    """The `train --degradation …` options of the CLI: kind, T, strength schedule, parameters, loss."""
    c1, c2, c3, c4 = st.columns(4)
    kind = c1.selectbox("Degradation", DEGRADATION_KINDS, key="train_degradation",
                        help="blur is the report's (σ_t = 0.02 + 0.01·t over the whole image, T = 500)")
    T = c2.number_input("Degradation steps T", min_value=1, max_value=DEGRADATION_MAX_T, value=DEFAULT_T[kind],
                        key=f"train_degradation_T_{kind}")
    schedule = c3.selectbox("Strength schedule", STRENGTH_SCHEDULES, key="train_degradation_schedule",
                            help="how the strength grows with t/T: linear as the report, or a non-linear curve")
    loss = c4.selectbox("Restoration loss", COLD_LOSSES, key="train_loss", help="l2 as the report; l1 as the paper")
    text = st.text_input("Degradation parameters (KEY=VALUE, comma-separated; blank for the defaults)", value="",
                         key="train_degradation_params", help="e.g. sigma_max=3.0 (blur), min_size=7 (pixelate), "
                         "fill=0 (mask), target=0.13 (fade), noise_std=0.1 (noise-blur)")
    return {"degradation": kind, "degradation_T": int(T), "degradation_schedule": schedule, "loss": loss,
            "degradation_param": text}


def check_degradation(options: dict[str, object]) -> None:
    """Build the degradation here so a bad parameter is reported before the job starts."""
    params = parse_params(str(options["degradation_param"]))
    options["degradation_param"] = params
    kwargs = {}
    for item in params:
        key, raw = (v.strip() for v in item.split("=", 1))
        if raw.lower() in ("none", "null"):
            kwargs[key] = None
            continue
        try:
            kwargs[key] = int(raw)
        except ValueError:
            try:
                kwargs[key] = float(raw)
            except ValueError:
                kwargs[key] = raw
    make_degradation(str(options["degradation"]), int(options["degradation_T"]),
                     str(options["degradation_schedule"]), **kwargs)


# ---------------------------------------------------------------- watching a run


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def loss_figure(run: jobs.RunInfo) -> go.Figure:
    epochs, losses = zip(*run.losses, strict=True) if run.losses else ((), ())
    fig = go.Figure(go.Scatter(x=list(epochs), y=list(losses), mode="lines+markers", name="training loss"))
    fig.update_layout(title="Training loss per epoch", xaxis_title="epoch", yaxis_title="loss", height=320,
                      margin=dict(t=40, b=40))
    fig.update_xaxes(dtick=max(1, math.ceil(len(epochs) / 10)))  # whole epochs only
    return fig


def open_run(run_id: str | None) -> None:
    if run_id is None:
        st.query_params.pop("run", None)
    else:
        st.query_params["run"] = run_id


def show_run(run_id: str, was_active: bool) -> None:
    try:
        run = jobs.read_run(run_id)
    except jobs.JobError as exc:
        st.error(str(exc))
        return
    if was_active and not run.active:
        st.rerun()  # it just ended: redraw the whole page (stops the ticking, refreshes the run list)
    st.subheader(f"Run {run.run_id}")
    st.caption(run.describe())
    done = min(run.epoch / run.epochs, 1.0) if run.epochs else 0.0
    eta = f" · about {fmt_duration(run.eta_seconds)} left" if run.eta_seconds is not None else ""
    last = f" · loss {run.losses[-1][1]:.4f}" if run.losses else ""
    st.progress(done, text=f"{run.state} · epoch {run.epoch}/{run.epochs}{last}{eta}")
    if run.state == "died":
        st.warning(run.message)
    elif run.state == "failed":
        st.error(f"Training failed: {run.message}")
    elif run.message:
        st.info(run.message)

    c1, c2 = st.columns([3, 2])
    c1.plotly_chart(loss_figure(run), key="train_loss_fig")
    sample = run.latest_sample
    if sample is not None:
        c2.image(sample.read_bytes(), caption=f"Samples after epoch {int(sample.stem.split('_')[-1])}")
    else:
        c2.caption("Sample grids appear here at the epochs chosen for previews (every 10th and the last).")

    b1, b2, b3, b4 = st.columns(4)
    if run.active:
        if b1.button("Stop", key="train_stop", disabled=run.state == "stopping"):
            with user_errors("Could not stop"):
                jobs.stop_training(run.run_id)
                st.rerun()
    else:
        until = b2.number_input("Train until epoch", min_value=1, max_value=MAX_EPOCHS,
                                value=run.epochs + (10 if run.state == "finished" else 0), key="train_until")
        if b1.button("Resume", key="train_resume"):
            with user_errors("Could not resume"):
                jobs.resume_training(run.run_id, epochs=int(until))
                st.rerun()
    if run.checkpoint is not None:
        b3.page_link("pages/3_Reverse_diffusion.py", label="Sample from this run", icon=":material/fast_rewind:",
                     query_params={"model": f"run:{run.run_id}"})
    if b4.button("Close", key="train_close"):
        open_run(None)
        st.rerun()


watched = st.query_params.get("run")
if watched:
    try:
        active_now = jobs.read_run(watched).active
    except jobs.JobError:
        active_now = False
    st.fragment(show_run, run_every=1.0 if active_now else None)(watched, active_now)
    st.divider()

# ---------------------------------------------------------------- a new run

with st.expander("New training run", expanded=not watched):
    d1, d2 = st.columns(2)
    dataset = d1.selectbox("Dataset", DATASETS, format_func=DATA_LABELS.get, key="train_dataset")
    limit = d2.number_input("Training images (0 = all)", min_value=0, max_value=100_000, value=0, step=500,
                            key="train_limit", help="Train on the first N images only: quick experiments")

    process = st.radio("Process", ["Noise (Gaussian)", "Cold (degradation)"], horizontal=True, key="train_process",
                       help="noise: Algorithm 1 (predict ε); cold: Algorithm 3 (restore x from a degraded image)")
    options: dict[str, object] = {}
    if process.startswith("Cold"):
        options.update(degradation_widgets())
    else:
        mode = st.radio("Schedule", ["Report preset", "Custom"], horizontal=True, key="train_schedule_mode")
        if mode == "Report preset":
            preset = st.selectbox("Preset", list(PRESETS), key="train_preset", format_func=preset_label)
            options["preset"] = preset
        else:
            s1, s2, s3, s4 = st.columns(4)
            kind = s1.selectbox("Kind", SCHEDULE_KINDS, key="train_kind")
            beta1 = s2.number_input("β1", min_value=0.0, max_value=1.0, value=1e-4, step=1e-5, format="%.2e",
                                    key="train_beta1")
            beta2 = s3.number_input("β2", min_value=0.0, max_value=1.0, value=0.02, step=1e-3, format="%.2e",
                                    key="train_beta2")
            T = s4.number_input("T", min_value=1, max_value=MAX_T, value=1000, step=100, key="train_T")
            options.update(schedule=kind, beta1=float(beta1), beta2=float(beta2), T=int(T))

    a1, a2, a3 = st.columns(3)
    arch = a1.selectbox("Architecture", list(ARCH_LABELS), format_func=ARCH_LABELS.get, key="train_arch")
    epochs = a2.number_input("Epochs", min_value=1, max_value=MAX_EPOCHS, value=10, key="train_epochs")
    batch = a3.number_input("Batch size", min_value=1, max_value=MAX_BATCH, value=128, key="train_batch")
    o1, o2, o3, o4 = st.columns(4)
    lr = o1.number_input("Learning rate", min_value=1e-6, max_value=1.0, value=2e-4, step=1e-4, format="%.1e",
                         key="train_lr")
    use_ema = o2.checkbox("EMA of the weights", value=True, key="train_use_ema",
                          help="Sample from an exponential moving average of the weights: smoother, better samples")
    ema = o3.number_input("EMA decay", min_value=0.5, max_value=0.99999, value=0.999, step=0.001, format="%.4f",
                          key="train_ema", disabled=not use_ema)
    seed = o4.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, key="train_seed")
    if arch == "unet" and not process.startswith("Cold"):
        options["conditional"] = st.checkbox(
            "Class-conditional (learn the digit labels, for classifier-free guidance)", key="train_conditional",
            help="The U-Net also sees the digit label (dropped 10% of the time, so it learns the unconditional "
                 "ε too); sampling can then ask for a digit and sharpen it with a guidance scale w.")
    options.update(arch=arch, epochs=int(epochs), batch_size=int(batch), lr=float(lr),
                   ema=float(ema) if use_ema else None, seed=int(seed), dataset=dataset,
                   limit=int(limit) or None)

    try:
        running, cap = len(jobs.active_runs()), jobs.max_jobs()
        st.caption(f"{running} of at most {cap} training jobs running now.")
    except jobs.JobError as exc:
        st.error(str(exc))
    if st.button("Start training", type="primary", key="train_start"):
        with user_errors("Could not start training"):
            if "schedule" in options:
                make_schedule(options["schedule"], options["beta1"], options["beta2"], options["T"])
            if "degradation" in options:
                check_degradation(options)
            run = jobs.start_training(options)
            open_run(run.run_id)
            st.rerun()

# ---------------------------------------------------------------- all runs

st.subheader("Runs")
runs = jobs.list_runs()
if not runs:
    st.caption("No runs yet.")
else:
    st.dataframe(
        [{"run": r.run_id, "state": r.state, "epoch": f"{r.epoch}/{r.epochs}",
          "loss": round(r.losses[-1][1], 5) if r.losses else None, "what": r.describe(),
          "model": "yes" if r.checkpoint else "no"} for r in runs],
        hide_index=True, key="train_runs_table",
    )
    r1, r2 = st.columns([3, 1])
    pick = r1.selectbox("Open a run", [r.run_id for r in runs], key="train_pick",
                        format_func=lambda i: next(f"{i} ({r.state})" for r in runs if r.run_id == i))
    if r2.button("Open", key="train_open"):
        open_run(pick)
        st.rerun()
