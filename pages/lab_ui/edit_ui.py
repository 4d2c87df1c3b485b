"""The Edit page's parts: where the image to edit comes from (a drawing or a test digit), and a strip of images
with captions. The work is in diffusion_core.lab.editing and .inversion."""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from diffusion_core.io.images import png_bytes, to_unit_numpy
from diffusion_core.lab.editing import drawing_to_digit

from .data import load_test_digits
from .inputs import number_field, require

CANVAS = 224  # pixels a side: 8× the digit


def digit_source(key: str, allow_drawing: bool = True) -> torch.Tensor | None:
    """A 1×1×28×28 data-space digit: drawn on a canvas or picked from the test split; None (with a message)
    until there is one."""
    modes = ["Draw a digit", "A test digit"] if allow_drawing else ["A test digit"]
    mode = st.radio("Image", modes, horizontal=True, key=f"{key}_source")
    if mode == "A test digit":
        data = load_test_digits("mnist")
        index = number_field("Test digit index", 0, len(data) - 1, 0, f"{key}_index")
        require([index])
        x = data.images[int(index.value)].unsqueeze(0)
        st.caption(f"Test digit {int(index.value)} ({data.source}), label {int(data.labels[int(index.value)])}.")
        return x
    from streamlit_drawable_canvas import st_canvas

    c1, c2 = st.columns([1, 2])
    with c1:
        result = st_canvas(drawing_mode="freedraw", stroke_width=18, stroke_color="#000000",
                           background_color="#ffffff", height=CANVAS, width=CANVAS, return_image_data=True,
                           key=f"{key}_canvas")
    image = None if result is None else result.image_data
    if image is None or np.asarray(image).size == 0:
        c2.info("Draw a digit on the canvas (white on black, as MNIST's, is what the model knows; you draw black "
                "on white and it is inverted).")
        return None
    try:
        x = drawing_to_digit(np.asarray(image))
    except ValueError as exc:
        c2.info(str(exc))
        return None
    c2.image(png_bytes(to_unit_numpy(x)[0], scale=4), caption="as the model sees it (28×28)")
    return x


def strip(images: torch.Tensor, captions: list[str], scale: int = 3) -> None:
    """Data-space images in a row with a caption each."""
    st.image([png_bytes(p, scale=scale) for p in to_unit_numpy(images)], caption=captions)


def mask_source(x: torch.Tensor, key: str) -> torch.Tensor:
    """The inpainting mask (1×1×28×28, 1 = known): a preset, or painted over the digit on a canvas."""
    from diffusion_core.lab.inpainting import MASKS, mask_from_strokes, preset_mask

    kind = st.selectbox("Mask", ["paint it", *MASKS], index=1, key=f"{key}_mask")
    if kind != "paint it":
        return preset_mask(kind, seed=0)
    from PIL import Image
    from streamlit_drawable_canvas import st_canvas

    background = Image.fromarray((to_unit_numpy(x)[0] * 255).astype(np.uint8)).resize((CANVAS, CANVAS),
                                                                                         Image.NEAREST)
    result = st_canvas(drawing_mode="freedraw", stroke_width=24, stroke_color="rgba(255, 0, 0, 0.6)",
                       background_image=background, height=CANVAS, width=CANVAS, key=f"{key}_canvas")
    st.caption("Paint over the pixels the model should fill in.")
    return mask_from_strokes(result.json_data if result is not None else None, CANVAS)
