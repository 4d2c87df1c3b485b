"""Cold diffusion's samplers (Bansal et al. 2022), with x̂0 = R(x_t, t/T) at each visited t and s the next:
    direct    x̂0 = R(x_T, T) in one step
    naive     x_s = D(x̂0, s)
    improved  x_s = x_t − D(x̂0, t) + D(x̂0, s)     (Algorithm 4 in the report)
With all T steps s = t − 1. `noise` is a hybrid degradation's fixed trajectory noise (None otherwise).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from diffusion_core.process.degradations import Degradation
from diffusion_core.samplers.base import SamplerStep, model_call
from diffusion_core.samplers.registry import register


def direct_steps(model: nn.Module, degradation: Degradation, x_T: torch.Tensor, t: int) -> Iterator[SamplerStep]:
    """Direct reconstruction: x̂0 = R(x_t, t)."""
    x0 = model_call(model, x_T, t, degradation.T)
    yield SamplerStep(t, x_T, x0)
    yield SamplerStep(0, x0, x0)


def _walk_back(model: nn.Module, degradation: Degradation, x_T: torch.Tensor, ts: Sequence[int],
               update: Callable[[torch.Tensor, torch.Tensor, int, int], torch.Tensor]) -> Iterator[SamplerStep]:
    """The cold samplers' loop: x̂0 = R(x_t, t) at each visited t, then x ← update(x, x̂0, t, s) with s the next t."""
    x = x_T
    for i, t in enumerate(ts):
        s = ts[i + 1] if i + 1 < len(ts) else 0
        x0 = model_call(model, x, t, degradation.T)
        yield SamplerStep(t, x, x0)
        x = update(x, x0, t, s)
    yield SamplerStep(0, x, x)


def naive_steps(model: nn.Module, degradation: Degradation, x_T: torch.Tensor, ts: Sequence[int],
                noise: torch.Tensor | None = None) -> Iterator[SamplerStep]:
    """x_s = D(x̂0, s) with x̂0 = R(x_t, t)."""
    return _walk_back(model, degradation, x_T, ts, lambda x, x0, t, s: degradation(x0, s, noise))


def improved_steps(model: nn.Module, degradation: Degradation, x_T: torch.Tensor, ts: Sequence[int],
                   noise: torch.Tensor | None = None) -> Iterator[SamplerStep]:
    """Algorithm 4: x_s = x_t − D(x̂0, t) + D(x̂0, s) with x̂0 = R(x_t, t)."""
    return _walk_back(model, degradation, x_T, ts,
                      lambda x, x0, t, s: x - degradation(x0, t, noise) + degradation(x0, s, noise))


def _improved(process, model, x_T, ts, generator, *, noise):
    return improved_steps(model, process.degradation, x_T, ts, noise)


def _naive(process, model, x_T, ts, generator, *, noise):
    return naive_steps(model, process.degradation, x_T, ts, noise)


def _direct(process, model, x_T, ts, generator, *, noise):
    return direct_steps(model, process.degradation, x_T, ts[0])


register("improved", "cold", _improved, order=0, summary="Algorithm 4: x_s = x_t − D(x̂0, t) + D(x̂0, s)")
register("naive", "cold", _naive, order=1, summary="x_s = D(x̂0, s)")
register("direct", "cold", _direct, order=2, one_step=True, summary="x̂0 = R(x_T, T) in one step")
