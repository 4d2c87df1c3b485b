"""Diffusion Lab — the entry point: the sidebar of pages (st.navigation, from pages.lab_ui.PAGES) and
Home: what the lab is, one-click samples from the default model, links to every page."""

import dataclasses

import streamlit as st

from diffusion_core.io.checkpoints import CheckpointError
from diffusion_core.io.images import to_unit_numpy
from pages.lab_ui import (
    checkpoint_label,
    class_controls,
    default_checkpoint,
    describe_conditioning,
    load_checkpoint_cached,
    navigation,
    number_field,
    page_links,
    sample_batched,
    setup_page,
    show_grid,
    user_errors,
    warm_up_default_model,
)
from pages.lab_ui.url_state import url_state

GRID_N = 16  # a 4×4 grid


def generate(seed: int, conditioning: dict) -> None:
    """Sample a 4×4 grid from the default model into session state (shown until the next Generate);
    `conditioning`: digit and guidance for a class-conditional model (class_controls)."""
    path = default_checkpoint()
    ckpt = load_checkpoint_cached(path)
    choice = dataclasses.replace(ckpt.process.quick_choice(), seed=seed, **conditioning)  # 4×4 in under a second
    # through the server's one work queue, in one batch with the other students asking the same meanwhile
    samples, served = sample_batched(ckpt, choice, GRID_N)
    how = ", ".join([choice.describe()] + describe_conditioning(conditioning))
    st.session_state["home_grid"] = {
        "images": to_unit_numpy(samples), "seed": seed, "model": path.stem, "how": how,
        "label": checkpoint_label(ckpt.config), "served": served,
    }


def home() -> None:
    setup_page("Diffusion Lab", (
        "An interactive lab for **denoising diffusion models** on 28×28 digits, for teaching and self-study. "
        "A diffusion model learns to undo a gradual corruption: the forward process mixes an image with "
        "Gaussian noise, z_t = √ᾱ_t·x + √(1−ᾱ_t)·ε, and a network learns to predict the noise so that, "
        "starting from pure noise, it can walk back to a digit. Everything here runs on a laptop CPU."
    ))
    url_state("home", ["home_seed", "home_digit", "home_guidance"])
    st.subheader("Generate")
    path = default_checkpoint()
    if path is None:
        st.info("No model is shipped in `checkpoints/` yet, so there is nothing to sample from. "
                "Train one (a few minutes on a CPU gives blurry digits) and it will appear on every page.")
        st.page_link("pages/1_Train.py", label="Train a model", icon=":material/model_training:")
    else:
        c1, c2 = st.columns([1, 3])
        seed = number_field("Seed", 0, 2**31 - 1, value=0, key="home_seed", container=c1)  # int(seed) refuses −5
        controls = c1.container()  # digit and guidance (a conditional model) go here, above the button
        clicked = c1.button("Generate", type="primary", key="home_generate")  # drawn before the model loads
        try:
            conditioning = class_controls(load_checkpoint_cached(path), "home", controls, side_by_side=False)
        except CheckpointError:
            conditioning = {}  # Generate reports what is wrong with the model
        if clicked:
            with user_errors("Could not generate"), st.spinner("Sampling…"):
                generate(int(seed), conditioning)
        grid = st.session_state.get("home_grid")
        with c2:
            if grid:
                show_grid(grid["images"], nrow=4, scale=5,
                          caption=f"{grid['model']} ({grid['label']}) · {grid['how']} · seed {grid['seed']} · "
                                  f"{grid['served']}")
            else:
                st.caption(f"Model: **{path.stem}**. Press Generate for a 4×4 grid of samples.")

    st.subheader("How to use the lab")
    st.markdown(
        "1. **Schedules** — see how β_t, ᾱ_t and the signal-to-noise ratio decide how fast a digit dissolves.\n"
        "2. **Train** — train your own model in the background; watch the loss and samples improve.\n"
        "3. **Reverse diffusion** — step through sampling and watch a digit emerge from noise.\n\n"
        "Trained runs appear as models on every page; you can also upload a checkpoint (.safetensors + .json)."
    )
    page_links()


warm_up_default_model()  # once per server process, in the background: the first Generate finds torch warm
navigation(home).run()
