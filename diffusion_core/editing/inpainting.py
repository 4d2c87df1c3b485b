"""Inpainting with a noise model, two ways, and with a cold-diffusion mask model, the third (#16 item 2).

A mask m is 1 on the known pixels and 0 where the model fills in. With z_t's known part drawn from the forward
process, known_s = √ᾱ_s·x + √(1−ᾱ_s)·ε (known_0 = x):
- replacement: every reverse step t → s (DDPM's posterior step, DDIM with η = 1), then z_s ← m·known_s + (1−m)·z_s;
- RePaint (Lugmayr et al. 2022): the same steps, but the schedule jumps back up: after every `jump` steps down it
  re-noises `jump` steps up (z_t = √(ᾱ_t/ᾱ_s)·z_s + √(1−ᾱ_t/ᾱ_s)·ε), `resample` times, so the filled part has
  time to agree with the known part (the paper: 250 steps, jumps of 10, 10 resamplings);
- a cold mask model restores its own growing disc (Algorithm 2 of cold diffusion), the known pixels outside it.
At t = 0 the known pixels are exactly x in all three.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from diffusion_core.editing.inversion import network
from diffusion_core.editing.sdedit import noise_model
from diffusion_core.evaluation.restoration_metrics import ssim
from diffusion_core.io.checkpoints import LoadedCheckpoint
from diffusion_core.io.images import to_unit_numpy
from diffusion_core.samplers.base import SeedBatch, ancestral_levels, seeded_noise

MASKS = ("left half", "right half", "top half", "bottom half", "centre box", "random pixels")
METHODS = ("replacement", "RePaint")


def preset_mask(name: str, seed: int = 0, size: int = 28) -> torch.Tensor:
    """1×1×size×size: 1 on the known pixels. ValueError for an unknown name."""
    m = torch.ones(size, size)
    half = size // 2
    if name == "left half":
        m[:, :half] = 0
    elif name == "right half":
        m[:, half:] = 0
    elif name == "top half":
        m[:half] = 0
    elif name == "bottom half":
        m[half:] = 0
    elif name == "centre box":
        m[8:20, 8:20] = 0
    elif name == "random pixels":
        m = (torch.rand(size, size, generator=torch.Generator().manual_seed(seed)) < 0.5).float()
    else:
        raise ValueError(f"mask must be one of {', '.join(MASKS)}; got {name!r}")
    return m.view(1, 1, size, size)


def validate_mask(mask: torch.Tensor) -> None:
    if mask.dim() != 4 or mask.shape[1:] != (1, 28, 28) or not ((mask == 0) | (mask == 1)).all():
        raise ValueError("a mask must be 1×1×28×28 of 0 (fill in) and 1 (known)")
    if float(mask.min()) == 1.0:
        raise ValueError("the mask keeps every pixel: nothing is left to fill in; mask some pixels out")
    if float(mask.max()) == 0.0:
        raise ValueError("the mask keeps no pixel: that is plain generation, not inpainting; keep some pixels")


def repaint_schedule(steps: int, jump: int, resample: int) -> list[int]:
    """RePaint's time schedule on `steps` levels (indices steps … 0): down one at a time, and after every `jump`
    steps down, back up `jump` steps, `resample` − 1 times per point (the paper's get_schedule_jump)."""
    if not (1 <= jump <= steps and resample >= 1):
        raise ValueError(f"RePaint needs 1 ≤ jump ≤ steps and resample ≥ 1; got jump={jump}, resample={resample}")
    jumps = {j: resample - 1 for j in range(0, steps - jump, jump)}
    t, out = steps, [steps]
    while t >= 1:
        t -= 1
        out.append(t)
        if jumps.get(t, 0) > 0:
            jumps[t] -= 1
            for _ in range(jump):
                t += 1
                out.append(t)
    return out


def _down(D, z: torch.Tensor, t: int, s: int, noise: Callable[[], torch.Tensor]) -> torch.Tensor:
    """One DDPM posterior step t → s (DDIM with η = 1) over the denoiser view D: in x = z/scale(σ),
    x_s = x̂0 + σ_down·ε̂ + σ_up·N(0, I) (samplers/base.py ancestral_levels); at s = 0 the x̂0 itself."""
    sigma = D.sigma(t)
    x0, eps = D(D.from_z(z, sigma), sigma, t)
    if s == 0:
        return x0
    sigma_next = D.sigma(s)
    down, up = ancestral_levels(sigma, sigma_next, 1.0)
    return D.to_z(x0 + down * eps + up * noise(), sigma_next)


def inpaint(checkpoint: LoadedCheckpoint, x: torch.Tensor, mask: torch.Tensor, method: str = "replacement",
            steps: int = 50, seed: int = 0, jump: int = 5, resample: int = 5) -> torch.Tensor:
    """Fill the pixels where mask = 0 of data-space images x (N×1×28×28) with a noise model, on `steps` uniform
    levels from T; RePaint jumps back `jump` levels `resample` − 1 times. The known pixels come back exactly."""
    process = noise_model(checkpoint)
    validate_mask(mask)
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    levels = [0, *reversed(process.timesteps("uniform", process.T, steps))]  # level i → timestep, 0 … T
    order = repaint_schedule(steps, jump, resample) if method == "RePaint" else list(range(steps, -1, -1))
    gen = SeedBatch(seed, len(x))
    D = process.view(network(checkpoint, len(x), None))
    noise = lambda: seeded_noise(tuple(x.shape), gen, "cpu")  # noqa: E731
    known = lambda t: x if t == 0 else process.diffuse(x, 0, t, noise())  # noqa: E731
    z = noise()
    with torch.inference_mode():
        for a, b in zip(order, order[1:], strict=False):
            t, s = levels[a], levels[b]
            if b < a:  # down, then the known pixels replaced at the new level
                z = mask * known(s) + (1 - mask) * _down(D, z, t, s, noise)
            else:  # up: the forward process from t to s > t
                z = process.diffuse(z, t, s, noise())
    return z


@dataclass
class InpaintScore:
    method: str
    images: torch.Tensor  # one result per seed (S×1×28×28)
    rmse: float  # on the filled pixels, mean over seeds
    rmse_se: float
    ssim: float  # of the whole image, mean over seeds
    labels: list[tuple[int, float]]


def compare(checkpoint: LoadedCheckpoint, x: torch.Tensor, mask: torch.Tensor, seeds: int = 4, steps: int = 50,
            classifier=None, cold: LoadedCheckpoint | None = None, cold_t: int | None = None,
            on_progress: Callable[[int, int], None] | None = None) -> list[InpaintScore]:
    """Each method on one image (1×1×28×28) over `seeds` seeds: RMSE on the filled pixels (± SE over seeds),
    SSIM, and the classifier's label of each result. With a cold mask model, its restoration from its own
    D(x, cold_t) joins (its mask is its disc at cold_t, not `mask`)."""
    from diffusion_core.editing.sdedit import classify

    if not 1 <= seeds <= 16:
        raise ValueError(f"seeds must be from 1 to 16; got {seeds}")
    xs = x.expand(seeds, *x.shape[1:])
    total = len(METHODS) + (cold is not None)
    runs, masks = {}, {}
    for m in METHODS:
        runs[m], masks[m] = inpaint(checkpoint, xs, mask, m, steps, seed=0), mask
        if on_progress is not None:
            on_progress(len(runs), total)
    if cold is not None:
        runs["cold mask model"], masks["cold mask model"] = cold_restore(cold, xs, cold_t)
        if on_progress is not None:
            on_progress(total, total)
    out = []
    for method, images in runs.items():
        hole = (1 - masks[method]).expand_as(images).bool()
        err = [float(((im - xs[0])[h] ** 2).mean().sqrt()) for im, h in zip(images, hole, strict=True)]
        sims = ssim(to_unit_numpy(images), to_unit_numpy(xs)).tolist()
        out.append(InpaintScore(method, images, float(np.mean(err)),
                                float(np.std(err, ddof=1) / math.sqrt(len(err))) if len(err) > 1 else 0.0,
                                float(np.mean(sims)), classify(classifier, images) if classifier else []))
    return out


def _mask_degradation(cold: LoadedCheckpoint):
    degradation = getattr(cold.process, "degradation", None)
    if degradation is None or degradation.kind != "mask":
        what = degradation.kind if degradation is not None else "noise"
        raise ValueError(f"the cold method needs a cold-diffusion mask model; {cold.path.stem} restores {what}")
    return degradation


def disc_mask(cold: LoadedCheckpoint, t: int) -> torch.Tensor:
    """The cold mask model's own mask at step t (1×1×28×28, 1 = known): all but its centre disc of radius ρ_t."""
    degradation = _mask_degradation(cold)
    if not 1 <= t <= degradation.T:
        raise ValueError(f"the disc's step t must be from 1 to {degradation.T}; got {t}")
    return 1 - degradation.masks(28, 28)[t].view(1, 1, 28, 28)


def cold_restore(cold: LoadedCheckpoint, x: torch.Tensor, t: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(restorations of x from the cold mask model's D(x, t) with its improved sampler, the known-pixel mask)."""
    import dataclasses

    from diffusion_core.process.cold import conditional_start
    from diffusion_core.samplers import run_to_end

    t = _mask_degradation(cold).T if t is None else t
    known = disc_mask(cold, t)
    start = conditional_start(cold.process.degradation, x, 0, t)
    choice = dataclasses.replace(cold.process.quick_choice(), start=start, t_start=t, seed=0)
    restored = run_to_end(cold.process.frames(cold.model, choice, len(x))).samples
    return known * x + (1 - known) * restored, known


def mask_from_strokes(json_data: dict | None, canvas: int, size: int = 28) -> torch.Tensor:
    """The mask painted on a drawing canvas (Fabric.js JSON of free-hand strokes, `canvas` pixels a side): 0 (fill
    in) on every 28×28 pixel the strokes cover by a third or more, 1 elsewhere."""
    from PIL import Image, ImageDraw

    img = Image.new("L", (canvas, canvas), 0)
    draw = ImageDraw.Draw(img)
    for obj in (json_data or {}).get("objects", []):
        if obj.get("type") != "path":
            continue
        points = [(float(c[-2]), float(c[-1])) for c in obj.get("path", []) if len(c) >= 3]
        width = max(1, int(round(float(obj.get("strokeWidth", 1)))))
        if len(points) == 1:
            points = points * 2
        draw.line(points, fill=255, width=width, joint="curve")
        for px, py in points:  # round caps
            draw.ellipse((px - width / 2, py - width / 2, px + width / 2, py + width / 2), fill=255)
    cover = np.asarray(img.resize((size, size), Image.BOX), dtype=np.float32) / 255.0
    return torch.from_numpy((cover < 1 / 3).astype(np.float32)).view(1, 1, size, size)
