"""Drawing helpers: image grids as PNGs and thinning long curves for Plotly."""

from __future__ import annotations

import numpy as np
import streamlit as st

from diffusion_core.io.images import make_grid, png_bytes


def grid_image(images01: np.ndarray, nrow: int | None = None, scale: int = 4) -> bytes:
    """PNG bytes of an N×H×W [0, 1] array laid out as a grid, scaled up with nearest neighbour."""
    return png_bytes(make_grid(np.asarray(images01, dtype=np.float32), nrow), scale=scale)


def show_grid(images01: np.ndarray, caption: str | None = None, nrow: int | None = None, scale: int = 4,
              width: int | None = None) -> None:
    """st.image of a sample grid."""
    st.image(grid_image(images01, nrow, scale), caption=caption, width=width or "content")


def downsample_indices(length: int, max_points: int = 1500) -> np.ndarray:
    """At most max_points evenly spaced indices of 0..length−1, always including both ends."""
    if length <= max_points:
        return np.arange(length)
    return np.unique(np.linspace(0, length - 1, max_points).round().astype(int))
