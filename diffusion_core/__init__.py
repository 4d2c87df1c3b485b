"""diffusion_core: the Diffusion Lab library (schedules, denoisers, samplers, data, training,
checkpoints). No Streamlit in here."""

__version__ = "0.1.0"
