"""Drawing helpers: image grids as PNGs."""

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
