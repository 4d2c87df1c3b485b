"""diffusion_core: the Diffusion Lab library (schedules, denoisers, samplers, data, training,
checkpoints). No Streamlit in here.

Importing it registers the samplers (each module of diffusion_core.samplers adds its own to the processes'
table), so any process can list and run them; the process package itself never imports the samplers."""

from diffusion_core import samplers as _samplers  # noqa: F401  (registers every sampler)

__version__ = "0.1.0"
