"""Inputs for a degradation's own parameters (besides T and the strength schedule), typed by its signature."""

from __future__ import annotations

from diffusion_core.lab.cold_views import degradation_parameters


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
