"""Models for the pages: cached checkpoint loading, the model picker (shipped, trained runs, upload)
and the home page's default model. Uploads go through checkpoints.model_from_bytes (safetensors +
JSON, hash-checked); nothing is ever unpickled."""

from __future__ import annotations

import hashlib
from pathlib import Path

import streamlit as st

from diffusion_core.io.checkpoints import LoadedCheckpoint, load_checkpoint, model_from_bytes
from diffusion_core.models.guidance import NO_LABEL, is_conditional
from diffusion_core.services.catalog import OFFERS, default_checkpoint, model_sources
from diffusion_core.services.run_plan import seconds_per_call

from .common import user_errors
from .url_state import refresh_view_link

UPLOAD = "upload"


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
                 offers: str | None = None, unconditional: bool = False,
                 url_param: str = "model") -> LoadedCheckpoint | None:
    """Choose a shipped checkpoint, a trained run or an upload; returns the loaded model or None.
    Opens on the app's default model (default_checkpoint, the one Home uses) when it is on offer.
    `offers` (a capability of catalog.OFFERS, e.g. "noise_levels") offers only models whose process has it (an
    upload without it is refused);
    `unconditional` (a page that runs the model without a label) opens on the shipped unconditional U-Net.

    `?model=shipped:<name>` or `?model=run:<run id>` in the URL preselects a model, and the model chosen is
    written back there, so a copied link opens the same model (`url_param` names it where a page has two)."""
    sources = model_sources(offers)
    options = list(sources) + ([UPLOAD] if allow_upload else [])
    if not sources:
        what = "models" if offers is None else OFFERS[offers] + "s"
        st.info(f"No trained {what} yet: none is shipped in checkpoints/ and no run "
                "has finished an epoch. Train one on the Train page"
                + (", or upload a checkpoint below." if allow_upload else "."))
        st.page_link("pages/1_Train.py", label="Go to Train", icon=":material/model_training:")
    if not options:
        return None
    wanted = st.query_params.get(url_param)
    if wanted not in options:  # open on the app's default model (Home's), not the alphabetically first
        default = default_checkpoint(unconditional=unconditional)
        wanted = f"shipped:{default.stem}" if default is not None else None
    index = options.index(wanted) if wanted in options else 0
    choice = st.selectbox(label, options, index=index, key=f"{key}_choice",
                          format_func=lambda k: "Upload a checkpoint…" if k == UPLOAD else sources[k][0])
    if choice != UPLOAD and st.query_params.get(url_param) != choice:
        st.query_params[url_param] = choice
    elif choice == UPLOAD and url_param in st.query_params:
        del st.query_params[url_param]  # an upload cannot travel in a link
    refresh_view_link()
    if choice == UPLOAD:
        ckpt = _upload_widgets(key)
        if ckpt is not None and offers is not None and not getattr(ckpt.process, offers):
            st.error(f"This upload is a {ckpt.process.type} diffusion model; this part of the page needs a "
                     f"{OFFERS[offers]}.")
            return None
        return ckpt
    with user_errors("Could not load this model"):
        return load_checkpoint_cached(sources[choice][1])
    return None


MEASURE_WAIT_S = 3.0  # how long the timing waits for a queue worker before timing on the page's own thread


@st.cache_resource(max_entries=32, ttl=600, show_spinner="Timing one network call on this machine…")
def _seconds_per_call(key: str, n: int, _ckpt: LoadedCheckpoint) -> float:
    del key  # cache key: the weights' hash (or path) stands for the model
    from diffusion_core.services.work_queue import QueueFull

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
    a SamplerChoice (sampling.sample_checkpoint); {} (and nothing drawn) for other models."""
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
