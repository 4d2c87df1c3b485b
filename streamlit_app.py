"""Diffusion Lab — landing page (the full app arrives with the app issue)."""

import streamlit as st

st.set_page_config(page_title="Diffusion Lab", layout="wide")
st.title("Diffusion Lab")
st.write(
    "Train, run and take apart denoising diffusion models on MNIST-sized images. "
    "The library lives in `diffusion_core`; use `python -m diffusion_core --help` for the command line."
)
