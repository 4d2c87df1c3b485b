"""The Edit page's parts: where the image to edit comes from (a drawing or a test digit), and a strip of images
with captions. The work is in diffusion_core.editing.sdedit and .inversion."""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from diffusion_core.editing.sdedit import drawing_to_digit
from diffusion_core.io.checkpoints import LoadedCheckpoint
from diffusion_core.io.images import png_bytes, to_unit_numpy

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
    """Data-space images in a row with a caption each, every one drawn 28·scale pixels wide (left to itself, an
    image grows with the width of its caption, so a row of long captions came out larger than a row of short ones)."""
    st.image([png_bytes(p, scale=scale) for p in to_unit_numpy(images)], caption=captions, width=28 * scale)


def cold_mask_model(key: str) -> LoadedCheckpoint | None:
    """The cold-diffusion mask model to compare (a shipped one or a trained run), or None with a line on how to
    get one."""
    from diffusion_core.services.catalog import model_sources

    from .common import user_errors
    from .models import load_checkpoint_cached

    sources = model_sources("degrades", "mask")
    if not sources:
        st.caption("No cold-diffusion mask model is shipped or trained, so the third method is missing: train one "
                   "on the Train page (cold diffusion, degradation “mask”).")
        return None
    choice = st.selectbox("Cold mask model", list(sources), key=f"{key}_cold",
                          format_func=lambda k: sources[k][0])
    with user_errors("Could not load the cold mask model"):
        return load_checkpoint_cached(sources[choice][1])
    return None


DISC = "the cold model's disc"  # the mask preset a cold mask model fills too


def mask_source(x: torch.Tensor, key: str, cold: LoadedCheckpoint | None = None) -> tuple[torch.Tensor, int | None]:
    """(the inpainting mask, 1×1×28×28 with 1 = known; the cold model's step t when the mask is its disc, else
    None): a preset, the cold mask model's own disc at a step t, or painted over the digit on a canvas."""
    from diffusion_core.editing.inpainting import MASKS, disc_mask, mask_from_strokes, preset_mask

    kinds = ["paint it", *MASKS] + ([DISC] if cold is not None else [])
    kind = st.selectbox("Mask", kinds, index=len(kinds) - 1 if cold is not None else 1, key=f"{key}_mask",
                        help="the cold mask model was trained on one kind of mask, a disc at the centre that grows "
                             "with t: it can fill only that one, so it joins the comparison on its disc")
    if kind == DISC:
        T = cold.process.degradation.T
        t = st.slider("Disc step t (its radius grows with t)", 1, T, max(1, int(0.4 * T)), key=f"{key}_disc_t")
        return disc_mask(cold, t), t
    if kind != "paint it":
        return preset_mask(kind, seed=0), None
    from PIL import Image
    from streamlit_drawable_canvas import st_canvas

    background = Image.fromarray((to_unit_numpy(x)[0] * 255).astype(np.uint8)).resize((CANVAS, CANVAS),
                                                                                         Image.NEAREST)
    result = st_canvas(drawing_mode="freedraw", stroke_width=24, stroke_color="rgba(255, 0, 0, 0.6)",
                       background_image=background, height=CANVAS, width=CANVAS, key=f"{key}_canvas")
    st.caption("Paint over the pixels the model should fill in.")
    return mask_from_strokes(result.json_data if result is not None else None, CANVAS), None
