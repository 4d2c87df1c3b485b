"""Registering the samplers. Every module of this package registers its own when imported (the package's
__init__ imports them all), into the table the processes look theirs up in (process.base.SAMPLERS), so a new
sampler is one new file here."""

from __future__ import annotations

import importlib
import pkgutil

from diffusion_core.process.base import SAMPLERS, sampler_spec, samplers_of
from diffusion_core.samplers.base import Sampler, SamplerRun

__all__ = ["SAMPLERS", "discover", "register", "sampler_spec", "samplers_of"]
_NOT_SAMPLERS = {"base", "registry"}


def register(name: str, process: str, run: SamplerRun, order: int, **options: object) -> Sampler:
    """Add a sampler that runs over the view `process` ("noise", "cold", "flow"; see Sampler for the options)."""
    if name in SAMPLERS:
        raise ValueError(f"a sampler named {name!r} is already registered")
    spec = Sampler(name=name, process=process, run=run, order=order, **options)
    SAMPLERS[name] = spec
    return spec


def discover() -> None:
    """Import every sampler module of this package (each registers its samplers)."""
    import diffusion_core.samplers as package

    for module in pkgutil.iter_modules(package.__path__):
        if module.name not in _NOT_SAMPLERS:
            importlib.import_module(f"{package.__name__}.{module.name}")
