"""Reverse-diffusion samplers, each a short function over (process, model, x_T, timesteps).

Every sampler is a generator of SamplerStep frames (t, z_t, x̂0), so a page can step through it.
Each module here registers its samplers (registry.register) for a process type; sampling.py runs them.
"""

from diffusion_core.samplers.base import (
    LOG_SNR_MIN,
    MAX_SAMPLES,
    Sampler,
    SampleResult,
    SamplerStep,
    in_inference_mode,
    run_to_end,
    spaced_timesteps,
    validate_sample_count,
    validate_seed,
)
from diffusion_core.samplers.registry import discover, register, sampler_spec, samplers_of

discover()  # every sampler module registers itself

__all__ = [
    "LOG_SNR_MIN",
    "MAX_SAMPLES",
    "SampleResult",
    "Sampler",
    "SamplerStep",
    "in_inference_mode",
    "register",
    "run_to_end",
    "sampler_spec",
    "samplers_of",
    "spaced_timesteps",
    "validate_sample_count",
    "validate_seed",
]
