"""The diffusion processes: β schedules and the Gaussian forward process, degradations and cold diffusion,
behind one interface (DiffusionProcess) built from a checkpoint's "diffusion" config."""

from diffusion_core.process.base import DiffusionProcess, SamplerChoice, Start, process_from_config
from diffusion_core.process.cold import ColdProcess
from diffusion_core.process.flow import FlowProcess
from diffusion_core.process.gaussian import GaussianProcess

__all__ = ["ColdProcess", "DiffusionProcess", "FlowProcess", "GaussianProcess", "SamplerChoice", "Start",
           "process_from_config"]
