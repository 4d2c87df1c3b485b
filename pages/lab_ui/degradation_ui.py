"""Inputs for a degradation's own parameters (besides T and the strength schedule), typed by its signature."""

from __future__ import annotations

import streamlit as st
import torch

from diffusion_core.evaluation.spectra import spectrum_frequencies
from diffusion_core.figures import spectra_figure
from diffusion_core.process.degradations import Degradation
from diffusion_core.views.degradations import degradation_parameters, degradation_spectra


def degradation_param_inputs(kind: str, columns: list, key: str) -> dict[str, float | int | None]:
    """One number box per parameter of degradation `kind` (cold_views.degradation_parameters), in `columns`;
    returns {name: value}. An optional integer (e.g. the kernel size) may be left empty: None, "whole image"."""
    params: dict[str, float | int | None] = {}
    for col, spec in zip(columns, degradation_parameters(kind), strict=False):
        if spec.integer:
            params[spec.name] = col.number_input(spec.name, value=spec.default, step=1, key=f"{key}_{spec.name}",
                                                 placeholder="whole image" if spec.default is None else None)
        else:
            params[spec.name] = col.number_input(spec.name, value=float(spec.default), step=0.01, format="%g",
                                                 key=f"{key}_{spec.name}")
    return params


def spectra_chart(degradation: Degradation, images: torch.Tensor, seed: int = 0) -> None:
    """The radially averaged power spectrum of D(x, t) over `images` at t = 0, T/4, …, T: blur removes the high
    frequencies outright, where noise would only drown them."""
    spectra = {f"t = {t}": power for t, power in degradation_spectra(degradation, images, seed=seed).items()}
    st.plotly_chart(spectra_figure(spectrum_frequencies(images.shape[-1]), spectra,
                                   f"Power spectrum of D(x, t) over {len(images)} test digits ({degradation.kind})"),
                    key="deg_spectra_fig")
