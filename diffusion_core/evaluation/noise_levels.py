"""The loss by noise level: a model's loss at fixed timesteps t on held-out images — where across the schedule it
has learned, and where it has not. The loss is always highest at one end (ε is hard to predict from an almost
clean z_t, x is hard to restore from an almost fully degraded one): a flat average hides that."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from diffusion_core.models.guidance import is_conditional
from diffusion_core.process import DiffusionProcess

MAX_POINTS = 100


def heldout_loss_by_t(process: DiffusionProcess, model: nn.Module, images: torch.Tensor,
                      labels: torch.Tensor | None = None, points: int = 20, seed: int = 0,
                      on_progress: Callable[[int, int], None] | None = None) -> dict:
    """The training loss of `model` on data-space `images` (N×C×H×W) at `points` timesteps evenly spaced over
    1..T (the same noise draw at every t, seeded), each with its standard error over the images. A
    class-conditional model is given the images' labels; on_progress(done, total) after each t. Returns {"t",
    "t_over_T", "loss", "se", "n"}."""
    if isinstance(points, bool) or not isinstance(points, int) or not 2 <= points <= MAX_POINTS:
        raise ValueError(f"points must be a whole number from 2 to {MAX_POINTS}; got {points!r}")
    if len(images) < 2:
        raise ValueError(f"the held-out loss needs at least 2 images; got {len(images)}")
    conditional = is_conditional(model)
    if conditional and labels is None:
        raise ValueError("a class-conditional model needs the images' labels")
    ts = sorted({int(round(v)) for v in np.linspace(1, process.T, points)})
    model = model.eval()
    loss, se = [], []
    with torch.no_grad():
        for i, t in enumerate(ts):
            generator = torch.Generator().manual_seed(seed)
            _, _, each = process.loss_terms(model, images.float(), generator, slice(None),
                                            labels if conditional else None, torch.full((len(images),), t))
            loss.append(float(each.mean()))
            se.append(float(each.std()) / math.sqrt(len(images)))
            if on_progress is not None:
                on_progress(i + 1, len(ts))
    return {"t": ts, "t_over_T": [t / process.T for t in ts], "loss": loss, "se": se, "n": len(images)}
