"""Cached data for the pages: real test digits and the shipped MNIST classifier (or why it is missing)."""

from __future__ import annotations

import streamlit as st

from diffusion_core.evaluation.classifier import SHIPPED_NAME, load_classifier
from diffusion_core.io.checkpoints import CheckpointError, shipped_dir
from diffusion_core.io.data import Dataset, load_dataset


@st.cache_resource(max_entries=2, show_spinner="Loading test digits…")
def load_test_digits(dataset: str = "mnist") -> Dataset:
    """The test split of `dataset` (never downloads here: the Train page is where data is fetched)."""
    return load_dataset(dataset, "test", download=False)


@st.cache_resource(max_entries=2, show_spinner="Loading the training digits…")
def load_train_digits(dataset: str = "mnist") -> Dataset:
    """The training split of `dataset` as it is here (never downloads)."""
    return load_dataset(dataset, "train", download=False)


@st.cache_resource(max_entries=2, show_spinner="Loading the classifier…")
def _classifier(folder: str, mtime_ns: int):
    del mtime_ns  # cache key only: a retrained classifier loads afresh
    try:
        return load_classifier(f"{folder}/{SHIPPED_NAME}"), None
    except CheckpointError as exc:
        return None, str(exc)


def shipped_classifier():
    """(the shipped classifier, None), or (None, why it cannot be used)."""
    folder = shipped_dir()
    wpath = folder / f"{SHIPPED_NAME}.safetensors"
    mtime = wpath.stat().st_mtime_ns if wpath.is_file() else 0
    return _classifier(str(folder), mtime)


@st.cache_resource(max_entries=2, show_spinner="Loading the noise-aware classifier…")
def _noisy_classifier(folder: str, mtime_ns: int):
    del mtime_ns  # cache key only
    from diffusion_core.evaluation.noisy_classifier import SHIPPED_NAME as NOISY_NAME

    try:
        return load_classifier(f"{folder}/{NOISY_NAME}"), None
    except CheckpointError as exc:
        return None, str(exc).replace("train-classifier --out checkpoints/classifier",
                                      "train-noisy-classifier --out checkpoints/noisy-classifier")


def shipped_noisy_classifier():
    """(the shipped noise-aware classifier for classifier guidance, None), or (None, why it cannot be used)."""
    from diffusion_core.evaluation.noisy_classifier import SHIPPED_NAME as NOISY_NAME

    folder = shipped_dir()
    wpath = folder / f"{NOISY_NAME}.safetensors"
    return _noisy_classifier(str(folder), wpath.stat().st_mtime_ns if wpath.is_file() else 0)
