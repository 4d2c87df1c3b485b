"""Cold-diffusion degradations D(x, t) (Bansal et al. 2022) with strength schedules.

Every degradation is batched (t may differ per image), exact at t = 0 (D(x, 0) = x) and
deterministic given x, t and — for the noise + blur hybrid only — a noise draw ε that is held
fixed along a trajectory. Images are in data space (pixel/255 − 0.5), N×C×H×W.

Strength schedule s(u), u = t/T, with s(0) = 0 and s(1) = 1:
    linear     s = u                      (the report)
    cosine     s = 1 − cos(π u / 2)       (slow start: fine detail is removed gently)
    quadratic  s = u²
    sqrt       s = √u                     (fast start)

Kinds:
    blur             the report's Gaussian blur: kernel covering the whole image (reflect padding),
                     σ_t = σ_min + (σ_max − σ_min)·s(t/T); defaults σ_min = 0.02, σ_max = 5.02, T = 500,
                     so the linear schedule is exactly σ_t = 0.02 + 0.01·t
    cumulative-blur  the paper's blur: a small Gaussian kernel applied n(t) = round(T·s(t/T)) times
    mask             inpainting: a centred disc of radius ρ_t = s(t/T)·ρ_max filled with `fill`
    pixelate         super-resolution: averages over blocks, r_t = round(H − s(t/T)·(H − min_size))
                     blocks per side, shown at full size
    fade             (1 − s)·x + s·target: fade to black (target 0) or to a grey such as the data mean
    noise-blur       the report's proposed hybrid: blur(x, t) + noise_std·s(t/T)·ε

blur, cumulative-blur and pixelate are separable linear maps, D(x, t) = A_t x A_tᵀ with one H×H
matrix per t, precomputed for t = 0..T.

One file per kind; each registers itself (base.Degradation.__init_subclass__). This package imports them all.
"""

import importlib
import pkgutil

from diffusion_core.process.degradations.base import (
    BLACK,
    DEGRADATIONS,
    MAX_KERNEL,
    MAX_T,
    MIN_SIGMA,
    STRENGTH_SCHEDULES,
    Degradation,
    degradation_from_config,
    degradation_kinds,
    make_degradation,
    preview_strip,
    strength,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

from diffusion_core.process.degradations.blur import GaussianBlur, convolution_matrix, gaussian_kernel  # noqa: E402, I001

DEGRADATION_KINDS = degradation_kinds()
DEFAULT_T = {kind: DEGRADATIONS[kind].default_T for kind in DEGRADATION_KINDS}

__all__ = [
    "BLACK", "DEFAULT_T", "DEGRADATIONS", "DEGRADATION_KINDS", "MAX_KERNEL", "MAX_T", "MIN_SIGMA",
    "STRENGTH_SCHEDULES", "Degradation", "GaussianBlur", "convolution_matrix", "degradation_from_config",
    "degradation_kinds", "gaussian_kernel", "make_degradation", "preview_strip", "strength",
]
