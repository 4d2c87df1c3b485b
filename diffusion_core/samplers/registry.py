"""The samplers by name. Every module of this package registers its own when imported; the first
lookup imports them all, so a new sampler is one new file here."""

from __future__ import annotations

import importlib
import pkgutil

from diffusion_core.samplers.base import Sampler, SamplerRun

SAMPLERS: dict[str, Sampler] = {}
_NOT_SAMPLERS = {"base", "registry", "spacing"}
_discovered = False


def register(name: str, process: str, run: SamplerRun, order: int, **options: object) -> Sampler:
    """Add a sampler for processes of type `process` (see Sampler for the options)."""
    if name in SAMPLERS:
        raise ValueError(f"a sampler named {name!r} is already registered")
    spec = Sampler(name=name, process=process, run=run, order=order, **options)
    SAMPLERS[name] = spec
    return spec


def _discover() -> None:
    global _discovered
    if not _discovered:
        import diffusion_core.samplers as package

        for module in pkgutil.iter_modules(package.__path__):
            if module.name not in _NOT_SAMPLERS:
                importlib.import_module(f"{package.__name__}.{module.name}")
        _discovered = True


def samplers_of(process_type: str) -> tuple[str, ...]:
    """The names of the samplers for a process type, its default first."""
    _discover()
    return tuple(s.name for s in sorted(SAMPLERS.values(), key=lambda s: s.order) if s.process == process_type)


def sampler_spec(name: str) -> Sampler:
    """The registered sampler `name`; ValueError listing them all if there is none."""
    _discover()
    if name not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}; got {name!r}")
    return SAMPLERS[name]
