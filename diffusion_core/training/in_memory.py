"""Training on a tensor held in memory, for seconds-long runs (the 2-D lab): the same objective (the process's
loss, recorded by noise level), Adam and EMA with warm-up as the run-directory trainer, without the run
directory."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from diffusion_core.process import DiffusionProcess
from diffusion_core.training.config import LR_DECAYS, TrainingError
from diffusion_core.training.objectives import Objective
from diffusion_core.training.optim import ema_update, lr_at

MAX_STEPS = 20_000


@dataclass
class FitResult:
    model: nn.Module  # the EMA weights (or the raw ones without EMA), in eval mode
    losses: list[float] = field(default_factory=list)  # one per step
    loss_by_t: dict = field(default_factory=dict)  # Objective.take_loss_by_t over the whole run


def fit(process: DiffusionProcess, model: nn.Module, data: torch.Tensor, steps: int = 2000, batch_size: int = 256,
        lr: float = 2e-3, seed: int = 0, ema_decay: float | None = 0.995, lr_decay: str = "none",
        on_step: Callable[[int, int, float], None] | None = None) -> FitResult:
    """Adam on process.loss over random batches of `data` (rows are samples) for `steps` steps (lr_decay
    "cosine": the rate falls as a half cosine to 0 at the last step, as in the run-directory trainer); on_step(step,
    steps, loss) after each. TrainingError if the loss turns NaN/Inf (the message says to lower lr)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be a whole number from 1 to {MAX_STEPS:,}; got {steps!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch size must be a whole number ≥ 1; got {batch_size!r}")
    if not (isinstance(lr, int | float) and math.isfinite(lr) and 0 < lr <= 1):
        raise ValueError(f"learning rate must be in (0, 1]; got {lr!r}")
    if lr_decay not in LR_DECAYS:
        raise ValueError(f"lr_decay must be one of {', '.join(LR_DECAYS)}; got {lr_decay!r}")
    if len(data) < 2:
        raise ValueError(f"training needs at least 2 samples; got {len(data)}")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    objective = Objective(process, keep_images=0)
    ema = copy.deepcopy(model).eval() if ema_decay else None
    optim = torch.optim.Adam(model.parameters(), lr=lr)
    result = FitResult(model)
    model.train()
    for step in range(steps):
        idx = torch.randint(0, len(data), (min(batch_size, len(data)),), generator=generator)
        loss = objective.loss(model, data[idx], generator)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise TrainingError(f"the loss became {value} at step {step + 1}: training diverged; lower the "
                                f"learning rate (now {lr:g})")
        if lr_decay != "none":
            for group in optim.param_groups:
                group["lr"] = lr_at(lr, step, steps, decay=lr_decay)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        if ema is not None:
            ema_update(ema, model, ema_decay, step)
        result.losses.append(value)
        if on_step is not None:
            on_step(step + 1, steps, value)
    result.loss_by_t = objective.take_loss_by_t()
    result.model = (ema if ema is not None else model).eval()
    return result
