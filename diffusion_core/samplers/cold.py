"""Cold diffusion's samplers (Bansal et al. 2022) over the cold view R (process/cold.py Restorer: the restorer
R.restore(x_t, t) → x̂0 and the degradation R.degrade(x̂0, t), a hybrid's trajectory noise held inside), with
x̂0 = R(x_t, t/T) at each visited t and s the next:
    direct    x̂0 = R(x_T, T) in one step
    naive     x_s = D(x̂0, s)
    improved  x_s = x_t − D(x̂0, t) + D(x̂0, s)     (Algorithm 4 in the report)
With all T steps s = t − 1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch

from diffusion_core.samplers.base import SamplerStep
from diffusion_core.samplers.registry import register


def _walk_back(R, x_T: torch.Tensor, ts: Sequence[int],
               update: Callable[[torch.Tensor, torch.Tensor, int, int], torch.Tensor]) -> Iterator[SamplerStep]:
    """The cold samplers' loop: x̂0 = R(x_t, t) at each visited t, then x ← update(x, x̂0, t, s) with s the next t."""
    x = x_T
    for i, t in enumerate(ts):
        s = ts[i + 1] if i + 1 < len(ts) else 0
        x0 = R.restore(x, t)
        yield SamplerStep(t, x, x0)
        x = update(x, x0, t, s)
    yield SamplerStep(0, x, x)


def sample_improved(R, x_T: torch.Tensor, ts: Sequence[int], generator: torch.Generator) -> Iterator[SamplerStep]:
    """Algorithm 4: x_s = x_t − D(x̂0, t) + D(x̂0, s) with x̂0 = R(x_t, t)."""
    return _walk_back(R, x_T, ts, lambda x, x0, t, s: x - R.degrade(x0, t) + R.degrade(x0, s))


def sample_naive(R, x_T: torch.Tensor, ts: Sequence[int], generator: torch.Generator) -> Iterator[SamplerStep]:
    """x_s = D(x̂0, s) with x̂0 = R(x_t, t)."""
    return _walk_back(R, x_T, ts, lambda x, x0, t, s: R.degrade(x0, s))


def sample_direct(R, x_T: torch.Tensor, ts: Sequence[int], generator: torch.Generator) -> Iterator[SamplerStep]:
    """Direct reconstruction: x̂0 = R(x_T, T) in one step (ts holds the one start t)."""
    return _walk_back(R, x_T, ts[:1], lambda x, x0, t, s: x0)


register("improved", "cold", sample_improved, order=0, summary="Algorithm 4: x_s = x_t − D(x̂0, t) + D(x̂0, s)")
register("naive", "cold", sample_naive, order=1, summary="x_s = D(x̂0, s)")
register("direct", "cold", sample_direct, order=2, one_step=True, summary="x̂0 = R(x_T, T) in one step")
