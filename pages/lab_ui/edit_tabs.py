"""Two of the Edit page's tabs, each a function of the model: interpolation between two noises or two inverted
digits (lerp against slerp), and guidance (classifier, classifier-free, ink, thickness) against w = 0."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st
import torch

from diffusion_core.editing.guidance import guided_samples
from diffusion_core.editing.inversion import interpolation_paths, invert, noise_ends
from diffusion_core.figures import path_norms_figure
from diffusion_core.io.checkpoints import LoadedCheckpoint
from diffusion_core.models.classifier_guidance import MEASURES, MNIST_MEAN, SPREAD
from diffusion_core.models.guidance import is_conditional

from .common import user_errors
from .data import load_test_digits, shipped_noisy_classifier
from .edit_ui import strip
from .inputs import NumberField, number_field, require
from .queue_ui import run_queued


def interpolation_tab(ckpt: LoadedCheckpoint, label: Callable[[torch.Tensor], list[str]], decode_steps: int) -> None:
    """Paths between two ends, decoded by DDIM in `decode_steps` steps, with their norms."""
    ends_kind = st.radio("Ends", ["Two noises", "Two inverted test digits"], horizontal=True, key="ed_ip_kind")
    i1, i2, i3 = st.columns(3)
    a = number_field("Seed A" if ends_kind == "Two noises" else "Test digit A", 0, 2**31 - 1, 0, "ed_ip_a",
                     container=i1)
    b = number_field("Seed B" if ends_kind == "Two noises" else "Test digit B", 0, 2**31 - 1, 1, "ed_ip_b",
                     container=i2)
    points = number_field("Points", 2, 32, 9, "ed_ip_points", container=i3)
    if st.button("Interpolate", key="ed_ip_run"):
        with user_errors("Could not interpolate"):
            require([a, b, points])
            if ends_kind == "Two noises":
                ends = noise_ends((int(a.value), int(b.value)))
            else:
                data = load_test_digits("mnist")
                if max(int(a.value), int(b.value)) >= len(data):
                    raise ValueError(f"test digit indices must be below {len(data):,}")
                ends = run_queued(invert, ckpt, data.images[[int(a.value), int(b.value)]], decode_steps)
            st.session_state["ed_ip_out"] = run_queued(interpolation_paths, ckpt, ends, int(points.value),
                                                       decode_steps, progress="Decoding the paths: path")
    paths = st.session_state.get("ed_ip_out")
    if paths is not None:
        for mode, p in paths.items():
            st.markdown(f"**{mode}**")
            strip(p["images"], label(p["images"]), scale=2)
        st.plotly_chart(path_norms_figure({m: p["norms"] for m, p in paths.items()}), key="ed_ip_fig")
        st.caption("Gaussian noise in d = 784 dimensions lies on a thin shell ‖z‖ ≈ √d. A straight line between two "
                   "noises cuts inside the shell (its midpoint has ‖z‖ ≈ √(d/2)): noise the model never saw, so lerp "
                   "washes out in the middle; slerp stays on the shell.")


def guidance_tab(ckpt: LoadedCheckpoint, seed: NumberField, label: Callable[[torch.Tensor], list[str]]) -> None:
    """Eight digits steered by the chosen guidance at scale w, beside the same eight at w = 0 (same `seed`)."""
    st.caption("Steer generation without retraining. **Classifier** guidance adds w·∇ log p(digit | z_t) of a "
               "noise-aware classifier to the score, on any noise model (a class-conditional one is steered from "
               "its unconditional ε); **classifier-free** guidance is the class-conditional model's own; **ink** "
               "and **thickness** steer x̂0 towards a target amount of ink or stroke thickness. Each row starts "
               "from the same noise as w = 0 (same seed).")
    noisy, why_noisy = shipped_noisy_classifier()
    kinds = ["classifier", *(["classifier-free"] if is_conditional(ckpt.model) else []), "ink", "thickness"]
    g1, g2, g3, g4 = st.columns(4)
    kind = g1.selectbox("Guide by", kinds, key="ed_g_kind")
    digit_g = g2.selectbox("Digit", list(range(10)), index=3, key="ed_g_digit",
                           disabled=kind in ("ink", "thickness"))
    scale = g3.slider("Scale w", 0.0, 20.0, 4.0, 0.5, key="ed_g_scale")
    target = number_field("Target (ink: mean pixel; thickness: ink per edge)", 0.0, 10.0,
                          0.08 if kind == "ink" else 1.5, f"ed_g_target_{kind}", container=g4,
                          disabled=kind not in ("ink", "thickness"))
    if kind == "classifier" and noisy is None:
        st.info(f"Classifier guidance needs the noise-aware classifier: {why_noisy}")
    if st.button("Generate with guidance", key="ed_g_run", disabled=kind == "classifier" and noisy is None):
        with user_errors("Could not generate"):
            require([seed, target] if kind in ("ink", "thickness") else [seed])
            digit_arg = None if kind in ("ink", "thickness") else int(digit_g)
            plain = run_queued(guided_samples, ckpt, kind, 0.0, 8, digit_arg, int(seed.value), noisy,
                               float(target.value))
            steered = run_queued(guided_samples, ckpt, kind, float(scale), 8, digit_arg, int(seed.value), noisy,
                                 float(target.value), label="Guiding (a gradient at every step)…")
            st.session_state["ed_g_out"] = (kind, float(scale), float(target.value), plain, steered)
    shown = st.session_state.get("ed_g_out")
    if shown is not None:
        kind_shown, w, target_shown, plain, steered = shown
        measure = MEASURES.get(kind_shown)

        def captions(images: torch.Tensor, head: str) -> list[str]:
            values = [] if measure is None else [f"{kind_shown} {v:.2f}" for v in measure(images).tolist()]
            return [" · ".join([head, *([values[i]] if values else []), lab]) for i, lab in enumerate(label(images))]

        strip(plain, captions(plain, "w = 0"), scale=2)
        strip(steered, captions(steered, f"{kind_shown} w = {w:g}"), scale=2)
        if measure is not None:
            st.caption(f"Mean {kind_shown}: {float(measure(plain).mean()):.3f} at w = 0, "
                       f"{float(measure(steered).mean()):.3f} at w = {w:g} (target {target_shown:g}; MNIST "
                       f"digits: {MNIST_MEAN[kind_shown]:.3f} ± {SPREAD[kind_shown]:.3f}).")
