"""Models for the pages: cached checkpoint loading, the model picker (shipped, trained runs, upload)
and the home page's default model. Uploads go through checkpoints.model_from_bytes (safetensors +
JSON, hash-checked); nothing is ever unpickled."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import streamlit as st

from diffusion_core.io.checkpoints import LoadedCheckpoint, list_checkpoints, load_checkpoint, model_from_bytes
from diffusion_core.lab import jobs
from diffusion_core.lab.run_plan import seconds_per_call
from diffusion_core.models.guidance import NO_LABEL, is_conditional

from .common import user_errors

UPLOAD = "upload"
DEFAULT_ENV = "DIFFUSION_LAB_DEFAULT_MODEL"
# Preferred names for the home page's model, best first; otherwise the first shipped noise model.
DEFAULT_NAMES = ("default-unet", "unet", "default")


@st.cache_resource(max_entries=8, show_spinner="Loading the model…")
def _load_cached(path: str, mtime_ns: int) -> LoadedCheckpoint:
    del mtime_ns  # part of the cache key only: a retrained run's checkpoint loads afresh
    return load_checkpoint(path)


def load_checkpoint_cached(path: str | Path) -> LoadedCheckpoint:
    """load_checkpoint through st.cache_resource, keyed by path and the weights file's mtime."""
    path = Path(path)
    wpath = path.with_suffix(".safetensors") if path.suffix == ".json" else path
    try:
        mtime = wpath.stat().st_mtime_ns
    except FileNotFoundError:
        mtime = 0  # load_checkpoint reports the missing file
    return _load_cached(str(wpath), mtime)


@st.cache_resource(max_entries=4, show_spinner="Checking the uploaded checkpoint…")
def _from_upload(digest: str, _config: bytes, _weights: bytes, name: str) -> LoadedCheckpoint:
    del digest  # cache key: the bytes themselves are not hashed by Streamlit (leading underscore)
    model, meta = model_from_bytes(_config, _weights, source=name)
    return LoadedCheckpoint(model=model, config=meta, path=Path(name))


def checkpoint_from_upload(config_bytes: bytes, weights_bytes: bytes, name: str = "uploaded") -> LoadedCheckpoint:
    """Validate and build an uploaded (config JSON, safetensors) pair; CheckpointError if unusable."""
    digest = hashlib.sha256(config_bytes + b"\0" + weights_bytes).hexdigest()
    return _from_upload(digest, config_bytes, weights_bytes, name)


def checkpoint_label(meta: dict) -> str:
    """'cnn · noise linear T=1000 · 100 epochs' from a checkpoint config."""
    diff = meta.get("diffusion", {})
    if diff.get("type") == "noise":
        s = diff.get("schedule", {})
        what = f"noise {diff.get('preset') or s.get('kind', '?')} T={s.get('T', '?')}"
    else:
        what = f"cold {diff.get('degradation', {}).get('kind', '?')}"
    epochs = meta.get("epochs")
    trained = f" · {epochs} epoch{'s' if epochs != 1 else ''}" if epochs else ""
    return f"{meta.get('model', {}).get('arch', '?')} · {what}{trained}"


def model_sources(diffusion_type: str | None = None) -> dict[str, tuple[str, Path]]:
    """Loadable models: key → (label, weights path). Keys are 'shipped:<name>' and 'run:<run id>'.
    `diffusion_type` ("noise" | "cold") keeps only models of that kind."""
    found: dict[str, tuple[str, Path]] = {}
    for wpath, meta in list_checkpoints():
        if diffusion_type is None or meta["diffusion"]["type"] == diffusion_type:
            found[f"shipped:{wpath.stem}"] = (f"Shipped · {wpath.stem} ({checkpoint_label(meta)})", wpath)
    try:
        runs = jobs.list_runs()
    except (OSError, ValueError):
        runs = []
    for run in runs:
        if diffusion_type is not None and run.config.get("diffusion", {}).get("type") != diffusion_type:
            continue
        if run.checkpoint is not None:
            progress = f"{run.state}, epoch {run.epoch}/{run.epochs}"
            found[f"run:{run.run_id}"] = (f"Run · {run.run_id} ({run.describe()}; {progress})", run.checkpoint)
    return found


def default_checkpoint() -> Path | None:
    """The home page's model: $DIFFUSION_LAB_DEFAULT_MODEL, a preferred shipped name, else the first
    shipped noise model, else the first shipped model; None when nothing is shipped."""
    shipped = list_checkpoints()
    by_name = {w.stem: (w, meta) for w, meta in shipped}
    for name in (os.environ.get(DEFAULT_ENV), *DEFAULT_NAMES):
        if name and name in by_name:
            return by_name[name][0]
    noise = [w for w, meta in shipped if meta["diffusion"]["type"] == "noise"]
    return (noise or [w for w, _ in shipped] or [None])[0]


def _upload_widgets(key: str) -> LoadedCheckpoint | None:
    st.caption("A checkpoint is a pair: the weights (.safetensors) and its config (.json) as written by "
               "Diffusion Lab. Pickled PyTorch files (.pt/.pth/.ckpt) are refused: they can run code.")
    c1, c2 = st.columns(2)
    weights = c1.file_uploader("Weights (.safetensors)", type=["safetensors"], key=f"{key}_weights")
    config = c2.file_uploader("Config (.json)", type=["json"], key=f"{key}_config")
    if weights is None or config is None:
        st.info("Upload both files of the checkpoint to use it.")
        return None
    with user_errors("This upload cannot be used"):
        return checkpoint_from_upload(config.getvalue(), weights.getvalue(), name=weights.name)
    return None


def model_picker(key: str = "model", label: str = "Model", allow_upload: bool = True,
                 diffusion_type: str | None = None) -> LoadedCheckpoint | None:
    """Choose a shipped checkpoint, a trained run or an upload; returns the loaded model or None.
    Opens on the app's default model (default_checkpoint, the one Home uses) when it is on offer.
    `diffusion_type` ("noise" | "cold") offers only models of that kind (an upload of another kind is refused).

    `?model=shipped:<name>` or `?model=run:<run id>` in the URL preselects a model."""
    sources = model_sources(diffusion_type)
    options = list(sources) + ([UPLOAD] if allow_upload else [])
    if not sources:
        what = {"cold": "cold-diffusion model (one trained with a degradation)", "noise": "noise model"}
        st.info(f"No trained {what.get(diffusion_type, 'models')} yet: none is shipped in checkpoints/ and no run "
                "has finished an epoch. Train one on the Train page"
                + (", or upload a checkpoint below." if allow_upload else "."))
        st.page_link("pages/1_Train.py", label="Go to Train", icon=":material/model_training:")
    if not options:
        return None
    wanted = st.query_params.get("model")
    if wanted not in options:  # open on the app's default model (Home's), not the alphabetically first
        default = default_checkpoint()
        wanted = f"shipped:{default.stem}" if default is not None else None
    index = options.index(wanted) if wanted in options else 0
    choice = st.selectbox(label, options, index=index, key=f"{key}_choice",
                          format_func=lambda k: "Upload a checkpoint…" if k == UPLOAD else sources[k][0])
    if choice == UPLOAD:
        ckpt = _upload_widgets(key)
        kind = None if ckpt is None else ckpt.config["diffusion"]["type"]
        if diffusion_type is not None and kind not in (None, diffusion_type):
            st.error(f"This upload is a {kind} diffusion model; this part of the page needs a {diffusion_type} one.")
            return None
        return ckpt
    with user_errors("Could not load this model"):
        return load_checkpoint_cached(sources[choice][1])
    return None


MEASURE_WAIT_S = 3.0  # how long the timing waits for a queue worker before timing on the page's own thread


@st.cache_resource(max_entries=32, ttl=600, show_spinner="Timing one network call on this machine…")
def _seconds_per_call(key: str, n: int, _ckpt: LoadedCheckpoint) -> float:
    del key  # cache key: the weights' hash (or path) stands for the model
    from diffusion_core.lab.work_queue import QueueFull

    from .queue_ui import default_queue  # (queue_ui imports this module)

    try:  # timed where runs compute: on a queue worker, with its torch threads, not beside another job
        ticket = default_queue().submit(seconds_per_call, _ckpt, n)
    except QueueFull:
        return seconds_per_call(_ckpt, n)
    if ticket.wait(MEASURE_WAIT_S) or not ticket.cancel():
        return ticket.result()
    return seconds_per_call(_ckpt, n)  # a long line: time it here, under the load a run would meet


def seconds_per_call_cached(ckpt: LoadedCheckpoint, n: int) -> float:
    """run_plan.seconds_per_call, measured once per model and batch on a work-queue worker (again after
    10 minutes, as the machine's load changes)."""
    return _seconds_per_call(str(ckpt.config.get("weights_sha256") or ckpt.path), n, ckpt)


ALL_DIGITS = "all"


def class_controls(ckpt: LoadedCheckpoint, key: str, container=st, side_by_side: bool = True) -> dict:
    """Digit and guidance inputs for a class-conditional model, as keyword arguments for
    sampling.checkpoint_steps / sample_checkpoint; {} (and nothing drawn) for other models."""
    if not is_conditional(ckpt.model):
        return {}
    c1, c2 = container.columns(2) if side_by_side else (container, container)
    options = [ALL_DIGITS, *range(ckpt.model.num_classes), NO_LABEL]
    names = {ALL_DIGITS: "0–9 in turn", NO_LABEL: "none (unconditional)"}
    digit = c1.selectbox("Digit", options, key=f"{key}_digit", format_func=lambda d: names.get(d, str(d)),
                         help="this model is class-conditional: ask for one digit, every digit in turn, or none")
    guidance = c2.slider("Guidance w", 0.0, 8.0, float(ckpt.config.get("guidance", 0.0)), 0.5, key=f"{key}_guidance",
                         help="classifier-free guidance: ε̃ = (1+w)·ε(z,t,digit) − w·ε(z,t,none). 0 is the plain "
                         "conditional model; larger w gives clearer, more typical digits with less variety")
    return {"digit": None if digit == ALL_DIGITS else int(digit), "guidance": float(guidance)}


def describe_conditioning(conditioning: dict) -> list[str]:
    """['digit 3', 'guidance w = 1.5'] for class_controls' result; [] for an unconditional model."""
    if not conditioning:
        return []
    digit = conditioning["digit"]
    which = "digits 0–9" if digit is None else "unconditional" if digit == NO_LABEL else f"digit {digit}"
    return [which, f"guidance w = {conditioning['guidance']:g}"]
