"""The Train page's parts: the cold-diffusion inputs, the estimate before Start, a run's live panel and the
table of runs. The page composes them; the work is in diffusion_core.services.jobs."""

from __future__ import annotations

import math

import plotly.graph_objects as go
import streamlit as st

from diffusion_core.figures import fid_wall_clock_figure, loss_by_t_strip_figure
from diffusion_core.io.data import DatasetUnavailableError
from diffusion_core.process.cold import COLD_LOSSES
from diffusion_core.process.degradations import DEFAULT_T, DEGRADATION_KINDS, STRENGTH_SCHEDULES
from diffusion_core.process.degradations import MAX_T as DEGRADATION_MAX_T
from diffusion_core.process.flow import MAX_FLOW_T, TIME_SAMPLINGS
from diffusion_core.process.targets import DEFAULT_GAMMA, PREDICTION_NAMES, PREDICTIONS, WEIGHTINGS
from diffusion_core.services import estimates, jobs, ray_jobs, run_status
from diffusion_core.services.ownership import Actor, may_manage
from diffusion_core.training.config import INT_RANGES, MAX_EPOCHS
from diffusion_core.views.degradations import degradation_parameters

from .common import user_errors
from .identity import current_actor
from .inputs import NumberField, number_field

RECIPE_LABELS = {"quick": "Quick: a noise model drawing recognisable digits in about 10 minutes on 2 idle CPU cores",
                 "flow": "Flow: the quick recipe's U-Net and budget, trained as flow matching (logit-normal t)",
                 "report": "The report's: its CNN for 100 epochs (hours on a CPU)"}
PROCESS_KINDS = ["Noise (Gaussian)", "Flow matching", "Cold (degradation)"]

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
    takes = ", ".join(f"{p.name}={'(whole image)' if p.default is None else f'{p.default:g}'}"
                      for p in degradation_parameters(kind))
    text = st.text_input("Degradation parameters (KEY=VALUE, comma-separated; blank for the defaults)", value="",
                         key="train_degradation_params", help=f"{kind} takes {takes or 'no parameters'} (its defaults)")
    return {"degradation": kind, "degradation_T": T.value, "degradation_schedule": schedule, "loss": loss,
            "degradation_param": text}


def flow_widgets(fields: list[NumberField], recipe: dict) -> dict[str, object]:
    """The `train --flow` options: the time grid T and how training draws t (logit-normal: its m and s)."""
    f1, f2, f3, f4 = st.columns(4)
    T = number_field("Time steps T (t = k/T)", 1, MAX_FLOW_T, 1000, "train_flow_T", container=f1, step=100)
    sampling = f2.selectbox("Training draws t", TIME_SAMPLINGS, key="train_time_sampling",
                            index=TIME_SAMPLINGS.index(str(recipe.get("time_sampling", "uniform"))),
                            help="uniform on [0, 1], or logit-normal (SD3): t = sigmoid(m + s·n), more steps mid-path")
    mean = number_field("m", -3.0, 3.0, 0.0, "train_logit_mean", container=f3, step=0.1,
                        disabled=sampling == "uniform")
    std = number_field("s", 0.1, 3.0, 1.0, "train_logit_std", container=f4, step=0.1, disabled=sampling == "uniform")
    fields.append(T)
    options: dict[str, object] = {"flow": True, "T": T.value, "time_sampling": sampling}
    if sampling == "logit-normal":
        fields.extend((mean, std))
        options.update(logit_mean=mean.value, logit_std=std.value)
    return options


def target_widgets(fields: list[NumberField], prediction: str = "eps") -> dict[str, object]:
    """The `train --prediction/--weighting/--snr-gamma` options of a noise model (`prediction`: the default)."""
    t1, t2, t3 = st.columns(3)
    prediction = t1.selectbox("Network predicts", PREDICTIONS, format_func=PREDICTION_NAMES.get, key="train_prediction",
                              index=PREDICTIONS.index(prediction),
                              help="ε is the report's; every sampler works with each (the checkpoint declares it)")
    weighting = t2.selectbox("Loss weighting", WEIGHTINGS, key="train_weighting",
                             help="uniform: the plain MSE of the target; min-snr / soft-min-snr cap the weight of "
                                  "nearly clean images at γ (Schedules page: the weight over noise levels)")
    gamma = number_field("γ", 0.0, 1e4, DEFAULT_GAMMA, "train_snr_gamma", container=t3, step=1.0, lo_open=True,
                         disabled=weighting == "uniform")
    if weighting == "uniform":
        return {"prediction": prediction}
    fields.append(gamma)
    return {"prediction": prediction, "weighting": weighting, "snr_gamma": gamma.value}


def unet_widgets(recipe: dict, fields: list[NumberField], cold: bool) -> dict[str, object]:
    """The U-Net's patch and width (and, for a noise model, class conditioning); its number boxes join `fields`."""
    u1, u2 = st.columns(2)
    patches = [1, 2, 4]
    options: dict[str, object] = {"patch": u2.selectbox(
        "U-Net patch", patches, index=patches.index(int(recipe.get("patch", 1))), key="train_patch",
        format_func=lambda p: "1 (every pixel)" if p == 1 else f"{p} ({p}×{p} pixel blocks as channels)",
        help="2: the network runs at 14×14 and 7×7 instead of 28×28 and 14×14, about 3× the images per "
             "second, at some cost in fine detail per step")}
    width = number_field("U-Net base channels", 8, 256, int(recipe.get("base_channels", 32)), "train_base_channels",
                         container=u1, step=8, help="channels of the first level (the second has twice as "
                         "many): wider learns more per step but each step costs more (a multiple of 8)")
    fields.append(width)
    options["base_channels"] = width.value
    if not cold:
        options["conditional"] = st.checkbox(
            "Class-conditional (learn the digit labels, for classifier-free guidance)", key="train_conditional",
            help="The U-Net also sees the digit label (dropped 10% of the time, so it learns the unconditional "
                 "ε too); sampling can then ask for a digit and sharpen it with a guidance scale w.")
    return options


def fid_widgets(recipe: dict, dataset: str, fields: list[NumberField]) -> dict[str, object]:
    """Whether (MNIST only), how often and on how many samples the run measures FID; its boxes join `fields`."""
    f1, f2, f3 = st.columns([2, 1, 1])
    fid_on = f1.checkbox(
        "Measure FID during training", value=bool(recipe.get("fid_every")), key="train_fid",
        disabled=dataset != "mnist",
        help="Every N epochs (and at the last) the trainer draws samples with its fast preview sampler and "
             "measures their classifier-FID against held-out digits (MNIST only: the classifier knows digits). "
             "The curve appears on the Evaluate page (the report's Figures 5 and 10); each measurement costs "
             "a few seconds on a CPU, more with more samples.") and dataset == "mnist"
    fid_every = number_field("FID every N epochs", 1, INT_RANGES["fid_every"][1], int(recipe.get("fid_every") or 5),
                             "train_fid_every", container=f2, disabled=not fid_on)
    fid_samples = number_field("FID samples", *INT_RANGES["fid_samples"], 256, "train_fid_samples", container=f3,
                               disabled=not fid_on, step=64)
    if fid_on:
        fields += [fid_every, fid_samples]
    return {"fid_every": fid_every.value if fid_on else None, "fid_samples": fid_samples.value if fid_on else None}


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def loss_figure(run: run_status.RunInfo) -> go.Figure:
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


def where_widget() -> bool:
    """Where a new run trains, with how many run there now: True for the configured Ray cluster (the choice
    appears only when one is configured)."""
    address = ray_jobs.jobs_address()
    on_cluster = address is not None and st.radio(
        "Train on", ["cluster", "here"], horizontal=True, key="train_where",
        format_func={"cluster": f"the Ray cluster ({address})", "here": "this server"}.get,
        help="The cluster runs it as a Ray job (on a GPU node when one is configured), writing to the same shared "
             "runs folder: watch, stop and resume it here as any run.") == "cluster"
    with user_errors("The limit on training jobs is misconfigured"):
        running = sum((r.ray_job is not None) == on_cluster for r in run_status.active_runs())
        cap = ray_jobs.max_cluster_jobs() if on_cluster else jobs.max_jobs()
        st.caption(f"{running} of at most {cap} training jobs running {'on the cluster' if on_cluster else 'here'} "
                   "now.")
    return on_cluster


def show_run(run_id: str, was_active: bool) -> None:
    try:
        run = run_status.read_run(run_id)
    except run_status.JobError as exc:
        st.error(str(exc))
        return
    if was_active and not run.active:
        st.rerun()  # it just ended: redraw the whole page (stops the ticking, refreshes the run list)
    actor = current_actor()
    mine = may_manage(run.owner, actor)
    st.subheader(f"Run {run.title}")
    st.caption(f"{run.describe()} · {owner_text(run, actor)}")
    if run.ray_job is not None:
        address = run_status.read_job(run.run_dir).get("ray_address", "")
        st.caption(f"On the Ray cluster as job `{run.ray_job}` — its own log and status: [the cluster's dashboard]"
                   f"({address}/#/jobs/{run.ray_job}).")
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
    measured = [r for r in run.metrics if r.get("fid") is not None]
    if measured:  # quality arriving as the clock runs
        floor = measured[-1].get("fid_floor")
        c1.plotly_chart(fid_wall_clock_figure({run.run_id: measured}, floor, 4 * floor if floor else None),
                        key="train_fid_fig")
        last = measured[-1]
        c1.caption(f"FID {last['fid']:.3g} on {last.get('fid_samples', '?')} samples after "
                   f"{fmt_duration(last['wall_time_s'])} of training"
                   + (f" ({last['fid'] / floor:.1f}× the floor of {floor:.3g}, the FID of as many real digits; "
                      "the dotted line is 4× it)" if floor else "")
                   + f"; {last.get('confident_fraction', 0):.0%} classified with confidence > 0.9.")
    if any(r.get("loss_by_t") for r in run.metrics):  # where across the noise levels the loss goes down
        c1.plotly_chart(loss_by_t_strip_figure(run.metrics), key="train_loss_by_t_fig")
    sample = run.latest_sample
    if sample is not None:
        c2.image(sample.read_bytes(), caption=f"Samples after epoch {int(sample.stem.split('_')[-1])}")
    else:
        c2.caption("Sample grids appear here at the epochs chosen for previews (every 10th and the last).")

    if not mine:
        st.caption("Started in another browser: you can watch it and sample from it; only that browser or the "
                   "teacher can stop, resume or delete it.")
    b1, b2, b3, b4, b5 = st.columns(5)
    if run.active:
        if b1.button("Stop", key="train_stop", disabled=run.state == "stopping" or not mine):
            with user_errors("Could not stop"):
                jobs.stop_training(run.run_id, actor=actor)
                st.rerun()
    else:
        default_until = max(1, run.epochs + (10 if run.state == "finished" else 0))  # finished: extend it
        until = number_field("Train until epoch", 1, MAX_EPOCHS, default_until, "train_until", container=b2,
                             disabled=not mine)
        if b1.button("Resume", key="train_resume", disabled=not mine):
            with user_errors("Could not resume"):
                jobs.resume_training(run.run_id, epochs=int(until), actor=actor,  # int() refuses out-of-range
                                     cluster=run.ray_job is not None and ray_jobs.jobs_address() is not None)
                st.rerun()
    if run.checkpoint is not None:
        b3.page_link("pages/3_Reverse_diffusion.py", label="Sample from this run", icon=":material/fast_rewind:",
                     query_params={"model": f"run:{run.run_id}"})
    if b4.button("Delete", key="train_delete", disabled=run.active or not mine,
                 help="Takes the run out of every list (its folder moves to the runs folder's .deleted/, from "
                      "where it can be moved back); stop a running one first"):
        with user_errors("Could not delete"):
            jobs.delete_run(run.run_id, actor=actor)
            st.session_state["train_deleted"] = run.title
            open_run(None)
            st.rerun()
    if b5.button("Close", key="train_close"):
        open_run(None)
        st.rerun()


def owner_text(run: run_status.RunInfo, actor: Actor) -> str:
    """Whose run it is, as this browser sees it."""
    if run.owner is None:
        return "started outside the app: anyone can manage it"
    return "yours" if run.owner == actor.owner else "another browser's"


@st.cache_data(ttl=300, show_spinner=False)
def training_set(dataset: str) -> tuple[int | None, str]:
    """(images a run would train on now, where they come from); None and why when not here."""
    try:
        return estimates.training_set_size(dataset)
    except DatasetUnavailableError as exc:
        return None, str(exc)


@st.cache_data(ttl=60, show_spinner=False)
def shipped_references() -> list[estimates.Reference]:
    return estimates.shipped_references()


@st.cache_resource(show_spinner=False)
def gpu_here() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def speed_key(options: dict[str, object]) -> tuple:
    """What a measured speed depends on: architecture, label, process, batch (measured up to 64)."""
    return (options["arch"], bool(options.get("conditional")), bool(options.get("degradation")),
            min(int(options["batch_size"]), 64))


def show_estimate(options: dict[str, object], fields: list[NumberField]) -> None:
    """How long this run will take and what it will draw, before Start (estimates.estimate_training)."""
    bad = [f for f in fields if not f.ok]
    if bad:
        st.caption(f"Fix {', '.join(f.label for f in bad)} to see how long this run would take.")
        return
    try:
        run_status.config_of(options)
    except run_status.JobError as exc:
        st.caption(f"These settings cannot start a run ({exc}); fix them to see how long it would take.")
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
        est = estimates.estimate_training(options, n, shipped_references(), measured["rate"], measured["source"])
    else:
        est = estimates.estimate_training(options, n, shipped_references(), load=estimates.machine_load())
        if gpu_here():
            note += ("\n\nThis machine has a GPU, which the job will use: the shipped speeds are CPU speeds, so "
                     "press **Measure this machine's speed** for a real estimate.")
    st.info(f"**Time:** {est.time_text()}.\n\n**What to expect:** {est.verdict}{note}")
    if st.button("Measure this machine's speed", key="train_measure",
                 help="A few training steps of this architecture on random data, on this machine now "
                      "(its GPU if it has one): a few seconds, longer for the U-Net"):
        with user_errors("Could not measure"), st.spinner("Measuring a few training steps…"):
            rate, what = estimates.measure_images_per_s(options)
            st.session_state["train_speed"] = {"key": speed_key(options), "rate": rate, "source": what}
            st.rerun()


def runs_table(was_active: bool) -> None:
    """Every run, refreshed each second while one is active (the same files the run panel reads)."""
    runs = run_status.list_runs()
    if was_active and not any(r.active for r in runs):
        st.rerun()  # the last active run ended: redraw the page once and stop ticking
    deleted = st.session_state.pop("train_deleted", None)
    if deleted:
        st.success(f"Deleted run {deleted} (its folder is in the runs folder's .deleted/).")
    if not runs:
        st.caption("No runs yet.")
        return
    actor = current_actor()
    runs = sorted(runs, key=lambda r: r.owner != actor.owner)  # this browser's first, each part newest first
    st.dataframe(
        [{"run": r.title, "whose": owner_text(r, actor).split(":")[0], "state": r.state,
          "epoch": f"{r.epoch}/{r.epochs}", "now": r.phase_text(),
          "loss": round(r.losses[-1][1], 5) if r.losses else None, "what": r.describe(),
          "model": "yes" if r.checkpoint else "no"} for r in runs],
        hide_index=True, key="train_runs_table",
    )
    r1, r2 = st.columns([3, 1])
    pick = r1.selectbox("Open a run", [r.run_id for r in runs], key="train_pick",
                        format_func=lambda i: next(r.title for r in runs if r.run_id == i))  # (the state is in
    # the table above: a label holding it went stale in the open box while the run changed state)
    if r2.button("Open", key="train_open"):
        open_run(pick)
        st.rerun()
