"""Train: choose data, process, schedule and optimiser; Start runs `python -m diffusion_core train` in the
background (diffusion_core.lab.jobs). Live progress reattaches from the URL (?run=<id>) after a reload."""

import math

import plotly.graph_objects as go
import streamlit as st

from diffusion_core.io.data import DATASETS, DatasetUnavailableError
from diffusion_core.lab import jobs
from diffusion_core.process.cold import COLD_LOSSES
from diffusion_core.process.degradations import DEFAULT_T, DEGRADATION_KINDS, STRENGTH_SCHEDULES
from diffusion_core.process.degradations import MAX_T as DEGRADATION_MAX_T
from diffusion_core.process.schedules import MAX_T, PRESETS, SCHEDULE_KINDS
from diffusion_core.training.trainer import INT_RANGES, MAX_BATCH, MAX_EPOCHS
from pages.lab_ui import NumberField, number_field, require, setup_page, user_errors

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


def degradation_widgets(fields: list[NumberField]) -> dict[str, object]:
    """The `train --degradation …` options: kind, T, strength schedule, parameters (KEY=VALUE text), loss."""
    c1, c2, c3, c4 = st.columns(4)
    kind = c1.selectbox("Degradation", DEGRADATION_KINDS, key="train_degradation",
                        help="blur is the report's (σ_t = 0.02 + 0.01·t over the whole image, T = 500)")
    T = number_field("Degradation steps T", 1, DEGRADATION_MAX_T, DEFAULT_T[kind], f"train_degradation_T_{kind}",
                     container=c2)
    fields.append(T)
    schedule = c3.selectbox("Strength schedule", STRENGTH_SCHEDULES, key="train_degradation_schedule",
                            help="how the strength grows with t/T: linear as the report, or a non-linear curve")
    loss = c4.selectbox("Restoration loss", COLD_LOSSES, key="train_loss", help="l2 as the report; l1 as the paper")
    text = st.text_input("Degradation parameters (KEY=VALUE, comma-separated; blank for the defaults)", value="",
                         key="train_degradation_params", help="e.g. sigma_max=3.0 (blur), min_size=7 (pixelate), "
                         "fill=0 (mask), target=0.13 (fade), noise_std=0.1 (noise-blur)")
    return {"degradation": kind, "degradation_T": T.value, "degradation_schedule": schedule, "loss": loss,
            "degradation_param": text}


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
    if run.state == "starting":  # nothing trained yet: say what it is doing instead of "epoch 0/N"
        text = f"starting · {run.phase_text()}"
    else:
        eta = f" · about {fmt_duration(run.eta_seconds)} left" if run.eta_seconds is not None else ""
        last = f" · loss {run.losses[-1][1]:.4f}" if run.losses else ""
        text = f"{run.state} · epoch {run.epoch}/{run.epochs}{last}{eta}"
    st.progress(done, text=text)
    if run.state == "starting":
        st.caption("A new job spends its first 20–30 s on a CPU importing PyTorch, then loading the data (first "
                   "trying to download MNIST when it is not in the data folder) and building the model, before its "
                   "first batch.")
    elif run.state in ("running", "stopping"):
        st.caption(f"Now: {run.phase_text()}.")
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
        default_until = max(1, run.epochs + (10 if run.state == "finished" else 0))  # finished: extend it
        until = number_field("Train until epoch", 1, MAX_EPOCHS, default_until, "train_until", container=b2)
        if b1.button("Resume", key="train_resume"):
            with user_errors("Could not resume"):
                jobs.resume_training(run.run_id, epochs=int(until))  # int() refuses an out-of-range value
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


@st.cache_data(ttl=300, show_spinner=False)
def training_set(dataset: str) -> tuple[int | None, str]:
    """(images a run would train on now, where they come from); None and why when not here."""
    try:
        return jobs.training_set_size(dataset)
    except DatasetUnavailableError as exc:
        return None, str(exc)


@st.cache_data(ttl=60, show_spinner=False)
def shipped_references() -> list[jobs.Reference]:
    return jobs.shipped_references()


@st.cache_resource(show_spinner=False)
def gpu_here() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def speed_key(options: dict[str, object]) -> tuple:
    """What a measured speed depends on: architecture, label, process, batch (measured up to 64)."""
    return (options["arch"], bool(options.get("conditional")), bool(options.get("degradation")),
            min(int(options["batch_size"]), 64))


def show_estimate(options: dict[str, object], fields: list[NumberField]) -> None:
    """How long this run will take and what it will draw, before Start (jobs.estimate_training)."""
    bad = [f for f in fields if not f.ok]
    if bad:
        st.caption(f"Fix {', '.join(f.label for f in bad)} to see how long this run would take.")
        return
    n, source = training_set(str(options["dataset"]))
    note = ""
    if n is None:
        n = 60_000
        note = f"\n\n{source} Estimated for the 60,000 training images a download gives."
    elif "bundled" in source:
        note = ("\n\nFull MNIST is not in the data folder, so the run uses the 4,500 bundled digits; if it can "
                "download full MNIST it trains on 60,000 instead, 13× longer.")
    measured = st.session_state.get("train_speed")
    if measured and measured["key"] == speed_key(options):
        est = jobs.estimate_training(options, n, shipped_references(), measured["rate"], measured["source"])
    else:
        est = jobs.estimate_training(options, n, shipped_references(), load=jobs.machine_load())
        if gpu_here():
            note += ("\n\nThis machine has a GPU, which the job will use: the shipped speeds are CPU speeds, so "
                     "press **Measure this machine's speed** for a real estimate.")
    st.info(f"**Time:** {est.time_text()}.\n\n**What to expect:** {est.verdict}{note}")
    if st.button("Measure this machine's speed", key="train_measure",
                 help="A few training steps of this architecture on random data, on this machine now "
                      "(its GPU if it has one): a few seconds, longer for the U-Net"):
        with user_errors("Could not measure"), st.spinner("Measuring a few training steps…"):
            rate, what = jobs.measure_images_per_s(options)
            st.session_state["train_speed"] = {"key": speed_key(options), "rate": rate, "source": what}
            st.rerun()


with st.expander("New training run", expanded=not watched):
    fields: list[NumberField] = []  # every number box of the form: Start refuses any out of range
    d1, d2 = st.columns(2)
    dataset = d1.selectbox("Dataset", DATASETS, format_func=DATA_LABELS.get, key="train_dataset")
    limit = number_field("Training images (0 = all)", 0, 100_000, 0, "train_limit", container=d2, step=500,
                         help="Train on the first N images only: quick experiments.")
    fields.append(limit)

    process = st.radio("Process", ["Noise (Gaussian)", "Cold (degradation)"], horizontal=True, key="train_process",
                       help="noise: Algorithm 1 (predict ε); cold: Algorithm 3 (restore x from a degraded image)")
    options: dict[str, object] = {}
    if process.startswith("Cold"):
        options.update(degradation_widgets(fields))
    else:
        mode = st.radio("Schedule", ["Report preset", "Custom"], horizontal=True, key="train_schedule_mode")
        if mode == "Report preset":
            preset = st.selectbox("Preset", list(PRESETS), key="train_preset", format_func=preset_label)
            options["preset"] = preset
        else:
            s1, s2, s3, s4 = st.columns(4)
            kind = s1.selectbox("Kind", SCHEDULE_KINDS, key="train_kind")
            beta1 = number_field("β1", 0.0, 1.0, 1e-4, "train_beta1", container=s2, step=1e-5, format="%.2e")
            beta2 = number_field("β2", 0.0, 1.0, 0.02, "train_beta2", container=s3, step=1e-3, format="%.2e")
            T = number_field("T", 1, MAX_T, 1000, "train_T", container=s4, step=100)
            fields += [beta1, beta2, T]
            options.update(schedule=kind, beta1=beta1.value, beta2=beta2.value, T=T.value)

    a1, a2, a3 = st.columns(3)
    arch = a1.selectbox("Architecture", list(ARCH_LABELS), format_func=ARCH_LABELS.get, key="train_arch")
    epochs = number_field("Epochs", 1, MAX_EPOCHS, 10, "train_epochs", container=a2)
    batch = number_field("Batch size", 1, MAX_BATCH, 128, "train_batch", container=a3)
    o1, o2, o3, o4 = st.columns(4)
    lr = number_field("Learning rate", 1e-6, 1.0, 2e-4, "train_lr", container=o1, step=1e-4, format="%.1e")
    use_ema = o2.checkbox("EMA of the weights", value=True, key="train_use_ema",
                          help="Sample from an exponential moving average of the weights: smoother, better samples")
    ema = number_field("EMA decay", 0.5, 0.99999, 0.999, "train_ema", container=o3, step=0.001, format="%.4f",
                       disabled=not use_ema)
    seed = number_field("Seed", 0, 2**31 - 1, 0, "train_seed", container=o4)
    fields += [epochs, batch, lr, seed] + ([ema] if use_ema else [])
    if arch == "unet" and not process.startswith("Cold"):
        options["conditional"] = st.checkbox(
            "Class-conditional (learn the digit labels, for classifier-free guidance)", key="train_conditional",
            help="The U-Net also sees the digit label (dropped 10% of the time, so it learns the unconditional "
                 "ε too); sampling can then ask for a digit and sharpen it with a guidance scale w.")
    f1, f2, f3 = st.columns([2, 1, 1])
    fid_on = f1.checkbox(
        "Measure FID during training", value=False, key="train_fid", disabled=dataset != "mnist",
        help="Every N epochs (and at the last) the trainer draws samples with its fast preview sampler and "
             "measures their classifier-FID against held-out digits (MNIST only: the classifier knows digits). "
             "The curve appears on the Evaluate page (the report's Figures 5 and 10); each measurement costs "
             "a few seconds on a CPU, more with more samples.") and dataset == "mnist"
    fid_every = number_field("FID every N epochs", 1, INT_RANGES["fid_every"][1], 5, "train_fid_every",
                             container=f2, disabled=not fid_on)
    fid_samples = number_field("FID samples", *INT_RANGES["fid_samples"], 256, "train_fid_samples", container=f3,
                               disabled=not fid_on, step=64)
    if fid_on:
        fields += [fid_every, fid_samples]
    options.update(arch=arch, epochs=epochs.value, batch_size=batch.value, lr=lr.value,
                   ema=ema.value if use_ema else None, seed=seed.value, dataset=dataset,
                   limit=limit.value or None, fid_every=fid_every.value if fid_on else None,
                   fid_samples=fid_samples.value if fid_on else None)

    show_estimate(options, fields)
    try:
        running, cap = len(jobs.active_runs()), jobs.max_jobs()
        st.caption(f"{running} of at most {cap} training jobs running now.")
    except jobs.JobError as exc:
        st.error(str(exc))
    if st.button("Start training", type="primary", key="train_start"):
        with user_errors("Could not start training"):
            require(fields)  # a value out of range is refused, never replaced by the last valid one
            run = jobs.start_training(options)  # the options become a TrainConfig there, every rule checked
            open_run(run.run_id)
            st.rerun()

# ---------------------------------------------------------------- all runs


def runs_table(was_active: bool) -> None:
    """Every run, refreshed each second while one is active (the same files the run panel reads)."""
    runs = jobs.list_runs()
    if was_active and not any(r.active for r in runs):
        st.rerun()  # the last active run ended: redraw the page once and stop ticking
    if not runs:
        st.caption("No runs yet.")
        return
    st.dataframe(
        [{"run": r.run_id, "state": r.state, "epoch": f"{r.epoch}/{r.epochs}", "now": r.phase_text(),
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


st.subheader("Runs")
any_active = any(r.active for r in jobs.list_runs())
st.fragment(runs_table, run_every=1.0 if any_active else None)(any_active)
